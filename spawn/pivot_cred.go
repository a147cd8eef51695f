package spawn

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/netspawn/netspawn/spawn/config"
)

// setupPivotRoot is --pivot-root=NEW[:OLD], as nspawn's setup_pivot_root:
// the image's directory NEW is moved onto root, so that it becomes the
// container's /, and the image's own root goes to OLD inside it (or
// nowhere). It runs right after the root is attached, before the API file
// systems are mounted.
func setupPivotRoot(root, newRoot, oldRoot string) error {
	if newRoot == "" {
		return nil
	}
	src := inRoot(root, newRoot)
	if st, err := os.Lstat(src); err != nil || !st.IsDir() {
		return fmt.Errorf("--pivot-root=%s: %s is not a directory in the image", newRoot, newRoot)
	}
	// A mount of its own, to be moved.
	if err := mount(src, src, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("--pivot-root: %w", err)
	}
	if oldRoot == "" {
		if err := mount(src, root, "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("--pivot-root: %w", err)
		}
		return nil
	}
	if st, err := os.Stat(inRoot(src, oldRoot)); err != nil || !st.IsDir() {
		return fmt.Errorf("--pivot-root=%s:%s: %s is not a directory in %s, where the old root is to go", newRoot, oldRoot, oldRoot, newRoot)
	}
	tmp, err := os.MkdirTemp("", "netspawn-pivot-")
	if err != nil {
		return fmt.Errorf("--pivot-root: %w", err)
	}
	defer os.Remove(tmp)
	if err := mount(src, tmp, "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("--pivot-root: %w", err)
	}
	if err := mount(root, inRoot(tmp, oldRoot), "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("--pivot-root: %w", err)
	}
	if err := mount(tmp, root, "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("--pivot-root: %w", err)
	}
	return nil
}

// setupCredentials writes --set-credential= and --load-credential= into
// /run/host/credentials, as nspawn's setup_credentials: a ramfs, the files
// mode 0400 and the directory 0500, all owned by the container's root,
// then the mount and its superblock made read-only. The init runs as the
// container's root (in its user namespace when there is one), so 0:0 is
// that root.
func setupCredentials(root string, creds []config.Credential) error {
	if len(creds) == 0 {
		return nil
	}
	if err := os.MkdirAll(inRoot(root, "/run/host"), 0o755); err != nil {
		return fmt.Errorf("creating /run/host: %w", err)
	}
	dir := inRoot(root, config.CredentialsDir)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("creating %s: %w", config.CredentialsDir, err)
	}
	const flags = unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV
	if err := mount("ramfs", dir, "ramfs", flags, "mode=0700"); err != nil {
		return err
	}
	for _, c := range creds {
		p := filepath.Join(dir, c.ID)
		fd, err := unix.Open(p, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
		if err != nil {
			return fmt.Errorf("creating credential file %s: %w", p, err)
		}
		f := os.NewFile(uintptr(fd), p)
		_, err = f.Write(c.Data)
		if err == nil {
			err = f.Chmod(0o400)
		}
		if err == nil {
			err = f.Chown(0, 0)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("writing credential %s: %w", c.ID, err)
		}
	}
	if err := os.Chmod(dir, 0o500); err != nil {
		return fmt.Errorf("adjusting the mode of %s: %w", config.CredentialsDir, err)
	}
	if err := os.Lchown(dir, 0, 0); err != nil {
		return fmt.Errorf("adjusting the owner of %s: %w", config.CredentialsDir, err)
	}
	// Read-only: the mount, then its superblock.
	if err := mount("", dir, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|flags, ""); err != nil {
		return err
	}
	return mount("", dir, "", unix.MS_REMOUNT|unix.MS_RDONLY|flags, "mode=0500")
}
