package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netspawn/netspawn/test/harness"

	"golang.org/x/sys/unix"
)

// TestDevicePolicy: as with systemd-nspawn's DevicePolicy=closed, the
// container's root (which holds CAP_MKNOD) can neither make nor open a
// node of a host block device, here a loop device holding a secret, while
// the pseudo devices work; a device bound in with --bind= is usable, read
// only with --bind-ro=. The same holds on the re-executed init's path and
// for a -U container.
func TestDevicePolicy(t *testing.T) {
	e := harness.NewEnv(t)
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, append([]byte("SECRET-OF-THE-HOST"), make([]byte, 1<<20)...), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).Output()
	if err != nil {
		harness.Unavailable(t, fmt.Sprintf("losetup: %v", err))
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", loop).Run() })
	var st unix.Stat_t
	if err := unix.Stat(loop, &st); err != nil {
		t.Fatal(err)
	}
	maj, min := unix.Major(st.Rdev), unix.Minor(st.Rdev)
	// A node the tree already has (made on the host): opening it is what
	// the policy refuses.
	if err := unix.Mknod(filepath.Join(e.Tree, "root", "premade"), unix.S_IFBLK|0o600, int(st.Rdev)); err != nil {
		t.Fatal(err)
	}
	probe := fmt.Sprintf(`mknod /root/made b %d %d 2>/dev/null && echo made
head -c 18 /root/premade 2>/dev/null || echo refused
echo x > /dev/null && head -c 1 /dev/zero | wc -c`, maj, min)
	for _, extra := range [][]string{nil, {"--as-pid2"}, {"-U"}} {
		args := append(append([]string{}, extra...), "sh", "-c", probe)
		if extra != nil && extra[0] == "-U" {
			// -U: the node of the tree belongs to the host's root, which is
			// no one inside; mknod is refused by the user namespace anyway.
			args = append(append([]string{}, extra...), "sh", "-c", fmt.Sprintf("mknod /tmp/made b %d %d 2>/dev/null && echo made; echo x > /dev/null && echo null-ok", maj, min))
			want(t, e.Netspawn(args...), "null-ok")
			continue
		}
		want(t, e.Netspawn(args...), "refused\n1")
	}
	// Bound in: usable, read-only with --bind-ro.
	want(t, e.Netspawn("--bind="+loop+":/dev/disk", "sh", "-c", "head -c 18 /dev/disk"), "SECRET-OF-THE-HOST")
	want(t, e.Netspawn("--bind-ro="+loop+":/dev/disk", "sh", "-c", "head -c 18 /dev/disk; echo; (echo x > /dev/disk) 2>/dev/null || echo write-refused"),
		"SECRET-OF-THE-HOST\nwrite-refused")
	// The host's own access is untouched.
	if b, err := os.ReadFile(loop); err != nil || !strings.HasPrefix(string(b), "SECRET-OF-THE-HOST") {
		t.Fatalf("host read of %s: %v", loop, err)
	}
}
