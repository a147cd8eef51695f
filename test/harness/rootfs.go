// Package harness is netspawn's end-to-end test kit: root trees built from
// busybox-static, network namespaces that play the host, and helpers that
// run the real binaries inside them and clean up after themselves.
package harness

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// BusyboxPath is where Debian's busybox-static installs its binary.
const BusyboxPath = "/bin/busybox"

const osRelease = `PRETTY_NAME="netspawn busybox test tree"
NAME="busybox"
ID=busybox
VERSION_ID=1
`

// BuildBusyboxTree makes a minimal OS tree at dir from the static busybox:
// /usr merged layout, every applet as a symlink, an /etc with root and an
// unprivileged user. dir must not exist yet or be empty.
func BuildBusyboxTree(dir, busybox string) error {
	out, err := exec.Command(busybox, "--list-full").Output()
	if err != nil {
		return fmt.Errorf("listing busybox applets (is busybox-static installed?): %w", err)
	}
	for _, d := range []string{"usr/bin", "usr/sbin", "etc", "root", "home/user", "var/tmp", "proc", "sys", "dev", "run", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), os.ModeSticky|0o777); err != nil {
		return err
	}
	if err := os.Chown(filepath.Join(dir, "home/user"), 1000, 1000); err != nil {
		return err
	}
	for _, l := range [][2]string{{"usr/bin", "bin"}, {"usr/sbin", "sbin"}} {
		if err := os.Symlink(l[0], filepath.Join(dir, l[1])); err != nil {
			return err
		}
	}
	if err := CopyFile(busybox, filepath.Join(dir, "usr/bin/busybox"), 0o755); err != nil {
		return err
	}
	for _, applet := range strings.Fields(string(out)) {
		// Applets live in bin, sbin, usr/bin, usr/sbin: all map into usr/.
		name := filepath.Base(applet)
		sub := "usr/bin"
		if strings.Contains(applet, "sbin/") {
			sub = "usr/sbin"
		}
		p := filepath.Join(dir, sub, name)
		if name == "busybox" {
			continue
		}
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		target := "busybox"
		if sub == "usr/sbin" {
			target = "../bin/busybox"
		}
		if err := os.Symlink(target, p); err != nil {
			return err
		}
	}
	files := map[string]string{
		"etc/passwd":     "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:Test User:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":      "root:x:0:\ntty:x:5:\nwheel:x:10:user\nuser:x:1000:\nnogroup:x:65534:\n",
		"etc/os-release": osRelease,
		"etc/hostname":   "busybox\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// CopyFile copies a file's contents to dst, made with mode.
func CopyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// CachedBusyboxTree returns a pristine busybox tree in the cache directory,
// building it on first use. Callers that write into a tree copy it first
// (CopyTree).
func CachedBusyboxTree(cacheDir string) (string, error) {
	sum, err := fileSum(BusyboxPath)
	if err != nil {
		return "", fmt.Errorf("busybox-static missing (%s): %w", BusyboxPath, err)
	}
	dir := filepath.Join(cacheDir, "busybox-"+sum[:12])
	if _, err := os.Stat(filepath.Join(dir, "etc/os-release")); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(cacheDir, ".busybox-build-")
	if err != nil {
		return "", err
	}
	if err := BuildBusyboxTree(tmp, BusyboxPath); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		if errors.Is(err, os.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) {
			return dir, nil // another process built it first
		}
		return "", err
	}
	return dir, nil
}

func fileSum(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// CopyTree copies a tree (cp -a) so a test may change it freely.
func CopyTree(src, dst string) error {
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		return fmt.Errorf("copying %s to %s: %v: %s", src, dst, err, out)
	}
	return nil
}
