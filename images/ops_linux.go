package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/netspawn/netspawn/internal/btrfs"
	"github.com/netspawn/netspawn/internal/treecopy"
	"golang.org/x/sys/unix"
)

// ProgressFunc makes a progress bar for one long operation (nil: none).
type ProgressFunc func(label string, total int64) *Progress

func (s *Store) progress(label string, total int64) *Progress {
	if s.Progress == nil {
		return nil
	}
	return s.Progress(label, total)
}

// finalPath is where a new image called name goes.
func (s *Store) finalPath(name string) string { return filepath.Join(s.writable(), name) }

// Clone copies image src to a new image dst: a btrfs snapshot when src is
// a subvolume and the images directory is on the same btrfs, else a copy
// with reflinked data where the file system allows. The .nspawn file beside
// src is copied too. The clone is writable unless readOnly.
func (s *Store) Clone(ctx context.Context, src, dst string, readOnly bool) (*Image, error) {
	img, err := s.Get(src)
	if err != nil {
		return nil, err
	}
	if err := s.checkFree(dst); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.writable(), 0o700); err != nil {
		return nil, fmt.Errorf("creating images directory: %w", err)
	}
	final := s.finalPath(dst)
	if img.Type == TypeRaw {
		final += ".raw"
	}
	tmp := s.tempPath("clone", dst)
	if err := s.cloneData(ctx, img, tmp); err != nil {
		removeTemp(tmp)
		return nil, fmt.Errorf("cloning %s: %w", src, err)
	}
	if err := publish(tmp, final); err != nil {
		removeTemp(tmp)
		return nil, err
	}
	if img.Settings != "" {
		if err := copySettings(img.Settings, filepath.Join(s.writable(), dst+".nspawn")); err != nil {
			return nil, err
		}
	}
	if readOnly {
		if err := s.SetReadOnly(dst, true); err != nil {
			return nil, err
		}
	}
	return s.Get(dst)
}

// newImageDir creates the directory of a new image: a btrfs subvolume
// when the images directory is on btrfs (so it can be snapshotted later),
// else a plain directory.
func (s *Store) newImageDir(p string) error {
	if btrfs.OnBtrfs(s.writable()) && btrfs.CreateSubvolume(p) == nil {
		return nil
	}
	if err := os.Mkdir(p, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", p, err)
	}
	return nil
}

// copyIn copies the tree src into the new image directory tmp.
func (s *Store) copyIn(ctx context.Context, src, tmp string, p *Progress) error {
	if err := s.newImageDir(tmp); err != nil {
		return err
	}
	if err := treecopy.CopyInto(ctx, src, tmp, p); err != nil {
		return err
	}
	// A copy of an immutable top directory must not stay immutable.
	if immutable(tmp) {
		return setImmutable(tmp, false)
	}
	return nil
}

func (s *Store) cloneData(ctx context.Context, img *Image, tmp string) error {
	switch {
	case img.Type == TypeRaw:
		var st unix.Stat_t
		_ = unix.Stat(img.Path, &st)
		p := s.progress("Cloning "+img.Name, st.Size)
		defer p.Done()
		return treecopy.CopyFile(img.Path, tmp, p)
	case img.Type == TypeSubvolume:
		// Subvolumes have st_dev numbers of their own: just try, and copy
		// when the target is elsewhere (EXDEV) or not btrfs.
		err := btrfs.Snapshot(img.Path, tmp)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EXDEV) && !errors.Is(err, unix.ENOTTY) && !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EINVAL) {
			return err
		}
	}
	p := s.progress("Cloning "+img.Name, 0)
	if p.Enabled() {
		total, _, _ := treecopy.Size(img.Path)
		p.SetTotal(total)
	}
	defer p.Done()
	return s.copyIn(ctx, img.Path, tmp, p)
}

func copySettings(src, dst string) error {
	if fileExists(dst) {
		return fmt.Errorf("settings file %s already exists: not overwriting it", dst)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("reading settings: %w", err)
	}
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	if err := os.WriteFile(dst, b, st.Mode().Perm()); err != nil {
		return fmt.Errorf("writing settings: %w", err)
	}
	return nil
}

