// Package treecopy copies directory trees the way an image clone needs:
// owners, modes, times, extended attributes (so ACLs), symlinks, device
// nodes, FIFOs, sockets and hard links kept; file data reflinked where the
// file system allows, else copied with copy_file_range. It depends on
// nothing heavy, so that netspawn (which execs itself for every
// container) can use it for --template.
package treecopy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

type inodeKey struct{ dev, ino uint64 }

// treeCopier copies a directory tree keeping owners, modes, times,
// extended attributes (so ACLs), symlinks, device nodes, FIFOs, sockets and
// hard links. File data is reflinked (FICLONE) when the file system allows,
// else copied (copy_file_range under io.Copy).
type treeCopier struct {
	ctx         context.Context
	links       map[inodeKey]string
	progress    Progress
	noReflink   bool
	noCopyRange bool
	buf         []byte
	top         string // the destination root, when it exists already
}

// Progress is told how many bytes of file data were copied; nil is fine.
type Progress interface{ Add(n int64) }

// Copy copies the tree src to dst, which must not exist yet. On error
// (or when ctx ends) dst may be partial: callers copy into a temporary name
// and remove it.
func Copy(ctx context.Context, src, dst string, p Progress) error {
	return copyTree(ctx, src, dst, false, p)
}

// CopyInto copies the contents and metadata of src into dst, an empty
// directory (a fresh btrfs subvolume, say).
func CopyInto(ctx context.Context, src, dst string, p Progress) error {
	return copyTree(ctx, src, dst, true, p)
}

func copyTree(ctx context.Context, src, dst string, exists bool, p Progress) error {
	if ctx == nil {
		ctx = context.Background()
	}
	c := &treeCopier{ctx: ctx, links: map[inodeKey]string{}, progress: p}
	if exists {
		c.top = dst
	}
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("%s is not a directory", src)
	}
	return c.copy(src, dst, &st)
}

// Size adds up the sizes of regular files under root (for a progress
// total) and their allocated blocks (disk usage), hard links counted once.
func Size(root string) (bytes, usage int64, err error) {
	seen := map[inodeKey]bool{}
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if st.Nlink > 1 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			k := inodeKey{uint64(st.Dev), st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		if st.Mode&unix.S_IFMT == unix.S_IFREG {
			bytes += st.Size
		}
		usage += st.Blocks * 512
		return nil
	})
	return bytes, usage, err
}

func (c *treeCopier) copy(src, dst string, st *unix.Stat_t) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	mode := st.Mode & unix.S_IFMT
	if mode != unix.S_IFDIR && st.Nlink > 1 {
		k := inodeKey{uint64(st.Dev), st.Ino}
		if first, ok := c.links[k]; ok {
			if err := os.Link(first, dst); err != nil {
				return fmt.Errorf("hard link %s: %w", dst, err)
			}
			return nil
		}
		c.links[k] = dst
	}
	switch mode {
	case unix.S_IFDIR:
		if dst == c.top {
			// exists already
		} else if err := unix.Mkdir(dst, 0o700); err != nil {
			return fmt.Errorf("mkdir %s: %w", dst, err)
		}
		entries, err := os.ReadDir(src)
		if err != nil {
			return fmt.Errorf("reading %s: %w", src, err)
		}
		for _, e := range entries {
			s, d := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
			var cst unix.Stat_t
			if err := unix.Lstat(s, &cst); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
			if err := c.copy(s, d, &cst); err != nil {
				return err
			}
		}
	case unix.S_IFREG:
		if err := c.copyFile(src, dst, st); err != nil {
			return err
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return fmt.Errorf("reading link %s: %w", src, err)
		}
		if err := os.Symlink(target, dst); err != nil {
			return fmt.Errorf("symlink %s: %w", dst, err)
		}
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		if err := unix.Mknod(dst, st.Mode, int(st.Rdev)); err != nil {
			return fmt.Errorf("mknod %s: %w", dst, err)
		}
	default:
		return fmt.Errorf("%s: unknown file type %#o", src, mode)
	}
	return applyMeta(src, dst, st)
}

