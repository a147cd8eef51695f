// Package devpolicy keeps a container to the device nodes it may use, as
// systemd-nspawn's DevicePolicy=closed does: a cgroup device program (eBPF,
// BPF_PROG_TYPE_CGROUP_DEVICE) attached to the machine's cgroup allows the
// pseudo devices every container has, ptys, /dev/net/tun and what the user
// lists, and refuses to open or create any other device node. Without it a
// container's root, which holds CAP_MKNOD, could make a node for the host's
// disk and read it.
//
// This file is the pure part: rules, nspawn's list and the program they
// compile to. attach.go loads and attaches it.
package devpolicy

import (
	"fmt"
	"strconv"
	"strings"
)

// Access is a set of the kernel's BPF_DEVCG_ACC_* bits.
type Access uint8

const (
	Mknod Access = 1 // m
	Read  Access = 2 // r
	Write Access = 4 // w
	// RWM is every access.
	RWM = Mknod | Read | Write
)

// ParseAccess reads systemd's and the OCI spec's "rwm" notation.
func ParseAccess(s string) (Access, error) {
	var a Access
	for _, c := range s {
		switch c {
		case 'r':
			a |= Read
		case 'w':
			a |= Write
		case 'm':
			a |= Mknod
		default:
			return 0, fmt.Errorf("unknown device access %q in %q (use r, w and m)", c, s)
		}
	}
	return a, nil
}

func (a Access) String() string {
	var b strings.Builder
	for _, x := range []struct {
		bit Access
		c   byte
	}{{Read, 'r'}, {Write, 'w'}, {Mknod, 'm'}} {
		if a&x.bit != 0 {
			b.WriteByte(x.c)
		}
	}
	return b.String()
}

// Type is a device type: 'c' (character), 'b' (block) or 'a' (either).
type Type byte

const (
	Char  Type = 'c'
	Block Type = 'b'
	Any   Type = 'a'
)

// AnyNumber in Rule.Major or Rule.Minor matches every number.
const AnyNumber = -1

// Rule allows Access to the devices it matches.
type Rule struct {
	Type         Type
	Major, Minor int64
	Access       Access
}

func (r Rule) String() string {
	num := func(n int64) string {
		if n == AnyNumber {
			return "*"
		}
		return strconv.FormatInt(n, 10)
	}
	return fmt.Sprintf("%c %s:%s %s", r.Type, num(r.Major), num(r.Minor), r.Access)
}

// Validate reports a rule the program cannot express.
func (r Rule) Validate() error {
	switch r.Type {
	case Char, Block, Any:
	default:
		return fmt.Errorf("device rule %v: unknown type %q (c, b or a)", r, r.Type)
	}
	for _, n := range []int64{r.Major, r.Minor} {
		if n != AnyNumber && (n < 0 || n > 1<<31-1) {
			return fmt.Errorf("device rule %v: device number %d out of range", r, n)
		}
	}
	if r.Access&^RWM != 0 {
		return fmt.Errorf("device rule %v: unknown access bits %#x", r, uint8(r.Access))
	}
	return nil
}

// Allows reports whether the rule lets access (of one kind or several) to
// the device of type t and numbers major:minor.
func (r Rule) Allows(t Type, major, minor int64, access Access) bool {
	return (r.Type == Any || r.Type == t) &&
		(r.Major == AnyNumber || r.Major == major) &&
		(r.Minor == AnyNumber || r.Minor == minor) &&
		access&^r.Access == 0
}

// Allowed reports whether any of rules lets the access (the policy's
// meaning, for tests and for callers that check before they ask).
func Allowed(rules []Rule, t Type, major, minor int64, access Access) bool {
	for _, r := range rules {
		if r.Allows(t, major, minor, access) {
			return true
		}
	}
	return false
}

// PTSMajors finds the majors of the "pts" character driver in the text of
// /proc/devices (136 to 143 on Linux).
func PTSMajors(procDevices string) []int64 {
	var majors []int64
	char := false
	for _, line := range strings.Split(procDevices, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "Character devices:":
			char = true
			continue
		case line == "Block devices:":
			char = false
			continue
		}
		f := strings.Fields(line)
		if !char || len(f) != 2 || f[1] != "pts" {
			continue
		}
		if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			majors = append(majors, n)
		}
	}
	return majors
}

// Closed is systemd-nspawn's policy: DevicePolicy=closed (null, zero, full,
// random, urandom, tty, ptmx and systemd's inaccessible nodes, 0:0, with
// every access) with DeviceAllow=/dev/net/tun rwm and char-pts rw (ptys
// may be used, never made). ptsMajors are the pts driver's majors
// (PTSMajors; Linux's 136-143 when nil).
func Closed(ptsMajors []int64) []Rule {
	rules := []Rule{
		{Char, 1, 3, RWM},    // null
		{Char, 1, 5, RWM},    // zero
		{Char, 1, 7, RWM},    // full
		{Char, 1, 8, RWM},    // random
		{Char, 1, 9, RWM},    // urandom
		{Char, 5, 0, RWM},    // tty
		{Char, 5, 2, RWM},    // ptmx
		{Char, 0, 0, RWM},    // /run/systemd/inaccessible/chr
		{Block, 0, 0, RWM},   // /run/systemd/inaccessible/blk
		{Char, 10, 200, RWM}, // net/tun
	}
	if len(ptsMajors) == 0 {
		for m := int64(136); m <= 143; m++ {
			ptsMajors = append(ptsMajors, m)
		}
	}
	for _, m := range ptsMajors {
		rules = append(rules, Rule{Char, m, AnyNumber, Read | Write})
	}
	return rules
}