// Rename gives an image a new name (in the same directory), with its
// .nspawn file. Read-only images and running machines' images refuse.
func (s *Store) Rename(ctx context.Context, from, to string) error {
	img, err := s.Get(from)
	if err != nil {
		return err
	}
	if err := checkMutable(img, "rename"); err != nil {
		return err
	}
	if err := s.checkIdle(ctx, img, "rename"); err != nil {
		return err
	}
	if err := s.checkFree(to); err != nil {
		return err
	}
	dir := filepath.Dir(img.Path)
	newPath := filepath.Join(dir, to)
	if img.Type == TypeRaw {
		newPath += ".raw"
	}
	newSettings := filepath.Join(dir, to+".nspawn")
	if img.Settings != "" && fileExists(newSettings) {
		return fmt.Errorf("settings file %s already exists", newSettings)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, img.Path, unix.AT_FDCWD, newPath, unix.RENAME_NOREPLACE); err != nil {
		return fmt.Errorf("renaming %s to %s: %w", img.Path, newPath, err)
	}
	if img.Settings != "" {
		if err := unix.Renameat2(unix.AT_FDCWD, img.Settings, unix.AT_FDCWD, newSettings, unix.RENAME_NOREPLACE); err != nil {
			// Put the image back so the two stay together.
			_ = os.Rename(newPath, img.Path)
			return fmt.Errorf("renaming %s: %w", img.Settings, err)
		}
	}
	return nil
}

// SetReadOnly marks an image read-only or writable as machinectl does: the
// btrfs read-only property of a subvolume, the immutable flag on a
// directory image's top directory, the write bits of a raw file.
func (s *Store) SetReadOnly(name string, ro bool) error {
	img, err := s.Get(name)
	if err != nil {
		return err
	}
	switch img.Type {
	case TypeSubvolume:
		if err := btrfs.SetReadOnly(img.Path, ro); err != nil {
			return err
		}
		if !ro && immutable(img.Path) {
			return setImmutable(img.Path, false)
		}
		return nil
	case TypeRaw:
		st, err := os.Stat(img.Path)
		if err != nil {
			return err
		}
		mode := st.Mode().Perm() &^ 0o222
		if !ro {
			mode |= 0o200
			if immutable(img.Path) {
				if err := setImmutable(img.Path, false); err != nil {
					return err
				}
			}
		}
		return os.Chmod(img.Path, mode)
	}
	return setImmutable(img.Path, ro)
}

// Remove deletes images and their .nspawn files. Read-only images and
// running machines' images are refused; nothing is deleted then.
func (s *Store) Remove(ctx context.Context, name string) error {
	img, err := s.Get(name)
	if err != nil {
		return err
	}
	if err := checkMutable(img, "remove"); err != nil {
		return err
	}
	if err := s.checkIdle(ctx, img, "remove"); err != nil {
		return err
	}
	if img.Type == TypeSubvolume && btrfs.DeleteSubvolume(img.Path) == nil {
		return removeSettings(img)
	}
	// Move it out of sight first so a half-deleted tree is never listed
	// under its name.
	gone := filepath.Join(filepath.Dir(img.Path), fmt.Sprintf(".#remove.%s.%s", img.Name, randomSuffix()))
	if err := os.Rename(img.Path, gone); err != nil {
		return fmt.Errorf("removing %s: %w", img.Path, err)
	}
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("removing %s (left as %s): %w", img.Path, gone, err)
	}
	return removeSettings(img)
}

func removeSettings(img *Image) error {
	if img.Settings == "" {
		return nil
	}
	if err := os.Remove(img.Settings); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", img.Settings, err)
	}
	return nil
}

// ImportFS copies the directory tree dir in as image name.
func (s *Store) ImportFS(ctx context.Context, dir, name string, readOnly bool) (*Image, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("import-fs: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("import-fs: %s is not a directory", dir)
	}
	// Copying a tree that holds the images directory would copy the copy.
	if within(s.writable(), dir) {
		return nil, fmt.Errorf("import-fs: %s contains the images directory %s", dir, s.writable())
	}
	if err := s.checkFree(name); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.writable(), 0o700); err != nil {
		return nil, fmt.Errorf("creating images directory: %w", err)
	}
	tmp := s.tempPath("import", name)
	p := s.progress("Importing "+name, 0)
	if p.Enabled() {
		total, _, _ := treecopy.Size(dir)
		p.SetTotal(total)
	}
	err = s.copyIn(ctx, dir, tmp, p)
	p.Done()
	return s.finish(tmp, name, readOnly, err)
}

