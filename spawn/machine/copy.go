package machine

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/netspawn/netspawn/spawn/internal/mountpoint"
	"golang.org/x/sys/unix"
)

// Copying to and from a running machine goes through its root directory
// (/proc/LEADER/root) with every container path resolved by openat2 with
// RESOLVE_IN_ROOT: symlinks inside the container, absolute ones included,
// stay inside it, so a hostile image cannot redirect a copy to the host.
// Owners, modes and times are kept. A machine with a user namespace of its
// own sees IDs shifted: a file of the host's UID 1000 copied in belongs to
// the machine's UID 1000 (the host's shift+1000), one of the machine's UID
// 1000 copied out belongs to the host's 1000; IDs the other side has not
// got become the machine's root going in and nobody (65534) coming out.

// containerRoot opens the machine's root directory.
func containerRoot(leader int) (int, error) {
	fd, err := unix.Open("/proc/"+strconv.Itoa(leader)+"/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("opening the root of machine leader %d: %w", leader, err)
	}
	return fd, nil
}

// inContainer opens a path of the container, resolved inside its root.
func inContainer(root int, p string, flags uint64, mode uint32) (int, error) {
	rel := strings.TrimLeft(filepath.Clean("/"+p), "/")
	if rel == "" {
		rel = "."
	}
	return unix.Openat2(root, rel, &unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Mode: uint64(mode), Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
}

// CopyTo copies a host file or directory tree into a running machine. DST
// defaults to the same path; its parent must exist in the container.
func CopyTo(leader int, src, dst string, force bool) error {
	ids, err := readMachineIDs(leader)
	if err != nil {
		return err
	}
	return ids.asRoot(func() error { return copyTo(leader, src, dst, force, ids) })
}

func copyTo(leader int, src, dst string, force bool, ids machineIDs) error {
	root, err := containerRoot(leader)
	if err != nil {
		return err
	}
	defer unix.Close(root)
	if dst == "" {
		dst = src
	}
	parent, err := inContainer(root, filepath.Dir(dst), unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("directory %s in the machine: %w", filepath.Dir(dst), err)
	}
	defer unix.Close(parent)
	return copyIn(src, parent, filepath.Base(dst), force, ids)
}

// copyIn copies host path src to name below the container directory fd dir.
func copyIn(src string, dir int, name string, force bool, ids machineIDs) error {
	st, err := os.Lstat(src)
	if err != nil {
		return err
	}
	sys := new(unix.Stat_t)
	if err := unix.Lstat(src, sys); err != nil {
		return err
	}
	if !force {
		if err := unix.Fstatat(dir, name, new(unix.Stat_t), unix.AT_SYMLINK_NOFOLLOW); err == nil && !st.IsDir() {
			return fmt.Errorf("%s exists in the machine (use --force to replace it)", name)
		}
	}
	switch {
	case st.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		_ = unix.Unlinkat(dir, name, 0)
		if err := unix.Symlinkat(target, dir, name); err != nil {
			return fmt.Errorf("symlink %s: %w", name, err)
		}
		uid, gid := ids.in(sys.Uid, sys.Gid)
		return unix.Fchownat(dir, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
	case st.IsDir():
		if err := unix.Mkdirat(dir, name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("mkdir %s: %w", name, err)
		}
		sub, err := unix.Openat(dir, name, unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_RDONLY, 0)
		if err != nil {
			return fmt.Errorf("opening %s: %w", name, err)
		}
		defer unix.Close(sub)
		entries, err := os.ReadDir(src)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := copyIn(filepath.Join(src, e.Name()), sub, e.Name(), force, ids); err != nil {
				return err
			}
		}
		return finishFD(sub, sys, ids.in)
	case st.Mode().IsRegular():
		in, err := os.Open(src)
		if err != nil {
			return err
		}
		defer in.Close()
		_ = unix.Unlinkat(dir, name, 0)
		fd, err := unix.Openat(dir, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return fmt.Errorf("creating %s: %w", name, err)
		}
		out := os.NewFile(uintptr(fd), name)
		defer out.Close()
		if _, err := io.Copy(out, in); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
		return finishFD(int(out.Fd()), sys, ids.in)
	}
	return fmt.Errorf("%s: only files, directories and symlinks are copied", src)
}

// finishFD gives a copied file its owner (the source's, through owner),
// mode and times.
func finishFD(fd int, st *unix.Stat_t, owner func(uid, gid uint32) (int, int)) error {
	uid, gid := owner(st.Uid, st.Gid)
	if err := unix.Fchown(fd, uid, gid); err != nil {
		return err
	}
	if err := unix.Fchmod(fd, st.Mode&0o7777); err != nil {
		return err
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	return unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH)
}

// CopyFrom copies a file or directory tree out of a running machine to the
// host. DST defaults to the same path.
func CopyFrom(leader int, src, dst string, force bool) error {
	ids, err := readMachineIDs(leader)
	if err != nil {
		return err
	}
	root, err := containerRoot(leader)
	if err != nil {
		return err
	}
	defer unix.Close(root)
	if dst == "" {
		dst = src
	}
	fd, err := inContainer(root, src, unix.O_PATH|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("%s in the machine: %w", src, err)
	}
	defer unix.Close(fd)
	return copyOut(fd, dst, force, ids)
}

// copyOut copies the container object open (O_PATH) as fd to host path dst.
func copyOut(fd int, dst string, force bool, ids machineIDs) error {
	var st unix.Stat_t
	if err := unix.Fstatat(fd, "", &st, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if !force && st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if _, err := os.Lstat(dst); err == nil {
			return fmt.Errorf("%s exists on the host (use --force to replace it)", dst)
		}
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		buf := make([]byte, 4096)
		n, err := unix.Readlinkat(fd, "", buf)
		if err != nil {
			return err
		}
		os.Remove(dst)
		if err := os.Symlink(string(buf[:n]), dst); err != nil {
			return err
		}
		uid, gid := ids.out(st.Uid, st.Gid)
		return os.Lchown(dst, uid, gid)
	case unix.S_IFDIR:
		if err := os.Mkdir(dst, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		dfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		d := os.NewFile(uintptr(dfd), dst)
		names, err := d.Readdirnames(-1)
		if err != nil {
			d.Close()
			return err
		}
		for _, n := range names {
			cfd, err := unix.Openat(dfd, n, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				d.Close()
				return err
			}
			err = copyOut(cfd, filepath.Join(dst, n), force, ids)
			unix.Close(cfd)
			if err != nil {
				d.Close()
				return err
			}
		}
		d.Close()
		out, err := os.Open(dst)
		if err != nil {
			return err
		}
		defer out.Close()
		return finishFD(int(out.Fd()), &st, ids.out)
	case unix.S_IFREG:
		rfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			// O_PATH file descriptors reopen through /proc/self/fd.
			rfd, err = unix.Open("/proc/self/fd/"+strconv.Itoa(fd), unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
		}
		in := os.NewFile(uintptr(rfd), "src")
		defer in.Close()
		os.Remove(dst)
		out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		defer out.Close()
		if _, err := io.Copy(out, in); err != nil {
			return err
		}
		return finishFD(int(out.Fd()), &st, ids.out)
	}
	return fmt.Errorf("%s: only files, directories and symlinks are copied", dst)
}

// Bind mounts a host directory or file into a running machine, as
// machinectl bind does (idmapped into a machine with a user namespace): the mount is cloned on the host (open_tree), made
// read-only if asked, and moved into the machine's mount namespace from a
// thread that joined it.
func Bind(leader int, src, dst string, readOnly, mkdir bool) error {
	if dst == "" {
		dst = src
	}
	tree, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return fmt.Errorf("cloning the mount of %s: %w", src, err)
	}
	defer unix.Close(tree)
	if readOnly {
		if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
			return fmt.Errorf("making the mount read-only: %w", err)
		}
	}
	// A machine with a user namespace of its own sees the files through its
	// ID map (nspawn's idmap bind option): the host's UID 1000 is its 1000,
	// the host's root its root. Without this they would all be nobody.
	userNS, _, err := leaderUserNS(leader)
	if err != nil {
		return err
	}
	if userNS >= 0 {
		err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE,
			&unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userNS)})
		unix.Close(userNS)
		if err != nil {
			return fmt.Errorf("mapping %s into the machine's user namespace (an idmapped mount; the file system must support them): %w", src, err)
		}
	}
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	ids, err := readMachineIDs(leader)
	if err != nil {
		return err
	}
	mnt, err := unix.Open("/proc/"+strconv.Itoa(leader)+"/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening the machine's mount namespace: %w", err)
	}
	defer unix.Close(mnt)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		errc <- func() error {
			if err := unix.Unshare(unix.CLONE_FS); err != nil {
				return fmt.Errorf("unshare(CLONE_FS): %w", err)
			}
			if err := unix.Setns(mnt, unix.CLONE_NEWNS); err != nil {
				return fmt.Errorf("joining the machine's mount namespace: %w", err)
			}
			if mkdir {
				if err := ids.threadAsRoot(); err != nil {
					return err
				}
				if st.IsDir() {
					if err := os.MkdirAll(dst, 0o755); err != nil {
						return fmt.Errorf("creating %s in the machine: %w", dst, err)
					}
				} else if err := mountpoint.File(dst); err != nil {
					return err
				}
			}
			if err := unix.MoveMount(tree, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
				return fmt.Errorf("mounting on %s in the machine: %w (does it exist? --mkdir creates it)", dst, err)
			}
			return nil
		}()
	}()
	return <-errc
}
