package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/netspawn/netspawn/test/harness"
)

// The guest: Debian bookworm with systemd as PID 1, its own kernel, and
// what the profiles turn on (networkd, resolved, machined, nftables,
// br_netfilter). Built once with debootstrap and kept, as a tree and as an
// ext4 image, in the test cache; every boot runs on a throwaway snapshot of
// the image (qemu -snapshot), so the cached image never changes.

// guestVersion changes whenever the recipe changes, so caches rebuild.
const guestVersion = "v2"

var guestPackages = []string{
	"linux-image-amd64", "systemd", "systemd-sysv", "udev", "dbus", "kmod",
	"iproute2", "nftables", "systemd-resolved", "libnss-resolve", "systemd-container",
	"libnss-mymachines", "busybox-static", "dnsmasq-base", "bind9-dnsutils",
	"iputils-ping", "procps", "util-linux", "e2fsprogs",
	// dm-verity for disk images (veritysetup), and sfdisk to make them.
	"cryptsetup-bin", "fdisk",
}

// guestTree returns the cached guest tree, building it when missing.
func guestTree(cache string, logf func(string, ...any)) (string, error) {
	dir := filepath.Join(cache, "hostlane-bookworm-"+guestVersion)
	if _, err := os.Stat(filepath.Join(dir, "etc/netspawn-lane")); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	tmp := dir + ".build"
	os.RemoveAll(tmp)
	logf("building the guest with debootstrap (about 4 minutes, once; kept in %s)", dir)
	cmd := exec.Command("debootstrap", "--variant=minbase", "--include="+strings.Join(guestPackages, ","),
		"bookworm", tmp, harness.DebianMirror())
	if err := runLogged(cmd, func(l string) {
		if strings.HasPrefix(l, "I: Configuring") || strings.HasPrefix(l, "I: Base system") || strings.HasPrefix(l, "E:") {
			logf("  %s", l)
		}
	}); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("debootstrap of the guest: %w", err)
	}
	if err := finishGuest(tmp); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	return dir, nil
}

// finishGuest makes the tree a lane guest: a hostname, no gettys on the
// serial line (the lane writes there), the lane's data disk mounted at
// /opt/netspawn, and the unit that runs the lane once the system is up.
func finishGuest(root string) error {
	files := map[string]string{
		"etc/hostname": "lane\n",
		"etc/hosts":    "127.0.0.1 localhost\n127.0.1.1 lane\n::1 localhost ip6-localhost ip6-loopback\n",
		"etc/fstab":    "LABEL=netspawn-lane /opt/netspawn ext4 defaults 0 0\n",
		"etc/systemd/system/netspawn-lane.service": `[Unit]
Description=netspawn host lane
After=multi-user.target opt-netspawn.mount
Requires=opt-netspawn.mount

[Service]
Type=oneshot
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
ExecStart=/bin/sh /opt/netspawn/lane.sh
ExecStopPost=/bin/systemctl --no-block poweroff

[Install]
WantedBy=multi-user.target
`,
		"etc/netspawn-lane": guestVersion + "\n",
	}
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			return err
		}
	}
	links := map[string]string{
		"etc/systemd/system/serial-getty@ttyS0.service":                    "/dev/null",
		"etc/systemd/system/getty@tty1.service":                            "/dev/null",
		"etc/systemd/system/multi-user.target.wants/netspawn-lane.service": "/etc/systemd/system/netspawn-lane.service",
	}
	for p, target := range links {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		os.Remove(full)
		if err := os.Symlink(target, full); err != nil {
			return err
		}
	}
	return os.MkdirAll(filepath.Join(root, "opt/netspawn"), 0o755)
}

// guestImage returns the cached ext4 image of the guest tree, making it
// when missing (mkfs.ext4 -d: no mount, no loop device).
func guestImage(cache, tree string, logf func(string, ...any)) (string, error) {
	img := filepath.Join(cache, "hostlane-bookworm-"+guestVersion+".img")
	if _, err := os.Stat(img); err == nil {
		return img, nil
	}
	logf("making the guest's disk image")
	tmp := img + ".tmp"
	if err := mkfsFromDir(tree, tmp, "root", 3<<30); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return img, os.Rename(tmp, img)
}

// mkfsFromDir writes an ext4 file system holding dir's contents to img.
func mkfsFromDir(dir, img, label string, size int64) error {
	os.Remove(img)
	out, err := exec.Command("mkfs.ext4", "-q", "-F", "-L", label, "-d", dir, img, fmt.Sprintf("%dk", size/1024)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mkfs.ext4 -d %s: %v: %s", dir, err, out)
	}
	return nil
}

// runLogged runs cmd, handing each output line to line.
func runLogged(cmd *exec.Cmd, line func(string)) error {
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	var last []string
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line(sc.Text())
			last = append(last, sc.Text())
			if len(last) > 5 {
				last = last[1:]
			}
		}
	}()
	err := cmd.Wait()
	pw.Close()
	<-done
	if err != nil {
		return fmt.Errorf("%v: %s", err, strings.Join(last, "\n"))
	}
	return nil
}