// within reports whether p is dir or below it (after resolving links).
func within(p, dir string) bool {
	rp, err1 := filepath.EvalSymlinks(p)
	rd, err2 := filepath.EvalSymlinks(dir)
	if err1 != nil || err2 != nil {
		rp, rd = filepath.Clean(p), filepath.Clean(dir)
	}
	rel, err := filepath.Rel(rd, rp)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// finish publishes tmp as name (or removes it after an error).
func (s *Store) finish(tmp, name string, readOnly bool, err error) (*Image, error) {
	if err == nil {
		err = publish(tmp, s.finalPath(name))
	}
	if err != nil {
		removeTemp(tmp)
		return nil, err
	}
	if readOnly {
		if err := s.SetReadOnly(name, true); err != nil {
			return nil, err
		}
	}
	return s.Get(name)
}

// ImportTar unpacks a tar archive (plain, gzip, xz or zstd, detected from
// its content) as image name. file "-" reads standard input.
func (s *Store) ImportTar(ctx context.Context, file, name string, readOnly bool) (*Image, error) {
	if err := s.checkFree(name); err != nil {
		return nil, err
	}
	var r io.Reader = os.Stdin
	var size int64
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("import-tar: %w", err)
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil {
			size = st.Size()
		}
		r = f
	}
	if err := os.MkdirAll(s.writable(), 0o700); err != nil {
		return nil, fmt.Errorf("creating images directory: %w", err)
	}
	tmp := s.tempPath("import", name)
	if err := s.newImageDir(tmp); err != nil {
		return nil, fmt.Errorf("import-tar: %w", err)
	}
	p := s.progress("Importing "+name, size)
	err := untar(ctx, p.Reader(r), tmp)
	p.Done()
	if err != nil {
		err = fmt.Errorf("import-tar %s: %w", file, err)
	}
	return s.finish(tmp, name, readOnly, err)
}

func untar(ctx context.Context, r io.Reader, dir string) error {
	dr, _, err := Decompress(r)
	if err != nil {
		return err
	}
	defer dr.Close()
	if err := ExtractTar(ctx, dr, dir, nil); err != nil {
		return err
	}
	// Drain trailing padding so a checksum over the whole stream is right.
	_, err = io.Copy(io.Discard, dr)
	return err
}

// ExportTar writes image name as a tar archive to file ("-" or "" for
// standard output), compressed by the file's extension unless c is given
// (c < 0 means by extension). The file appears only when complete.
func (s *Store) ExportTar(ctx context.Context, name, file string, c Compression) error {
	img, err := s.Get(name)
	if err != nil {
		return err
	}
	if img.Type == TypeRaw {
		return fmt.Errorf("image %s is a raw disk image: export-tar takes directory and subvolume images", name)
	}
	if c < 0 {
		c = CompressionFromName(file)
	}
	if file == "" || file == "-" {
		return writeTarTo(ctx, os.Stdout, img, c, s.progress("Exporting "+name, 0))
	}
	if fileExists(file) {
		return fmt.Errorf("export-tar: %s already exists", file)
	}
	tmp := filepath.Join(filepath.Dir(file), fmt.Sprintf(".#%s.%s", filepath.Base(file), randomSuffix()))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("export-tar: %w", err)
	}
	p := s.progress("Exporting "+name, 0)
	err = writeTarTo(ctx, f, img, c, p)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, file, unix.RENAME_NOREPLACE)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("export-tar %s: %w", name, err)
	}
	return nil
}

func writeTarTo(ctx context.Context, w io.Writer, img *Image, c Compression, p *Progress) error {
	if p.Enabled() {
		total, _, _ := treecopy.Size(img.Path)
		p.SetTotal(total)
	}
	defer p.Done()
	cw, err := Compress(w, c)
	if err != nil {
		return err
	}
	if err := WriteTar(ctx, img.Path, cw, p); err != nil {
		cw.Close()
		return err
	}
	return cw.Close()
}

// SettingsText returns the text of the image's .nspawn file, if any.
func (img *Image) SettingsText() string {
	if img.Settings == "" {
		return ""
	}
	b, err := os.ReadFile(img.Settings)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
