package config

import (
	"fmt"
	"path"
	"strings"
)

// ParsePivotRoot parses --pivot-root=NEW[:OLD] (nspawn's pivot_root_parse):
// both absolute paths; OLD empty or absent means the old root goes away.
func ParsePivotRoot(v string) (newRoot, oldRoot string, err error) {
	newRoot, oldRoot, _ = strings.Cut(v, ":")
	if newRoot == "" || !path.IsAbs(newRoot) {
		return "", "", fmt.Errorf("--pivot-root=%s: %q is not an absolute path (use NEW[:OLD], both absolute paths in the image)", v, newRoot)
	}
	if oldRoot != "" && !path.IsAbs(oldRoot) {
		return "", "", fmt.Errorf("--pivot-root=%s: %q is not an absolute path (use NEW[:OLD], both absolute paths in the image)", v, oldRoot)
	}
	for _, p := range []string{newRoot, oldRoot} {
		for _, e := range strings.Split(p, "/") {
			if e == ".." {
				return "", "", fmt.Errorf("--pivot-root=%s: path %s leaves the image, refusing", v, p)
			}
		}
	}
	newRoot = path.Clean(newRoot)
	if oldRoot != "" {
		oldRoot = path.Clean(oldRoot)
	}
	if newRoot == "/" {
		return "", "", fmt.Errorf("--pivot-root=%s: the new root must be a directory below /, not / itself", v)
	}
	if oldRoot == "/" {
		return "", "", fmt.Errorf("--pivot-root=%s: the old root cannot go to / (it would hide the new one)", v)
	}
	return newRoot, oldRoot, nil
}

// ParseSlice checks -S/--slice=: a name without a unit suffix gets ".slice"
// (as nspawn's unit_name_mangle_with_suffix); the result must be a valid
// slice unit name (letters, digits, ":-_.\", no leading, trailing or double
// '-' in its prefix, at most 255 characters).
func ParseSlice(v string) (string, error) {
	if v == "" {
		return "", fmt.Errorf("--slice= needs a slice name such as machine-web.slice")
	}
	name := v
	if !strings.HasSuffix(name, ".slice") {
		if i := strings.LastIndexByte(name, '.'); i > 0 && unitSuffixes[name[i+1:]] {
			return "", fmt.Errorf("invalid slice name %q: a slice unit name ends in .slice", v)
		}
		name += ".slice"
	}
	prefix := strings.TrimSuffix(name, ".slice")
	if len(name) > 255 || prefix == "" {
		return "", fmt.Errorf("invalid slice name %q: use a unit name such as machine-web.slice", v)
	}
	for i := 0; i < len(prefix); i++ {
		c := prefix[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(":-_.\\", c) >= 0) {
			return "", fmt.Errorf("invalid slice name %q: character %q is not allowed in a unit name", v, c)
		}
	}
	if prefix != "-" && (strings.HasPrefix(prefix, "-") || strings.HasSuffix(prefix, "-") || strings.Contains(prefix, "--")) {
		return "", fmt.Errorf("invalid slice name %q: '-' separates the parent slices, so the name cannot start or end with it or hold \"--\"", v)
	}
	return name, nil
}

var unitSuffixes = map[string]bool{"service": true, "socket": true, "target": true, "device": true, "mount": true,
	"automount": true, "swap": true, "timer": true, "path": true, "scope": true}
