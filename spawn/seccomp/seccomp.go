// Package seccomp builds the system call filter of a container, the same
// allow-list systemd-nspawn installs by default, and compiles it to classic
// BPF in pure Go.
//
// nspawn compiles its filter with libseccomp on every start (about 85 ms
// here); this package compiles the default filter in microseconds and caches
// the result, so a start pays only for the seccomp(2) call.
//
// The filter, per ABI of the machine (x86-64, x32 and i386 on amd64; arm64
// and 32-bit ARM on arm64):
//   - allowed syscalls return ALLOW;
//   - syscalls this package knows (any name in its tables) but which are not
//     allowed fail with EPERM (Filter.Errno);
//   - numbers it does not know, such as syscalls newer than its tables,
//     fail with ENOSYS, so that libc falls back to an older call as it does on
//     an older kernel;
//   - socket(AF_NETLINK, *, NETLINK_AUDIT) fails with EAFNOSUPPORT, which
//     audit userspace reads as "audit is off" (audit does not work in
//     containers);
//   - any other AUDIT_ARCH kills the process.
package seccomp

import (
	"fmt"
	"sort"
	"strings"
	"syscall"
)

// Filter is a container's syscall filter before compilation: the default
// allow-list for its capabilities plus what --system-call-filter= added or
// removed. The zero value is not useful; start from Default.
type Filter struct {
	caps  uint64
	allow []string // extra names and @groups, in the order given
	deny  []string
	// Errno is what known but not allowed syscalls fail with (EPERM).
	Errno syscall.Errno
	// SuppressSync makes the @sync family succeed without doing anything
	// and refuses opens with O_SYNC or O_DSYNC (EINVAL), as nspawn's
	// --suppress-sync=yes does.
	SuppressSync bool
}

// syncCalls is the @sync group, resolved once.
var syncCalls = func() map[string]bool {
	m := map[string]bool{}
	for _, n := range strings.Fields(groupDefs["@sync"].members) {
		m[n] = true
	}
	return m
}()

// Default returns nspawn's default filter for a container whose capability
// bounding set is caps (bit N set = capability N kept). Capabilities widen
// it: CAP_SYS_TIME adds @clock, CAP_SYS_MODULE @module, CAP_SYS_RAWIO
// @raw-io, CAP_IPC_LOCK @memlock, CAP_SYS_PACCT acct, CAP_SYS_PTRACE ptrace
// and process_vm_*, CAP_SYS_BOOT reboot, CAP_SYSLOG syslog,
// CAP_SYS_TTY_CONFIG vhangup. The mount family (@mount) is always allowed,
// as in nspawn: the kernel checks CAP_SYS_ADMIN itself.
func Default(caps uint64) *Filter {
	return &Filter{caps: caps, Errno: syscall.EPERM}
}

// Apply adds one --system-call-filter= value: a space-separated list of
// syscall names and @groups that are allowed in addition to the default;
// a list starting with "~" names syscalls and groups to deny instead.
// Several values accumulate, and a denied syscall stays denied whatever
// allows it (the order of the values does not matter). Unknown names and
// groups are an error that names them (callers add which option or
// setting it came from); nothing is changed then.
func (f *Filter) Apply(spec string) error {
	deny := false
	s := strings.TrimSpace(spec)
	if strings.HasPrefix(s, "~") {
		deny = true
		s = s[1:]
	}
	ws := strings.Fields(s)
	var unknown []string
	for _, w := range ws {
		if strings.HasPrefix(w, "~") {
			return fmt.Errorf("%q: \"~\" negates a whole list and must come first; give a deny list as a value of its own", w)
		}
		if !validItem(w) {
			unknown = append(unknown, w)
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("unknown system call or group: %s", strings.Join(unknown, ", "))
	}
	if deny {
		f.deny = append(f.deny, ws...)
	} else {
		f.allow = append(f.allow, ws...)
	}
	return nil
}

func validItem(w string) bool {
	if strings.HasPrefix(w, "@") {
		_, ok := groupDefs[w]
		return ok
	}
	return knownNames()[w]
}

// Allowed returns the names of every allowed syscall, sorted, for all
// architectures (a name that does not exist on an architecture is simply
// not there).
func (f *Filter) Allowed() []string {
	set := f.allowedSet()
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (f *Filter) allowedSet() map[string]bool {
	set := make(map[string]bool, 512)
	for _, it := range defaultItems {
		if it.cap >= 0 && f.caps&(1<<uint(it.cap)) == 0 {
			continue
		}
		for _, w := range words(it.name) {
			expand(w, set, true)
		}
	}
	for _, w := range f.allow {
		expand(w, set, true)
	}
	for _, w := range f.deny {
		expand(w, set, false)
	}
	return set
}

// expand sets (or clears) a name or, recursively, every member of a group.
func expand(item string, set map[string]bool, on bool) {
	if !strings.HasPrefix(item, "@") {
		if on {
			set[item] = true
		} else {
			delete(set, item)
		}
		return
	}
	if item == "@known" {
		for n := range knownNames() {
			expand(n, set, on)
		}
		return
	}
	for _, w := range words(groupDefs[item].members) {
		expand(w, set, on)
	}
}

// Groups returns every group with its members, groups included by name
// (with their "@"), for help listings and the docs. @known is
// listed with its syscall names expanded.
func Groups() map[string][]string {
	m := make(map[string][]string, len(groupDefs))
	for name, g := range groupDefs {
		ws := words(g.members)
		if name == "@known" {
			for n := range knownNames() {
				ws = append(ws, n)
			}
		}
		sort.Strings(ws)
		m[name] = ws
	}
	return m
}

// GroupHelp returns the one-line description of a group ("" if unknown).
func GroupHelp(name string) string { return groupDefs[name].help }
