package images

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Linux ioctl numbers not exported by x/sys/unix.
const (
	fsImmutableFL         = 0x00000010 // FS_IMMUTABLE_FL
	btrfsFirstFreeObjID   = 256        // inode number of a subvolume's root
	btrfsSubvolRdonly     = 1 << 1     // BTRFS_SUBVOL_RDONLY
	btrfsVolNameMax       = 4039
	btrfsIocSnapCreateV2  = 0x50009417 // _IOW(0x94, 23, struct btrfs_ioctl_vol_args_v2)
	btrfsIocSnapDestroy   = 0x5000940f // _IOW(0x94, 15, struct btrfs_ioctl_vol_args)
	btrfsIocSubvolCreate  = 0x5000940e // _IOW(0x94, 14, struct btrfs_ioctl_vol_args)
	btrfsIocSubvolGetflag = 0x80089419 // _IOR(0x94, 25, __u64)
	btrfsIocSubvolSetflag = 0x4008941a // _IOW(0x94, 26, __u64)
)

// btrfsVolArgsV2 is struct btrfs_ioctl_vol_args_v2 (4096 bytes).
type btrfsVolArgsV2 struct {
	Fd      int64
	Transid uint64
	Flags   uint64
	Unused  [4]uint64
	Name    [btrfsVolNameMax + 1]byte
}

// btrfsVolArgs is struct btrfs_ioctl_vol_args (4096 bytes).
type btrfsVolArgs struct {
	Fd   int64
	Name [4088]byte
}

// isSubvolume reports whether dir is the root of a btrfs subvolume.
func isSubvolume(dir string) bool {
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil || uint32(fs.Type) != uint32(unix.BTRFS_SUPER_MAGIC) {
		return false
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return false
	}
	return st.Mode&unix.S_IFMT == unix.S_IFDIR && st.Ino == btrfsFirstFreeObjID
}

// onBtrfs reports whether dir lives on btrfs.
func onBtrfs(dir string) bool {
	var fs unix.Statfs_t
	return unix.Statfs(dir, &fs) == nil && uint32(fs.Type) == uint32(unix.BTRFS_SUPER_MAGIC)
}

// createSubvolume makes dir a new, empty btrfs subvolume.
func createSubvolume(dir string) error {
	pfd, err := unix.Open(filepath.Dir(dir), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	var args btrfsVolArgs
	copy(args.Name[:len(args.Name)-1], filepath.Base(dir))
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(pfd), btrfsIocSubvolCreate, uintptr(unsafe.Pointer(&args))); e != 0 {
		return fmt.Errorf("creating btrfs subvolume %s: %w", dir, e)
	}
	return nil
}

// snapshot makes dst a writable btrfs snapshot of the subvolume src.
func snapshot(src, dst string) error {
	name := filepath.Base(dst)
	if len(name) > btrfsVolNameMax {
		return fmt.Errorf("snapshot name too long")
	}
	sfd, err := unix.Open(src, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", src, err)
	}
	defer unix.Close(sfd)
	pfd, err := unix.Open(filepath.Dir(dst), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", filepath.Dir(dst), err)
	}
	defer unix.Close(pfd)
	var args btrfsVolArgsV2
	args.Fd = int64(sfd)
	copy(args.Name[:], name)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(pfd), btrfsIocSnapCreateV2, uintptr(unsafe.Pointer(&args))); e != 0 {
		return fmt.Errorf("btrfs snapshot %s -> %s: %w", src, dst, e)
	}
	return nil
}

// destroySubvolume deletes the (writable) subvolume dir with its contents.
func destroySubvolume(dir string) error {
	pfd, err := unix.Open(filepath.Dir(dir), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	var args btrfsVolArgs
	copy(args.Name[:], filepath.Base(dir))
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(pfd), btrfsIocSnapDestroy, uintptr(unsafe.Pointer(&args))); e != 0 {
		return fmt.Errorf("deleting btrfs subvolume %s: %w", dir, e)
	}
	return nil
}

