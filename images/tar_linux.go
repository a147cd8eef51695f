package images

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/netspawn/netspawn/internal/treecopy"
	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"
)

// inodeKey identifies a file across hard links.
type inodeKey struct{ dev, ino uint64 }

const paxXattr = "SCHILY.xattr."

// Compress wraps w in the given compression; Close flushes it (not w).
func Compress(w io.Writer, c Compression) (io.WriteCloser, error) {
	switch c {
	case Gzip:
		return gzip.NewWriter(w), nil
	case XZ:
		return xz.NewWriter(w)
	case Zstd:
		return zstd.NewWriter(w)
	}
	return nopWriteCloser{w}, nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// Decompress detects r's compression from its first bytes and unwraps it.
func Decompress(r io.Reader) (io.ReadCloser, Compression, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(6)
	c := DetectCompression(head)
	switch c {
	case Gzip:
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, c, fmt.Errorf("gzip: %w", err)
		}
		return z, c, nil
	case XZ:
		z, err := xz.NewReader(br)
		if err != nil {
			return nil, c, fmt.Errorf("xz: %w", err)
		}
		return io.NopCloser(z), c, nil
	case Zstd:
		z, err := zstd.NewReader(br)
		if err != nil {
			return nil, c, fmt.Errorf("zstd: %w", err)
		}
		return z.IOReadCloser(), c, nil
	}
	return io.NopCloser(br), c, nil
}

