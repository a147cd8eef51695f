package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// OverlayPath is one layer path of an --overlay= request.
type OverlayPath struct {
	Path string // absolute; empty (upper only): a temporary directory
	// InRoot is set for "+PATH": Path is inside the container's root.
	InRoot bool
}

// OverlayMount is one --overlay= or --overlay-ro= request.
type OverlayMount struct {
	Lower    []OverlayPath // lowest first, as given on the command line
	Upper    OverlayPath
	Dest     string // absolute path inside the container
	ReadOnly bool
}

// VolatileMode is nspawn's --volatile= setting.
type VolatileMode string

// Volatile modes.
const (
	VolatileNo      VolatileMode = ""
	VolatileYes     VolatileMode = "yes"     // tmpfs root, /usr from the tree read-only
	VolatileState   VolatileMode = "state"   // read-only tree, tmpfs /var
	VolatileOverlay VolatileMode = "overlay" // tree under a tmpfs overlay
)

// ParseVolatile parses a --volatile= value (empty: yes).
func ParseVolatile(v string) (VolatileMode, error) {
	if b, err := ParseBool(v); err == nil || v == "" {
		if b || v == "" {
			return VolatileYes, nil
		}
		return VolatileNo, nil
	}
	switch strings.ToLower(v) {
	case "state":
		return VolatileState, nil
	case "overlay":
		return VolatileOverlay, nil
	}
	return "", fmt.Errorf("--volatile=%s: not yes, no, state or overlay", v)
}

// splitColons splits s at unescaped colons; "\:" is a literal colon and
// "\\" a backslash.
func splitColons(s string) []string {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) && (s[i+1] == ':' || s[i+1] == '\\') {
			cur.WriteByte(s[i+1])
			i++
			continue
		}
		if c == ':' {
			parts = append(parts, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(c)
	}
	return append(parts, cur.String())
}

func parseOverlayPath(flag, p string, allowEmpty bool) (OverlayPath, error) {
	var op OverlayPath
	if rest, ok := strings.CutPrefix(p, "+"); ok {
		op.InRoot, p = true, rest
	}
	if p == "" {
		if !allowEmpty || op.InRoot {
			return op, fmt.Errorf("%s: empty path", flag)
		}
		return op, nil
	}
	if !filepath.IsAbs(p) {
		if op.InRoot {
			return op, fmt.Errorf("%s: %q must be absolute after '+'", flag, p)
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return op, fmt.Errorf("%s: %w", flag, err)
		}
		p = abs
	}
	op.Path = filepath.Clean(p)
	return op, nil
}

// ParseOverlay parses an --overlay= (or, with readOnly, --overlay-ro=)
// value: [+]LOWER[:LOWER...]:[+]UPPER:DEST, or [+]LOWER:[+]UPPER where
// UPPER is also the destination. An empty UPPER is a temporary directory.
func ParseOverlay(v string, readOnly bool) (OverlayMount, error) {
	flag := "--overlay=" + v
	if readOnly {
		flag = "--overlay-ro=" + v
	}
	parts := splitColons(v)
	if len(parts) < 2 {
		return OverlayMount{}, errors.New(flag + ": need at least a lower and an upper directory")
	}
	m := OverlayMount{ReadOnly: readOnly}
	var dest string
	if len(parts) == 2 {
		if parts[1] == "" {
			return m, errors.New(flag + ": with two paths the second is upper directory and destination, and cannot be empty")
		}
		dest = strings.TrimPrefix(parts[1], "+")
		parts = parts[:2]
	} else {
		dest = parts[len(parts)-1]
		parts = parts[:len(parts)-1]
	}
	if !filepath.IsAbs(dest) {
		return m, fmt.Errorf("%s: destination %q must be an absolute path", flag, dest)
	}
	m.Dest = filepath.Clean(dest)
	for _, l := range parts[:len(parts)-1] {
		op, err := parseOverlayPath(flag, l, false)
		if err != nil {
			return m, err
		}
		m.Lower = append(m.Lower, op)
	}
	up, err := parseOverlayPath(flag, parts[len(parts)-1], true)
	if err != nil {
		return m, err
	}
	m.Upper = up
	return m, nil
}