func subvolFlags(dir string) (uint64, int, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, -1, err
	}
	var flags uint64
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), btrfsIocSubvolGetflag, uintptr(unsafe.Pointer(&flags))); e != 0 {
		unix.Close(fd)
		return 0, -1, fmt.Errorf("reading subvolume flags of %s: %w", dir, e)
	}
	return flags, fd, nil
}

// subvolReadOnly reports the btrfs read-only property of a subvolume.
func subvolReadOnly(dir string) (bool, error) {
	flags, fd, err := subvolFlags(dir)
	if err != nil {
		return false, err
	}
	unix.Close(fd)
	return flags&btrfsSubvolRdonly != 0, nil
}

// setSubvolReadOnly sets or clears the btrfs read-only property.
func setSubvolReadOnly(dir string, ro bool) error {
	flags, fd, err := subvolFlags(dir)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if ro {
		flags |= btrfsSubvolRdonly
	} else {
		flags &^= btrfsSubvolRdonly
	}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), btrfsIocSubvolSetflag, uintptr(unsafe.Pointer(&flags))); e != 0 {
		return fmt.Errorf("setting the read-only property of %s: %w", dir, e)
	}
	return nil
}

// inodeFlags reads FS_IOC_GETFLAGS of a file or directory.
func inodeFlags(p string) (uint32, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	v, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		return 0, fmt.Errorf("reading inode flags of %s: %w", p, err)
	}
	return v, nil
}

// immutable reports FS_IMMUTABLE_FL (false where flags are unsupported).
func immutable(p string) bool {
	f, err := inodeFlags(p)
	return err == nil && f&fsImmutableFL != 0
}

// setImmutable sets or clears FS_IMMUTABLE_FL, as chattr +i/-i.
func setImmutable(p string, on bool) error {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	v, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		return fmt.Errorf("reading inode flags of %s: %w", p, err)
	}
	if on {
		v |= fsImmutableFL
	} else {
		v &^= fsImmutableFL
	}
	if err := unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(v)); err != nil {
		return fmt.Errorf("setting the immutable flag on %s (the file system may not support it): %w", p, err)
	}
	return nil
}

// copyXattrs copies every extended attribute (POSIX ACLs included) of src
// to dst without following symlinks. Attributes the target refuses
// (unsupported, or security.* without the right) are skipped.
func copyXattrs(src, dst string) error {
	names, err := listXattrs(src)
	if err != nil || len(names) == 0 {
		return nil
	}
	for _, n := range names {
		v, err := getXattr(src, n)
		if err != nil {
			continue
		}
		if err := unix.Lsetxattr(dst, n, v, 0); err != nil && !ignorableXattrErr(err) {
			return fmt.Errorf("setting %s on %s: %w", n, dst, err)
		}
	}
	return nil
}

func ignorableXattrErr(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EINVAL)
}

func listXattrs(p string) ([]string, error) {
	size, err := unix.Llistxattr(p, nil)
	if err != nil || size == 0 {
		return nil, err
	}
	buf := make([]byte, size)
	size, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, n := range strings.Split(string(buf[:size]), "\x00") {
		if n != "" {
			names = append(names, n)
		}
	}
	return names, nil
}

func getXattr(p, name string) ([]byte, error) {
	size, err := unix.Lgetxattr(p, name, nil)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, size)
	size, err = unix.Lgetxattr(p, name, buf)
	if err != nil {
		return nil, err
	}
	return buf[:size], nil
}

// birthTime returns a file's creation time where the file system keeps one.
func birthTime(p string) (int64, int64, bool) {
	var sx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BTIME, &sx); err != nil || sx.Mask&unix.STATX_BTIME == 0 {
		return 0, 0, false
	}
	return sx.Btime.Sec, int64(sx.Btime.Nsec), true
}
