package images

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strings"
)

// ErrUnsafePath marks a tar entry that would land outside the image.
var ErrUnsafePath = errors.New("unsafe path in archive")

// CleanEntryName turns a tar entry name into a path relative to the image
// root ("./etc/", "/etc" and "etc" all give "etc"; the root itself gives
// ""). A name that climbs out of the root ("../x", "a/../../x") or holds a
// NUL byte is refused.
func CleanEntryName(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("%w: %q has a NUL byte", ErrUnsafePath, name)
	}
	// Check the components before cleaning: "a/../../x" must not turn into
	// something acceptable by accident, and GNU tar refuses any "..".
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("%w: %q climbs out with \"..\"", ErrUnsafePath, name)
		}
	}
	p := path.Clean("/" + name)
	if p == "/" {
		return "", nil
	}
	return p[1:], nil
}

// CheckSymlink refuses a symbolic link whose relative target climbs above
// the image root from where the link sits (entry "etc/x" -> "../../y").
// Absolute targets are container paths (resolved inside the image when the
// container runs) and are accepted; extraction never follows links either
// way.
func CheckSymlink(entry, target string) error {
	if target == "" {
		return fmt.Errorf("%w: symbolic link %q has an empty target", ErrUnsafePath, entry)
	}
	if strings.IndexByte(target, 0) >= 0 {
		return fmt.Errorf("%w: symbolic link %q has a NUL byte", ErrUnsafePath, entry)
	}
	if path.IsAbs(target) {
		return nil
	}
	// Lexically, from the link's directory; a ".." at the root is the
	// escape.
	depth := strings.Count(path.Dir("/"+entry), "/")
	if path.Dir("/"+entry) == "/" {
		depth = 0
	}
	for _, c := range strings.Split(target, "/") {
		switch c {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return fmt.Errorf("%w: symbolic link %q -> %q points outside the image", ErrUnsafePath, entry, target)
			}
		default:
			depth++
		}
	}
	return nil
}

// ParseSHA256SUMS finds file's digest in a SHA256SUMS list ("HEX  NAME",
// "HEX *NAME" or BSD "SHA256 (NAME) = HEX").
func ParseSHA256SUMS(data []byte, file string) ([]byte, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var sum, name string
		if rest, ok := strings.CutPrefix(line, "SHA256 ("); ok {
			n, h, ok := strings.Cut(rest, ") = ")
			if !ok {
				continue
			}
			name, sum = n, h
		} else {
			h, n, ok := strings.Cut(line, " ")
			if !ok {
				continue
			}
			sum, name = h, strings.TrimPrefix(strings.TrimLeft(n, " "), "*")
		}
		if strings.TrimPrefix(name, "./") != file {
			continue
		}
		b, err := hex.DecodeString(sum)
		if err != nil || len(b) != 32 {
			return nil, fmt.Errorf("SHA256SUMS: malformed digest for %s", file)
		}
		return b, nil
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading SHA256SUMS: %w", err)
	}
	return nil, fmt.Errorf("SHA256SUMS has no entry for %s", file)
}
