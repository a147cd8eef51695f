package mountpoint

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a", "b", "resolv.conf")
	if err := File(p); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() || st.Size() != 0 {
		t.Fatalf("%v %v", st, err)
	}
	// An existing node (here a symlink to nowhere) is kept.
	l := filepath.Join(dir, "link")
	if err := os.Symlink("/nonexistent", l); err != nil {
		t.Fatal(err)
	}
	if err := File(l); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(l); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("symlink replaced: %v %v", st, err)
	}
	if err := Dir(filepath.Join(p, "x"), 0o755); err == nil {
		t.Error("a directory under a file was made")
	}
}
