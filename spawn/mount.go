package spawn

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/netspawn/netspawn/spawn/config"
	"github.com/netspawn/netspawn/spawn/internal/mountpoint"
	"github.com/netspawn/netspawn/spawn/internal/plan"

	"golang.org/x/sys/unix"
)

func mount(src, dst, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(src, dst, fstype, flags, data); err != nil {
		return plan.MountErr(src, dst, fstype, flags, err)
	}
	return nil
}

// makeReadOnly makes the mount at path read-only, and with recursive every
// mount below it too.
func makeReadOnly(path string, recursive bool) error {
	flags := 0
	if recursive {
		flags = unix.AT_RECURSIVE
	}
	err := unix.MountSetattr(unix.AT_FDCWD, path, uint(flags), &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY})
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.ENOSYS) {
		return fmt.Errorf("making %s read-only: %w", path, err)
	}
	// Kernels before 5.12: remount the top mount, keeping its flags.
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return fmt.Errorf("making %s read-only: %w", path, err)
	}
	keep := uintptr(st.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME)
	return mount("", path, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|keep, "")
}

// inRoot joins a container path to the root directory. The container path
// may not climb out with "..".
func inRoot(root, p string) string {
	return filepath.Join(root, filepath.Clean("/"+p))
}

// setupMounts builds the container's file system under root, in the
// container's new mount namespace, before pivot_root.
func setupMounts(root string, msg *initMsg) error {
	cfg := msg.Config
	// Nothing we mount may propagate back to the host.
	if err := mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return err
	}
	// pivot_root needs the new root to be a mount point.
	if err := attachRoot(root, msg); err != nil {
		return err
	}
	if err := setupPivotRoot(root, cfg.PivotRoot, cfg.PivotRootOld); err != nil {
		return err
	}

	if err := runSteps(apiMountSteps(root, msg)); err != nil {
		return err
	}
	if err := writeUserDB(root, msg.BindUsers); err != nil {
		return err
	}
	p := func(s string) string { return inRoot(root, s) }
	if err := setupCredentials(root, cfg.Credentials); err != nil {
		return err
	}

	// The user's binds and tmpfs mounts, in order.
	for i, b := range cfg.Binds {
		if placed, err := placeBind(root, msg, i); err != nil {
			return err
		} else if placed {
			continue // the parent made it (user namespaces: storage.go)
		}
		src := b.Source
		switch {
		case b.SourceInRoot:
			src = p(b.Source)
		case src == "":
			src = msg.TempBinds[i]
		}
		if err := bindMount(src, p(b.Dest), b); err != nil {
			return err
		}
	}
	for _, t := range cfg.Tmpfs {
		dst := p(t.Dest)
		if err := mountpoint.Dir(dst, 0o755); err != nil {
			return err
		}
		opts := t.Options
		if opts == "" {
			opts = "mode=0755"
		}
		flags, data := tmpfsOptions(opts)
		data = withContext(data, cfg.SELinuxAPIFSContext)
		if err := mount("tmpfs", dst, "tmpfs", flags, data); err != nil {
			return fmt.Errorf("--tmpfs=%s: %w", t.Dest, err)
		}
	}
	return attachLate(root, msg)
}

// tmpfsOptions splits generic mount flags out of a tmpfs option string.
func tmpfsOptions(opts string) (uintptr, string) {
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV)
	var data []string
	for _, o := range strings.Split(opts, ",") {
		switch o {
		case "":
		case "ro":
			flags |= unix.MS_RDONLY
		case "rw":
		case "suid":
			flags &^= unix.MS_NOSUID
		case "nosuid":
			flags |= unix.MS_NOSUID
		case "dev":
			flags &^= unix.MS_NODEV
		case "nodev":
			flags |= unix.MS_NODEV
		case "exec":
		case "noexec":
			flags |= unix.MS_NOEXEC
		default:
			data = append(data, o)
		}
	}
	return flags, strings.Join(data, ",")
}

func bindMount(src, dst string, b config.BindMount) error {
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("bind mount source %s: %w", src, err)
	}
	if st.IsDir() {
		err = mountpoint.Dir(dst, 0o755)
	} else {
		err = mountpoint.File(dst)
	}
	if err != nil {
		return err
	}
	flags := uintptr(unix.MS_BIND)
	if b.Recursive {
		flags |= unix.MS_REC
	}
	if err := mount(src, dst, "", flags, ""); err != nil {
		return err
	}
	if b.ReadOnly {
		return makeReadOnly(dst, b.Recursive)
	}
	return nil
}

// pivotRoot makes root the container's / and detaches the host's tree.
func pivotRoot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("entering %s: %w", root, err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root into %s: %w", root, err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the host's root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("entering the new root: %w", err)
	}
	return nil
}
