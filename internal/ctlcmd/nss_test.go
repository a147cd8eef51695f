package ctlcmd

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCtl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := newRoot(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestNSSEnableDisable(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "nsswitch.conf")
	link := filepath.Join(dir, "link.conf")
	const orig = "passwd: files\nhosts:   files dns # stock\n"
	if err := os.WriteFile(real, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("nsswitch.conf", link); err != nil {
		t.Fatal(err)
	}
	if _, err := runCtl(t, "nss", "status", "--nsswitch", link); err == nil {
		t.Error("status of a file without netspawn succeeded")
	}
	if _, err := runCtl(t, "nss", "enable", "--nsswitch", link); err != nil {
		t.Fatal(err)
	}
	// The link's target is changed, and the link stays a link.
	if b, _ := os.ReadFile(real); string(b) != "passwd: files\nhosts:   files netspawn dns # stock\n" {
		t.Errorf("after enable: %q", b)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symbolic link was replaced")
	}
	if st, _ := os.Stat(real); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", st.Mode())
	}
	if out, err := runCtl(t, "nss", "enable", "--nsswitch", link); err != nil || !strings.Contains(out, "unchanged") {
		t.Errorf("second enable: %q, %v", out, err)
	}
	if _, err := runCtl(t, "nss", "status", "--nsswitch", link); err != nil {
		t.Error(err)
	}
	if _, err := runCtl(t, "nss", "disable", "--nsswitch", real); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(real); string(b) != orig {
		t.Errorf("after disable: %q", b)
	}
}

func TestNSSEnableErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := runCtl(t, "nss", "enable", "--nsswitch", filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing file: %v", err)
	}
	p := filepath.Join(dir, "nsswitch.conf")
	if err := os.WriteFile(p, []byte("passwd: files\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runCtl(t, "nss", "enable", "--nsswitch", p); err == nil || !strings.Contains(err.Error(), "no hosts: line") {
		t.Errorf("no hosts line: %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "passwd: files\n" {
		t.Errorf("file changed on error: %q", b)
	}
}
