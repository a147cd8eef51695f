package spawn

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// fakeTree is an osTree in memory: a path is a directory (""), a file
// ("f") or a symbolic link ("-> target"); parents are implied.
type fakeTree map[string]string

func (f fakeTree) entry(p string) (string, bool) {
	if p == "/" {
		return "", true
	}
	if e, ok := f[p]; ok {
		return e, true
	}
	for q := range f {
		if strings.HasPrefix(q, p+"/") {
			return "", true
		}
	}
	return "", false
}

func (f fakeTree) lstat(p string) (fs.FileMode, error) {
	e, ok := f.entry(p)
	switch {
	case !ok:
		return 0, &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
	case e == "":
		return fs.ModeDir, nil
	case strings.HasPrefix(e, "-> "):
		return fs.ModeSymlink, nil
	}
	return 0, nil
}

func (f fakeTree) readlink(p string) (string, error) {
	e, _ := f.entry(p)
	if !strings.HasPrefix(e, "-> ") {
		return "", &fs.PathError{Op: "readlink", Path: p, Err: syscall.EINVAL}
	}
	return strings.TrimPrefix(e, "-> "), nil
}

// The os-release file is found as nspawn finds it: /etc first, then
// /usr/lib, links resolved inside the tree (a Debian-style relative link
// into /usr, an absolute one, one through ".." past the top), dangling
// links are missing, and a loop is an error.
func TestFindOSRelease(t *testing.T) {
	for _, c := range []struct {
		name string
		tree fakeTree
		want string // "" for none; "!" for an error other than not found
	}{
		{"etc", fakeTree{"/etc/os-release": "f", "/usr/lib/os-release": "f"}, "/etc/os-release"},
		{"usr only", fakeTree{"/usr/lib/os-release": "f"}, "/usr/lib/os-release"},
		{"debian link", fakeTree{"/etc/os-release": "-> ../usr/lib/os-release", "/usr/lib/os-release": "f"}, "/usr/lib/os-release"},
		{"absolute link", fakeTree{"/etc/os-release": "-> /usr/lib/os-release", "/usr/lib/os-release": "f"}, "/usr/lib/os-release"},
		{"dotdot past top", fakeTree{"/etc/os-release": "-> ../../../usr/lib/os-release", "/usr/lib/os-release": "f"}, "/usr/lib/os-release"},
		{"linked lib", fakeTree{"/lib": "-> usr/lib", "/etc/os-release": "-> /lib/os-release", "/usr/lib/os-release": "f"}, "/usr/lib/os-release"},
		{"dangling link then usr", fakeTree{"/etc/os-release": "-> /nowhere", "/usr/lib/os-release": "f"}, "/usr/lib/os-release"},
		{"dangling link only", fakeTree{"/etc/os-release": "-> ../usr/lib/os-release", "/usr/bin/sh": "f"}, ""},
		{"none", fakeTree{"/usr/bin/sh": "f", "/sbin/init": "f"}, ""},
		{"loop", fakeTree{"/etc/os-release": "-> os-release2", "/etc/os-release2": "-> os-release"}, "!"},
		{"etc a file", fakeTree{"/etc": "f", "/usr/lib/os-release": "f"}, "!"},
	} {
		got, err := findOSRelease(c.tree)
		switch {
		case c.want == "!":
			if err == nil || errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s: got %q %v, want an error", c.name, got, err)
			}
		case c.want == "":
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s: got %q %v, want not found", c.name, got, err)
			}
		case err != nil || got != c.want:
			t.Errorf("%s: got %q %v, want %q", c.name, got, err, c.want)
		}
	}
}

// checkBootable on host directories: the root and /usr partitions of an
// image are separate trees, and the link from the root's /etc into /usr
// finds the file on the /usr tree; an absolute link does not escape to
// the host's files.
func TestCheckBootableHostTree(t *testing.T) {
	root, usr := t.TempDir(), t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	must(os.Mkdir(filepath.Join(root, "usr"), 0o755))
	must(os.Symlink("../usr/lib/os-release", filepath.Join(root, "etc/os-release")))
	if err := checkBootable(hostTree{"/": root}, "disk image x.raw"); err == nil || !strings.Contains(err.Error(), "disk image x.raw lacks /etc/os-release") {
		t.Fatalf("root alone: %v", err)
	}
	must(os.MkdirAll(filepath.Join(usr, "lib"), 0o755))
	must(os.WriteFile(filepath.Join(usr, "lib/os-release"), []byte("ID=test\n"), 0o644))
	if err := checkBootable(hostTree{"/": root, "/usr": usr}, "disk image x.raw"); err != nil {
		t.Fatalf("root and /usr: %v", err)
	}
	// An image with a /usr partition alone: an empty root.
	if err := checkBootable(hostTree{"/": t.TempDir(), "/usr": usr}, "disk image x.raw"); err != nil {
		t.Fatalf("/usr alone: %v", err)
	}
	// An absolute link stays in the tree: it names no host file, though
	// the host's path exists.
	dir := t.TempDir()
	must(os.Mkdir(filepath.Join(dir, "etc"), 0o755))
	must(os.Symlink(filepath.Join(usr, "lib/os-release"), filepath.Join(dir, "etc/os-release")))
	if err := checkBootable(hostTree{"/": dir}, "directory "+dir); err == nil || !strings.Contains(err.Error(), "lacks /etc/os-release") {
		t.Fatalf("absolute link out of the tree: %v", err)
	}
}