// applyMeta sets owner, mode (after chown, which clears set-id bits),
// extended attributes and times of dst from src's stat.
func applyMeta(src, dst string, st *unix.Stat_t) error {
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("chown %s: %w", dst, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Chmod(dst, st.Mode&0o7777); err != nil {
			return fmt.Errorf("chmod %s: %w", dst, err)
		}
	}
	if src != "" {
		if err := CopyXattrs(src, dst); err != nil {
			return err
		}
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("setting times of %s: %w", dst, err)
	}
	return nil
}

func (c *treeCopier) copyFile(src, dst string, st *unix.Stat_t) error {
	// Raw descriptors: regular files gain nothing from Go's poller.
	in, err := unix.Open(src, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", src, err)
	}
	defer unix.Close(in)
	out, err := unix.Open(dst, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("creating %s: %w", dst, err)
	}
	if err := c.fileData(out, in); err != nil {
		unix.Close(out)
		return fmt.Errorf("copying %s: %w", src, err)
	}
	if c.progress != nil {
		c.progress.Add(st.Size)
	}
	if err := unix.Close(out); err != nil {
		return fmt.Errorf("writing %s: %w", dst, err)
	}
	return nil
}

// fileData clones (FICLONE) or copies (copy_file_range, else read and
// write) the data of in to out.
func (c *treeCopier) fileData(out, in int) error {
	if !c.noReflink {
		err := unix.IoctlFileClone(out, in)
		if err == nil {
			return nil
		}
		// Not supported here (or across file systems): stop trying.
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTTY) {
			c.noReflink = true
		}
	}
	if !c.noCopyRange {
		for {
			n, err := unix.CopyFileRange(in, nil, out, nil, 1<<30, 0)
			if err == unix.EINTR {
				continue
			}
			if err == nil && n == 0 {
				return nil
			}
			if err == nil {
				continue
			}
			if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
				c.noCopyRange = true
				break
			}
			return err
		}
		// Start over with plain reads and writes.
		if _, err := unix.Seek(in, 0, 0); err != nil {
			return err
		}
		if err := unix.Ftruncate(out, 0); err != nil {
			return err
		}
		if _, err := unix.Seek(out, 0, 0); err != nil {
			return err
		}
	}
	if c.buf == nil {
		c.buf = make([]byte, 256<<10)
	}
	_, err := io.CopyBuffer(FDWriter(out), FDReader(in), c.buf)
	return err
}

// FDReader reads from a raw file descriptor.
type FDReader int

func (r FDReader) Read(b []byte) (int, error) {
	for {
		n, err := unix.Read(int(r), b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 && len(b) > 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

// CopyFile copies one file (a raw image) with reflink where possible.
func CopyFile(src, dst string, p Progress) error {
	var st unix.Stat_t
	if err := unix.Stat(src, &st); err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	c := &treeCopier{ctx: context.Background(), links: map[inodeKey]string{}, progress: p}
	if err := c.copyFile(src, dst, &st); err != nil {
		return err
	}
	return applyMeta(src, dst, &st)
}

// FDWriter writes to a raw file descriptor.
type FDWriter int

func (w FDWriter) Write(b []byte) (int, error) {
	done := 0
	for done < len(b) {
		n, err := unix.Write(int(w), b[done:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}

// CopyXattrs copies every extended attribute (POSIX ACLs included) of src
// to dst without following symlinks. Attributes the target refuses
// (unsupported, or security.* without the right) are skipped.
func CopyXattrs(src, dst string) error {
	names, err := ListXattrs(src)
	if err != nil || len(names) == 0 {
		return nil
	}
	for _, n := range names {
		v, err := GetXattr(src, n)
		if err != nil {
			continue
		}
		if err := unix.Lsetxattr(dst, n, v, 0); err != nil && !IgnorableXattrErr(err) {
			return fmt.Errorf("setting %s on %s: %w", n, dst, err)
		}
	}
	return nil
}

// IgnorableXattrErr reports an attribute the target refuses for want of
// support or right, which a copy skips.
func IgnorableXattrErr(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EINVAL)
}

// ListXattrs lists the extended attributes of p (not following symlinks).
func ListXattrs(p string) ([]string, error) {
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

// GetXattr reads one extended attribute of p (not following symlinks).
func GetXattr(p, name string) ([]byte, error) {
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
