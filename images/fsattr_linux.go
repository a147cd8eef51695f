package images

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Linux ioctl numbers not exported by x/sys/unix.
const (
	fsImmutableFL = 0x00000010 // FS_IMMUTABLE_FL
)

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

// birthTime returns a file's creation time where the file system keeps one.
func birthTime(p string) (int64, int64, bool) {
	var sx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BTIME, &sx); err != nil || sx.Mask&unix.STATX_BTIME == 0 {
		return 0, 0, false
	}
	return sx.Btime.Sec, int64(sx.Btime.Nsec), true
}
