package treecopy

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

type counter int64

func (c *counter) Add(n int64) { *c += counter(n) }

// A tree with a file, a hard link to it, a symlink, an empty directory and
// modes is copied whole, hard links kept, data counted once per inode.
func TestCopy(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "copy")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "etc/empty"), 0o700))
	must(os.WriteFile(filepath.Join(src, "etc/hostname"), []byte("web\n"), 0o640))
	must(os.Link(filepath.Join(src, "etc/hostname"), filepath.Join(src, "hostname.hard")))
	must(os.Symlink("etc/hostname", filepath.Join(src, "hostname.sym")))
	var n counter
	must(Copy(context.Background(), src, dst, &n))
	if b, err := os.ReadFile(filepath.Join(dst, "etc/hostname")); err != nil || string(b) != "web\n" {
		t.Errorf("content %q %v", b, err)
	}
	if st, err := os.Stat(filepath.Join(dst, "etc/hostname")); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v %v", st.Mode(), err)
	}
	if st, err := os.Stat(filepath.Join(dst, "etc/empty")); err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 {
		t.Errorf("dir %v %v", st, err)
	}
	if l, err := os.Readlink(filepath.Join(dst, "hostname.sym")); err != nil || l != "etc/hostname" {
		t.Errorf("symlink %q %v", l, err)
	}
	var a, b unix.Stat_t
	must(unix.Stat(filepath.Join(dst, "etc/hostname"), &a))
	must(unix.Stat(filepath.Join(dst, "hostname.hard"), &b))
	if a.Ino != b.Ino {
		t.Error("hard link not kept")
	}
	if n != 4 {
		t.Errorf("progress counted %d bytes, want 4", n)
	}
	if bytes, _, err := Size(src); err != nil || bytes != 4 {
		t.Errorf("Size = %d %v, want 4", bytes, err)
	}
	if err := Copy(context.Background(), src, dst, nil); err == nil {
		t.Error("copying onto an existing tree worked")
	}
}
