package images

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/netspawn/netspawn/internal/testutil"
	"github.com/netspawn/netspawn/internal/treecopy"
	"golang.org/x/sys/unix"
)

func requireRoot(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t, "chown, mknod")
}

// makeTree builds a small tree with every kind of file the copiers keep.
func makeTree(t *testing.T, root string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "usr/lib"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "home/u"), 0o750))
	must(os.MkdirAll(filepath.Join(root, "dev"), 0o755))
	must(os.WriteFile(filepath.Join(root, "usr/lib/os-release"), []byte("PRETTY_NAME=\"Fake Linux 1\"\n"), 0o644))
	must(os.Symlink("../usr/lib/os-release", filepath.Join(root, "etc/os-release")))
	must(os.WriteFile(filepath.Join(root, "home/u/secret"), []byte("s3cret"), 0o600))
	must(os.Lchown(filepath.Join(root, "home/u"), 1000, 1000))
	must(os.Lchown(filepath.Join(root, "home/u/secret"), 1000, 1001))
	must(os.WriteFile(filepath.Join(root, "usr/lib/suid"), bytes.Repeat([]byte("x"), 100000), 0o755))
	must(unix.Chmod(filepath.Join(root, "usr/lib/suid"), 0o4755))
	must(os.Link(filepath.Join(root, "usr/lib/suid"), filepath.Join(root, "usr/lib/hardlink")))
	must(unix.Mknod(filepath.Join(root, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mkfifo(filepath.Join(root, "dev/fifo"), 0o600))
	must(os.Symlink("/abs/target", filepath.Join(root, "abslink")))
	if err := unix.Lsetxattr(filepath.Join(root, "etc"), "user.test", []byte("v1"), 0); err != nil && !errors.Is(err, unix.EOPNOTSUPP) {
		t.Fatal(err)
	}
}

// describe lists each entry's type, mode, owner, size, link target,
// device, xattrs and hard-link group, to compare trees.
func describe(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	inodes := map[uint64]string{}
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		l := fmt.Sprintf("%s %o %d:%d", rel, st.Mode, st.Uid, st.Gid)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			l += fmt.Sprintf(" size=%d", st.Size)
			if st.Nlink > 1 {
				if first, ok := inodes[st.Ino]; ok {
					l += " link=" + first
				} else {
					inodes[st.Ino] = rel
				}
			}
		case unix.S_IFLNK:
			target, _ := os.Readlink(p)
			l += " -> " + target
		case unix.S_IFCHR, unix.S_IFBLK:
			l += fmt.Sprintf(" dev=%d,%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		if rel != "." && st.Mode&unix.S_IFMT != unix.S_IFLNK {
			if v, err := treecopy.GetXattr(p, "user.test"); err == nil {
				l += " xattr=" + string(v)
			}
		}
		if rel != "." {
			l += fmt.Sprintf(" mtime=%d", st.Mtim.Sec)
		}
		lines = append(lines, l)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func TestCopyTreeAndTarRoundTrip(t *testing.T) {
	requireRoot(t)
	base := t.TempDir()
	src := filepath.Join(base, "src")
	makeTree(t, src)
	want := describe(t, src)

	dst := filepath.Join(base, "copy")
	if err := treecopy.Copy(context.Background(), src, dst, nil); err != nil {
		t.Fatal(err)
	}
	if got := describe(t, dst); got != want {
		t.Errorf("CopyTree differs:\n got:\n%s\nwant:\n%s", got, want)
	}
	for _, c := range []Compression{None, Gzip, XZ, Zstd} {
		var buf bytes.Buffer
		w, err := Compress(&buf, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteTar(context.Background(), src, w, nil); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(base, "tar-"+c.String())
		if err := os.Mkdir(out, 0o755); err != nil {
			t.Fatal(err)
		}
		r, got, err := Decompress(&buf)
		if err != nil || got != c {
			t.Fatalf("Decompress detected %v, %v; want %v", got, err, c)
		}
		if err := ExtractTar(context.Background(), r, out, nil); err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		if got := describe(t, out); got != want {
			t.Errorf("tar round trip (%v) differs:\n got:\n%s\nwant:\n%s", c, got, want)
		}
	}
	if os := imageOS(src); os != "Fake Linux 1" {
		t.Errorf("imageOS = %q", os)
	}
}

func tarOf(t *testing.T, hs ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hs {
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(h.Linkname))
			body := h.Linkname
			h.Linkname = ""
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
			if _, err := tw.Write([]byte(body)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestExtractRefusesEscapes(t *testing.T) {
	requireRoot(t)
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	cases := map[string][]*tar.Header{
		"dotdot":           {{Name: "../evil", Typeflag: tar.TypeReg, Mode: 0o644, Linkname: "x"}},
		"through-symlink":  {{Name: "lnk", Typeflag: tar.TypeSymlink, Linkname: outside}, {Name: "lnk/evil", Typeflag: tar.TypeReg, Mode: 0o644, Linkname: "x"}},
		"relative-escape":  {{Name: "up", Typeflag: tar.TypeSymlink, Linkname: "../outside"}},
		"hardlink-outside": {{Name: "h", Typeflag: tar.TypeLink, Linkname: "../outside/f"}},
		"dir-replaced-by-symlink": {
			{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755},
			{Name: "d/sub/", Typeflag: tar.TypeDir, Mode: 0o755},
			{Name: "d", Typeflag: tar.TypeSymlink, Linkname: outside},
			{Name: "d/sub/evil", Typeflag: tar.TypeReg, Mode: 0o644, Linkname: "x"},
		},
	}
	for name, hs := range cases {
		root := filepath.Join(base, name)
		if err := os.Mkdir(root, 0o755); err != nil {
			t.Fatal(err)
		}
		err := ExtractTar(context.Background(), bytes.NewReader(tarOf(t, hs...)), root, nil)
		if !errors.Is(err, ErrUnsafePath) {
			t.Errorf("%s: ExtractTar = %v, want ErrUnsafePath", name, err)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("something was written outside: %v", entries)
	}
	// A directory replaced by a symlink to outside keeps outside's mode.
	root := filepath.Join(base, "chmod-through")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	err := ExtractTar(context.Background(), bytes.NewReader(tarOf(t,
		&tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o777},
		&tar.Header{Name: "d", Typeflag: tar.TypeSymlink, Linkname: outside})), root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(outside); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("outside's mode changed through a symlink: %v %v", st.Mode(), err)
	}
}

func TestStoreBasics(t *testing.T) {
	requireRoot(t)
	base := t.TempDir()
	s := &Store{Dirs: []string{filepath.Join(base, "machines")}}
	src := filepath.Join(base, "src")
	makeTree(t, src)
	ctx := context.Background()
	if _, err := s.ImportFS(ctx, src, "one", false); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Dirs[0], "one.nspawn"), []byte("[Exec]\nBoot=no\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ImportFS(ctx, src, "one", false); err == nil {
		t.Error("import over an existing image accepted")
	}
	if _, err := s.Clone(ctx, "one", "two", false); err != nil {
		t.Fatal(err)
	}
	if err := s.Rename(ctx, "two", "three"); err != nil {
		t.Fatal(err)
	}
	imgs, err := s.List(false)
	if err != nil || len(imgs) != 2 || imgs[0].Name != "one" || imgs[1].Name != "three" || imgs[1].Settings == "" {
		t.Fatalf("List = %+v, %v", imgs, err)
	}
	if err := s.SetReadOnly("three", true); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, "three"); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("remove of a read-only image: %v", err)
	}
	s.Busy = func(_ context.Context, img *Image) (string, error) { return "m1", nil }
	if err := s.Remove(ctx, "one"); err == nil || !strings.Contains(err.Error(), "running machine m1") {
		t.Errorf("remove of a busy image: %v", err)
	}
	s.Busy = nil
	if err := s.SetReadOnly("three", false); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"one", "three"} {
		if err := s.Remove(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if entries, _ := os.ReadDir(s.Dirs[0]); len(entries) != 0 {
		t.Errorf("left in the images directory: %v", entries)
	}
}

func TestStoreRawImages(t *testing.T) {
	requireRoot(t)
	dir := filepath.Join(t.TempDir(), "machines")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "disk.raw"), bytes.Repeat([]byte("d"), 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Store{Dirs: []string{dir}}
	ctx := context.Background()
	img, err := s.Get("disk")
	if err != nil || img.Type != TypeRaw || img.ReadOnly {
		t.Fatalf("Get(disk) = %+v, %v", img, err)
	}
	if _, err := s.Clone(ctx, "disk", "disk2", false); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "disk2.raw")); err != nil || len(b) != 1<<20 {
		t.Fatalf("clone of a raw image: %d bytes, %v", len(b), err)
	}
	if err := s.SetReadOnly("disk2", true); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(dir, "disk2.raw")); st.Mode().Perm()&0o222 != 0 {
		t.Errorf("read-only raw image still writable: %v", st.Mode())
	}
	if err := s.Rename(ctx, "disk2", "disk3"); err == nil {
		t.Error("rename of a read-only raw image accepted")
	}
	if err := s.SetReadOnly("disk2", false); err != nil {
		t.Fatal(err)
	}
	if err := s.Rename(ctx, "disk2", "disk3"); err != nil {
		t.Fatal(err)
	}
	if err := s.ExportTar(ctx, "disk3", filepath.Join(t.TempDir(), "x.tar"), None); err == nil {
		t.Error("export-tar of a raw image accepted")
	}
	if err := s.Remove(ctx, "disk3"); err != nil {
		t.Fatal(err)
	}
	imgs, err := s.List(true)
	if err != nil || len(imgs) != 1 || imgs[0].Name != "disk" {
		t.Errorf("List = %+v, %v", imgs, err)
	}
}
