package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// DebianMirror is where debootstrap fetches packages; override with
// $NETSPAWN_DEBIAN_MIRROR.
func DebianMirror() string {
	if m := os.Getenv("NETSPAWN_DEBIAN_MIRROR"); m != "" {
		return m
	}
	return "http://deb.debian.org/debian"
}

// debianPackages are what the boot tests need in the tree.
var debianPackages = []string{"systemd", "systemd-sysv", "dbus", "iproute2", "iputils-ping", "netcat-openbsd", "busybox"}

// debianVersion changes whenever the tree's recipe changes, so caches rebuild.
const debianVersion = "v2"

// CachedDebianTree returns a pristine Debian bookworm tree (minbase with
// systemd, networkd enabled), built with debootstrap on first use (about a
// minute) and kept in the cache directory. progress receives debootstrap's
// output lines; callers copy the tree before booting it.
func CachedDebianTree(cacheDir string, progress func(string)) (string, error) {
	dir := filepath.Join(cacheDir, "debian-bookworm-"+debianVersion)
	if _, err := os.Stat(filepath.Join(dir, "usr/lib/systemd/systemd")); err == nil {
		return dir, nil
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return "", fmt.Errorf("debootstrap is not installed (apt-get install debootstrap): %w", err)
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	tmp := filepath.Join(cacheDir, ".debian-build")
	os.RemoveAll(tmp)
	cmd := exec.Command("debootstrap", "--variant=minbase", "--include="+strings.Join(debianPackages, ","),
		"bookworm", tmp, DebianMirror())
	out, err := cmd.CombinedOutput()
	if progress != nil {
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			progress(l)
		}
	}
	if err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("debootstrap bookworm: %v: %s", err, lastLines(string(out), 5))
	}
	if err := finishDebianTree(tmp); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	return dir, nil
}

// finishDebianTree makes the tree a container image as a user would: no
// machine ID (systemd makes one from container_uuid), no fixed hostname (the
// machine name is used), systemd-networkd enabled (its stock
// 80-container-host0.network runs DHCP on host0), root without a password
// for console logins.
func finishDebianTree(root string) error {
	if err := os.WriteFile(filepath.Join(root, "etc/machine-id"), nil, 0o444); err != nil {
		return err
	}
	os.Remove(filepath.Join(root, "var/lib/dbus/machine-id"))
	os.Remove(filepath.Join(root, "etc/hostname"))
	links := map[string]string{
		"etc/systemd/system/multi-user.target.wants/systemd-networkd.service":                 "/lib/systemd/system/systemd-networkd.service",
		"etc/systemd/system/sockets.target.wants/systemd-networkd.socket":                     "/lib/systemd/system/systemd-networkd.socket",
		"etc/systemd/system/network-online.target.wants/systemd-networkd-wait-online.service": "/lib/systemd/system/systemd-networkd-wait-online.service",
	}
	for l, target := range links {
		p := filepath.Join(root, l)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		os.Remove(p)
		if err := os.Symlink(target, p); err != nil {
			return err
		}
	}
	shadow := filepath.Join(root, "etc/shadow")
	b, err := os.ReadFile(shadow)
	if err != nil {
		return err
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if f := strings.SplitN(l, ":", 3); len(f) == 3 && f[0] == "root" {
			lines[i] = "root::" + f[2]
		}
	}
	return os.WriteFile(shadow, []byte(strings.Join(lines, "\n")), 0o640)
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
