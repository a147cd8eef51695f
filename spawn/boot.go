package spawn

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/netspawn/netspawn/spawn/config"
	"github.com/netspawn/netspawn/spawn/internal/proc"
)

// initCandidates are where -b looks for the OS's init, in order.
var initCandidates = []string{"/usr/lib/systemd/systemd", "/lib/systemd/systemd", "/sbin/init"}

// checkBootable refuses -b on a tree that is not an OS, as nspawn does: the
// tree (for a disk image its root and /usr partitions together) must hold
// /etc/os-release or /usr/lib/os-release, symbolic links resolved inside
// the tree. what names the tree in the error ("directory /x", "disk image
// /x.raw").
func checkBootable(t osTree, what string) error {
	_, err := findOSRelease(t)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s lacks /etc/os-release and /usr/lib/os-release: not an OS tree to boot (drop -b to run a command)", what)
	}
	return fmt.Errorf("%s: looking for its os-release file: %w", what, err)
}

// osTree is a container's file tree seen from the parent, by container
// path ("/etc/os-release").
type osTree interface {
	lstat(p string) (fs.FileMode, error)
	readlink(p string) (string, error)
}

// findOSRelease returns the container path of the tree's os-release file
// as nspawn (path_is_os_tree) finds it: /etc/os-release, else
// /usr/lib/os-release, each with its symbolic links resolved inside the
// tree; a dangling link counts as missing, any other error ends the search.
func findOSRelease(t osTree) (string, error) {
	var err error
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		var r string
		if r, err = chaseInTree(t, p); err == nil {
			return r, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	return "", err
}

// maxSymlinks is how many symbolic links chaseInTree follows (as the
// kernel's and systemd's chase).
const maxSymlinks = 32

// chaseInTree resolves the container path p in t, following symbolic
// links as if t were the root: absolute targets and ".." stay in the tree.
// It returns the resolved path, which exists.
func chaseInTree(t osTree, p string) (string, error) {
	resolved := "/"
	todo := strings.Split(p, "/")
	links := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			resolved = path.Dir(resolved)
			continue
		}
		next := path.Join(resolved, c)
		mode, err := t.lstat(next)
		if err != nil {
			return "", err
		}
		if mode&fs.ModeSymlink != 0 {
			if links++; links > maxSymlinks {
				return "", &fs.PathError{Op: "chase", Path: p, Err: syscall.ELOOP}
			}
			target, err := t.readlink(next)
			if err != nil {
				return "", err
			}
			if strings.HasPrefix(target, "/") {
				resolved = "/"
			}
			todo = append(strings.Split(target, "/"), todo...)
			continue
		}
		if !mode.IsDir() && hasComponent(todo) {
			return "", &fs.PathError{Op: "chase", Path: next, Err: syscall.ENOTDIR}
		}
		resolved = next
	}
	return resolved, nil
}

func hasComponent(parts []string) bool {
	for _, c := range parts {
		if c != "" && c != "." {
			return true
		}
	}
	return false
}

// hostTree is an osTree of host directories: dirs maps a container path
// ("/", "/usr") to the directory holding its tree; the longest match wins.
type hostTree map[string]string

func (h hostTree) hostPath(p string) (string, error) {
	best, found := "", false
	for at := range h {
		if (p == at || at == "/" || strings.HasPrefix(p, at+"/")) && (!found || len(at) > len(best)) {
			best, found = at, true
		}
	}
	if !found {
		return "", &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
	}
	rest := strings.TrimPrefix(strings.TrimPrefix(p, best), "/")
	// The trailing "/" of a tree's top makes lstat follow the directory's
	// path (/proc/self/fd/N is a link to it).
	return h[best] + "/" + rest, nil
}

func (h hostTree) lstat(p string) (fs.FileMode, error) {
	hp, err := h.hostPath(p)
	if err != nil {
		return 0, err
	}
	fi, err := os.Lstat(hp)
	if err != nil {
		return 0, err
	}
	return fi.Mode(), nil
}

func (h hostTree) readlink(p string) (string, error) {
	hp, err := h.hostPath(p)
	if err != nil {
		return "", err
	}
	return os.Readlink(hp)
}

// findInit returns the init to run, resolved in the container's root (call
// after pivot_root).
func findInit() (string, error) {
	for _, p := range initCandidates {
		if proc.IsExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("no init found in the container (looked for %s); install systemd in the tree, or run a command without -b",
		strings.Join(initCandidates, ", "))
}

// containerUUID picks the container_uuid passed to the payload: --uuid,
// else the tree's /etc/machine-id, else a random one. systemd inside uses it
// as the machine ID when /etc/machine-id is empty.
func containerUUID(cfg *config.Config) string {
	if id := normalizeID(cfg.UUID); id != "" {
		return formatUUID(id)
	}
	if b, err := os.ReadFile(filepath.Join(cfg.Directory, "etc/machine-id")); err == nil {
		if id := normalizeID(strings.TrimSpace(string(b))); id != "" {
			return formatUUID(id)
		}
	}
	var r [16]byte
	_ = readRandom(r[:])
	r[6] = r[6]&0x0f | 0x40 // version 4
	r[8] = r[8]&0x3f | 0x80 // variant
	return formatUUID(hex.EncodeToString(r[:]))
}

// normalizeID accepts a machine ID or UUID and returns its 32 lower-case
// hex digits, or "" if it is neither (or all zero).
func normalizeID(s string) string {
	s = strings.ToLower(strings.ReplaceAll(s, "-", ""))
	if len(s) != 32 {
		return ""
	}
	if _, err := hex.DecodeString(s); err != nil || s == strings.Repeat("0", 32) {
		return ""
	}
	return s
}

func formatUUID(id string) string {
	return id[0:8] + "-" + id[8:12] + "-" + id[12:16] + "-" + id[16:20] + "-" + id[20:32]
}
