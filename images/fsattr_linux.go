package images

import (
	"errors"
	"fmt"
	"strings"

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