// WriteTar writes the tree under root to w as a tar stream with numeric
// owners, modes, times, extended attributes (PAX SCHILY.xattr, so ACLs too),
// symlinks, hard links and device nodes. Names are relative ("./etc/...").
func WriteTar(ctx context.Context, root string, w io.Writer, p *Progress) error {
	if ctx == nil {
		ctx = context.Background()
	}
	tw := tar.NewWriter(w)
	links := map[inodeKey]string{}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		name := "./" + filepath.ToSlash(rel)
		if rel == "." {
			name = "./"
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		h := &tar.Header{
			Name:    name,
			Mode:    int64(st.Mode & 0o7777),
			Uid:     int(st.Uid),
			Gid:     int(st.Gid),
			ModTime: time.Unix(st.Mtim.Unix()),
			Format:  tar.FormatPAX,
		}
		mode := st.Mode & unix.S_IFMT
		if mode != unix.S_IFDIR && st.Nlink > 1 {
			k := inodeKey{uint64(st.Dev), st.Ino}
			if first, ok := links[k]; ok {
				h.Typeflag, h.Linkname = tar.TypeLink, first
				return tw.WriteHeader(h)
			}
			links[k] = name
		}
		switch mode {
		case unix.S_IFDIR:
			h.Typeflag = tar.TypeDir
			if rel != "." {
				h.Name += "/"
			}
		case unix.S_IFREG:
			h.Typeflag, h.Size = tar.TypeReg, st.Size
		case unix.S_IFLNK:
			h.Typeflag = tar.TypeSymlink
			if h.Linkname, err = os.Readlink(path); err != nil {
				return fmt.Errorf("reading link %s: %w", path, err)
			}
		case unix.S_IFCHR, unix.S_IFBLK:
			h.Typeflag = tar.TypeChar
			if mode == unix.S_IFBLK {
				h.Typeflag = tar.TypeBlock
			}
			h.Devmajor, h.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
		case unix.S_IFIFO:
			h.Typeflag = tar.TypeFifo
		case unix.S_IFSOCK:
			return nil // tar cannot hold sockets; GNU tar skips them too
		}
		if names, _ := treecopy.ListXattrs(path); len(names) > 0 {
			sort.Strings(names)
			h.PAXRecords = map[string]string{}
			for _, n := range names {
				if v, err := treecopy.GetXattr(path, n); err == nil {
					h.PAXRecords[paxXattr+n] = string(v)
				}
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("tar header for %s: %w", path, err)
		}
		if h.Typeflag == tar.TypeReg {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			n, err := io.Copy(tw, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("archiving %s: %w", path, err)
			}
			if n != st.Size {
				return fmt.Errorf("%s changed size while archiving", path)
			}
			p.Add(n)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// extractor unpacks into root without ever following a symbolic link that
// the archive made: parents are checked component by component.
type extractor struct {
	buf      []byte
	root     string
	safeDirs map[string]bool
	dirs     []dirMeta
	progress *Progress
}

type dirMeta struct {
	path string
	h    *tar.Header
}

// ExtractTar unpacks a tar stream into the existing directory root,
// keeping owners, modes, times, xattrs, links and device nodes. Entries
// with ".." components, hard links leaving the tree, and relative symlinks
// climbing out of it are refused with ErrUnsafePath.
func ExtractTar(ctx context.Context, r io.Reader, root string, p *Progress) error {
	if ctx == nil {
		ctx = context.Background()
	}
	x := &extractor{buf: make([]byte, 256<<10), root: root, safeDirs: map[string]bool{"": true}, progress: p}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading tar: %w", err)
		}
		if err := x.entry(tr, h); err != nil {
			return err
		}
	}
	// Directory metadata last, deepest first, so times stick.
	for i := len(x.dirs) - 1; i >= 0; i-- {
		// A later entry may have replaced the directory (by a symlink,
		// which chmod would follow): only real directories get metadata.
		var st unix.Stat_t
		if unix.Lstat(x.dirs[i].path, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		if err := setHeaderMeta(x.dirs[i].path, x.dirs[i].h); err != nil {
			return err
		}
	}
	return nil
}

// ensureParent makes sure every directory above rel exists as a real
// directory (not a symlink), creating missing ones.
func (x *extractor) ensureParent(rel string) error {
	dir := filepath.Dir(rel)
	if dir == "." {
		return nil
	}
	if x.safeDirs[dir] {
		return nil
	}
	if err := x.ensureParent(dir); err != nil {
		return err
	}
	full := filepath.Join(x.root, dir)
	var st unix.Stat_t
	err := unix.Lstat(full, &st)
	switch {
	case err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR:
	case err == nil:
		return fmt.Errorf("%w: %s is not a directory (a link?) but entries go below it", ErrUnsafePath, dir)
	case errors.Is(err, unix.ENOENT):
		if err := unix.Mkdir(full, 0o755); err != nil {
			return fmt.Errorf("mkdir %s: %w", full, err)
		}
	default:
		return err
	}
	x.safeDirs[dir] = true
	return nil
}

func (x *extractor) entry(tr *tar.Reader, h *tar.Header) error {
	rel, err := CleanEntryName(h.Name)
	if err != nil {
		return err
	}
	if rel == "" { // the root itself
		if h.Typeflag == tar.TypeDir {
			x.dirs = append(x.dirs, dirMeta{x.root, h})
		}
		return nil
	}
	if err := x.ensureParent(rel); err != nil {
		return err
	}
	full := filepath.Join(x.root, rel)
	// Replace what is there, unless both are directories.
	var st unix.Stat_t
	if err := unix.Lstat(full, &st); err == nil {
		if st.Mode&unix.S_IFMT == unix.S_IFDIR && h.Typeflag == tar.TypeDir {
			x.dirs = append(x.dirs, dirMeta{full, h})
			return nil
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			err = os.RemoveAll(full)
		} else {
			err = os.Remove(full)
		}
		if err != nil {
			return fmt.Errorf("replacing %s: %w", full, err)
		}
		// Whatever was checked below it is gone too.
		delete(x.safeDirs, rel)
		for d := range x.safeDirs {
			if strings.HasPrefix(d, rel+"/") {
				delete(x.safeDirs, d)
			}
		}
	}
	switch h.Typeflag {
	case tar.TypeDir:
		if err := unix.Mkdir(full, 0o700); err != nil {
			return fmt.Errorf("mkdir %s: %w", full, err)
		}
		x.safeDirs[rel] = true
		x.dirs = append(x.dirs, dirMeta{full, h})
		return nil
	case tar.TypeReg, tar.TypeGNUSparse:
		// A raw descriptor: regular files gain nothing from Go's poller,
		// and registering each one costs syscalls.
		fd, err := unix.Open(full, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return fmt.Errorf("creating %s: %w", full, err)
		}
		n, err := io.CopyBuffer(treecopy.FDWriter(fd), tr, x.buf)
		if cerr := unix.Close(fd); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("writing %s: %w", full, err)
		}
		x.progress.Add(n)
	case tar.TypeSymlink:
		if err := CheckSymlink(rel, h.Linkname); err != nil {
			return err
		}
		if err := os.Symlink(h.Linkname, full); err != nil {
			return fmt.Errorf("symlink %s: %w", full, err)
		}
	case tar.TypeLink:
		target, err := CleanEntryName(h.Linkname)
		if err != nil || target == "" {
			return fmt.Errorf("%w: hard link %s -> %q", ErrUnsafePath, rel, h.Linkname)
		}
		if err := x.ensureParent(target); err != nil {
			return err
		}
		tfull := filepath.Join(x.root, target)
		var tst unix.Stat_t
		if err := unix.Lstat(tfull, &tst); err != nil {
			return fmt.Errorf("hard link %s: target %s: %w", rel, target, err)
		}
		if tst.Mode&unix.S_IFMT == unix.S_IFDIR {
			return fmt.Errorf("%w: hard link %s to a directory", ErrUnsafePath, rel)
		}
		if err := unix.Linkat(unix.AT_FDCWD, tfull, unix.AT_FDCWD, full, 0); err != nil {
			return fmt.Errorf("hard link %s: %w", full, err)
		}
		return nil // the inode already has its metadata
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := uint32(unix.S_IFIFO)
		switch h.Typeflag {
		case tar.TypeChar:
			mode = unix.S_IFCHR
		case tar.TypeBlock:
			mode = unix.S_IFBLK
		}
		dev := unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))
		if err := unix.Mknod(full, mode|0o600, int(dev)); err != nil {
			return fmt.Errorf("mknod %s: %w", full, err)
		}
	case tar.TypeXGlobalHeader:
		return nil
	default:
		return fmt.Errorf("%s: unsupported tar entry type %q", rel, h.Typeflag)
	}
	return setHeaderMeta(full, h)
}

// setHeaderMeta applies owner, mode, xattrs and times from a tar header.
func setHeaderMeta(full string, h *tar.Header) error {
	if err := unix.Lchown(full, h.Uid, h.Gid); err != nil {
		return fmt.Errorf("chown %s: %w", full, err)
	}
	if h.Typeflag != tar.TypeSymlink {
		if err := unix.Chmod(full, uint32(h.Mode&0o7777)); err != nil {
			return fmt.Errorf("chmod %s: %w", full, err)
		}
	}
	for k, v := range h.PAXRecords {
		if n, ok := strings.CutPrefix(k, paxXattr); ok {
			if err := unix.Lsetxattr(full, n, []byte(v), 0); err != nil && !treecopy.IgnorableXattrErr(err) {
				return fmt.Errorf("setting %s on %s: %w", n, full, err)
			}
		}
	}
	mt := unix.NsecToTimespec(h.ModTime.UnixNano())
	at := mt
	if !h.AccessTime.IsZero() {
		at = unix.NsecToTimespec(h.AccessTime.UnixNano())
	}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, full, []unix.Timespec{at, mt}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("setting times of %s: %w", full, err)
	}
	return nil
}
