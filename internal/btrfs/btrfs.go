// Package btrfs makes, snapshots and deletes btrfs subvolumes and reads and
// sets their read-only property, through the kernel's ioctls (no
// btrfs-progs needed): image clones, -x snapshots and --template share it.
package btrfs

import (
	"fmt"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Linux ioctl numbers and sizes not exported by x/sys/unix.
const (
	firstFreeObjID        = 256    // inode number of a subvolume's root
	btrfsSubvolRdonly     = 1 << 1 // BTRFS_SUBVOL_RDONLY
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

// IsSubvolume reports whether dir is the root of a btrfs subvolume.
func IsSubvolume(dir string) bool {
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil || uint32(fs.Type) != uint32(unix.BTRFS_SUPER_MAGIC) {
		return false
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return false
	}
	return st.Mode&unix.S_IFMT == unix.S_IFDIR && st.Ino == firstFreeObjID
}

// OnBtrfs reports whether dir lives on btrfs.
func OnBtrfs(dir string) bool {
	var fs unix.Statfs_t
	return unix.Statfs(dir, &fs) == nil && uint32(fs.Type) == uint32(unix.BTRFS_SUPER_MAGIC)
}

// CreateSubvolume makes dir a new, empty btrfs subvolume.
func CreateSubvolume(dir string) error {
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

// Snapshot makes dst a writable btrfs snapshot of the subvolume src.
func Snapshot(src, dst string) error {
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

// DeleteSubvolume deletes the (writable) subvolume dir with its contents.
func DeleteSubvolume(dir string) error {
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

// ReadOnly reports the btrfs read-only property of a subvolume.
func ReadOnly(dir string) (bool, error) {
	flags, fd, err := subvolFlags(dir)
	if err != nil {
		return false, err
	}
	unix.Close(fd)
	return flags&btrfsSubvolRdonly != 0, nil
}

// SetReadOnly sets or clears the btrfs read-only property.
func SetReadOnly(dir string, ro bool) error {
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
