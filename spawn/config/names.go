// Package config holds the pure rules netspawn, netspawnd, netspawnctl and
// the image verbs share: what a machine name is, and (as the package grows)
// the flag and settings tables. It makes no system calls.
package config

import (
	"fmt"
	"strings"
)

// Machine and host names follow systemd's hostname rules
// (src/basic/hostname-util.c, hostname_is_valid with no flags), which
// systemd-nspawn, machined and networkd apply to machine names: a name is one
// or more labels joined by single dots; a label is made of ASCII letters,
// digits and hyphens ("LDH", RFC 5890), may not begin or end with a hyphen and
// may not be empty (so no leading, trailing or doubled dots); the whole name
// is at most 64 bytes (HOST_NAME_MAX on Linux). Underscores are not allowed.

// MaxMachineNameLen is the longest machine name accepted (Linux HOST_NAME_MAX).
const MaxMachineNameLen = 64

func isLDH(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-'
}

// NameError says what is wrong with a name and what a name may contain.
type NameError struct {
	Kind string // "machine name", "image name"
	Name string
	Why  string
}

func (e *NameError) Error() string {
	const rule = "letters, digits and '-', in labels joined by single dots, at most 64 characters"
	if e.Name == "" {
		return fmt.Sprintf("empty %s (a %s is %s)", e.Kind, e.Kind, rule)
	}
	return fmt.Sprintf("invalid %s %q: %s (a %s is %s)", e.Kind, e.Name, e.Why, e.Kind, rule)
}

// CheckMachineName returns nil for a valid machine name, or a *NameError.
func CheckMachineName(s string) error {
	bad := func(why string) error { return &NameError{Kind: "machine name", Name: s, Why: why} }
	switch {
	case s == "":
		return bad("")
	case len(s) > MaxMachineNameLen:
		return bad(fmt.Sprintf("%d characters", len(s)))
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" {
			return bad("empty label (leading, trailing or doubled dot)")
		}
		for i := 0; i < len(label); i++ {
			if !isLDH(label[i]) {
				return bad(fmt.Sprintf("character %q not allowed", rune(label[i])))
			}
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return bad(fmt.Sprintf("label %q begins or ends with '-'", label))
		}
	}
	return nil
}

// ValidMachineName reports whether s is a valid machine name (and hostname).
func ValidMachineName(s string) bool { return CheckMachineName(s) == nil }

// CleanMachineName turns s into a valid machine name where possible, as
// systemd's hostname_cleanup does: characters other than letters, digits,
// hyphens and dots are dropped, as are dots and hyphens that would begin a
// label or follow a hyphen (dots) or dot, the result is cut to 64 bytes and a
// trailing dot or hyphen is removed. The result may still be invalid (for
// example empty, or ending in a hyphen when several were trailing); check it
// with ValidMachineName.
func CleanMachineName(s string) string {
	out := make([]byte, 0, min(len(s), MaxMachineNameLen))
	dot, hyphen := true, true
	for i := 0; i < len(s) && len(out) < MaxMachineNameLen; i++ {
		c := s[i]
		switch {
		case c == '.':
			if dot || hyphen {
				continue
			}
			out = append(out, '.')
			dot, hyphen = true, false
		case c == '-':
			if dot {
				continue
			}
			out = append(out, '-')
			dot, hyphen = false, true
		case isLDH(c):
			out = append(out, c)
			dot, hyphen = false, false
		}
	}
	if n := len(out); n > 0 && (out[n-1] == '-' || out[n-1] == '.') {
		out = out[:n-1]
	}
	return string(out)
}

// ValidIfname reports whether s is usable as a network interface name, by
// systemd's ifname_valid rules: 1 to 15 bytes of printable ASCII other than
// space, ':', '/' and '%'; not "." or ".."; not "all" or "default"; not all
// digits.
func ValidIfname(s string) bool {
	if s == "" || len(s) > 15 || s == "." || s == ".." || s == "all" || s == "default" {
		return false
	}
	numeric := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 127 || c == ':' || c == '/' || c == '%' {
			return false
		}
		if c < '0' || c > '9' {
			numeric = false
		}
	}
	return !numeric
}
