package test

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netspawn/netspawn/test/harness"
)

type imageJSON struct {
	Name     string `json:"name"`
	Path     string `json:"path"`
	Type     string `json:"type"`
	ReadOnly bool   `json:"read_only"`
	Usage    int64  `json:"usage"`
	OS       string `json:"os"`
	Settings string `json:"settings"`
}

func listImages(t *testing.T, e *harness.Env, args ...string) map[string]imageJSON {
	t.Helper()
	r := e.Run("netspawnctl", append([]string{"-o", "json", "list-images"}, args...)...)
	if r.Code != 0 {
		t.Fatalf("list-images: %d %s", r.Code, r.Stderr)
	}
	var imgs []imageJSON
	if err := json.Unmarshal([]byte(r.Stdout), &imgs); err != nil {
		t.Fatalf("list-images -o json: %v: %s", err, r.Stdout)
	}
	m := map[string]imageJSON{}
	for _, i := range imgs {
		m[i.Name] = i
	}
	return m
}

func mustRun(t *testing.T, e *harness.Env, args ...string) harness.Result {
	t.Helper()
	r := e.Run("netspawnctl", args...)
	if r.Code != 0 {
		t.Fatalf("netspawnctl %s: exit %d: %s", strings.Join(args, " "), r.Code, r.Stderr)
	}
	return r
}

func mustFail(t *testing.T, e *harness.Env, want string, args ...string) {
	t.Helper()
	r := e.Run("netspawnctl", args...)
	if r.Code == 0 || !strings.Contains(r.Stderr, want) {
		t.Fatalf("netspawnctl %s: exit %d, stderr %q; want a failure saying %q", strings.Join(args, " "), r.Code, r.Stderr, want)
	}
}

// fakeDebian builds a small tree that looks like a Debian system to the
// image verbs: os-release behind a symlink, merged /usr, other owners,
// set-uid and private modes, a hard link, device nodes, a FIFO, an xattr.
func fakeDebian(t *testing.T, root string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"etc", "usr/lib", "usr/bin", "home/user", "dev", "var/log"} {
		must(os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	must(os.WriteFile(filepath.Join(root, "usr/lib/os-release"),
		[]byte("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n"), 0o644))
	must(os.Symlink("../usr/lib/os-release", filepath.Join(root, "etc/os-release")))
	must(os.Symlink("usr/bin", filepath.Join(root, "bin")))
	must(os.WriteFile(filepath.Join(root, "etc/hostname"), []byte("debian\n"), 0o644))
	must(os.WriteFile(filepath.Join(root, "usr/bin/su"), bytes.Repeat([]byte{0x7f, 'E', 'L', 'F'}, 5000), 0o755))
	must(unix.Chmod(filepath.Join(root, "usr/bin/su"), 0o4755))
	must(os.Link(filepath.Join(root, "usr/bin/su"), filepath.Join(root, "usr/bin/su.hardlink")))
	must(os.WriteFile(filepath.Join(root, "home/user/.profile"), []byte("PS1='$ '\n"), 0o640))
	must(os.Lchown(filepath.Join(root, "home/user/.profile"), 1000, 1000))
	must(os.Lchown(filepath.Join(root, "home/user"), 1000, 1000))
	must(os.Chmod(filepath.Join(root, "home/user"), 0o700))
	must(os.Symlink("/home/user/.profile", filepath.Join(root, "home/user/abs-link")))
	must(os.Lchown(filepath.Join(root, "home/user/abs-link"), 1000, 1000))
	must(unix.Mknod(filepath.Join(root, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mknod(filepath.Join(root, "dev/loop9"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 9))))
	must(unix.Mkfifo(filepath.Join(root, "var/log/fifo"), 0o620))
	must(unix.Lsetxattr(filepath.Join(root, "etc/hostname"), "user.origin", []byte("fake-debian"), 0))
	must(unix.Lsetxattr(filepath.Join(root, "usr/bin/su"), "trusted.netspawn-test", []byte{1, 2, 3}, 0))
	// A POSIX ACL (user 1000 may read and write), as setfacl -m u:1000:rw.
	must(unix.Lsetxattr(filepath.Join(root, "etc/hostname"), "system.posix_acl_access", posixACL(1000), 0))
}

// posixACL encodes an access ACL in the kernel's xattr format: owner rw,
// user uid rw, group r, mask rw, other r.
func posixACL(uid uint32) []byte {
	const undefined = 0xffffffff
	b := []byte{2, 0, 0, 0} // version
	for _, e := range []struct {
		tag, perm uint16
		id        uint32
	}{{0x01, 6, undefined}, {0x02, 6, uid}, {0x04, 4, undefined}, {0x10, 6, undefined}, {0x20, 4, undefined}} {
		b = append(b, byte(e.tag), byte(e.tag>>8), byte(e.perm), byte(e.perm>>8), byte(e.id), byte(e.id>>8), byte(e.id>>16), byte(e.id>>24))
	}
	return b
}

// treeListing describes every entry of a tree (type and mode, owner, size,
// link target, device number, xattrs, hard-link group, mtime), sorted,
// so that two trees compare as strings.
func treeListing(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	firstOf := map[uint64]string{}
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		l := fmt.Sprintf("%s mode=%o owner=%d:%d mtime=%d", rel, st.Mode, st.Uid, st.Gid, st.Mtim.Sec)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			sum := sha256.New()
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum.Write(b)
			l += " sha256=" + hex.EncodeToString(sum.Sum(nil))[:12]
			if st.Nlink > 1 {
				if f, ok := firstOf[st.Ino]; ok {
					l += " hardlink=" + f
				} else {
					firstOf[st.Ino] = rel
				}
			}
		case unix.S_IFLNK:
			target, _ := os.Readlink(p)
			l += " -> " + target
		case unix.S_IFCHR, unix.S_IFBLK:
			l += fmt.Sprintf(" dev=%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			for _, x := range []string{"user.origin", "trusted.netspawn-test", "system.posix_acl_access"} {
				buf := make([]byte, 64)
				if n, err := unix.Lgetxattr(p, x, buf); err == nil {
					l += fmt.Sprintf(" %s=%x", x, buf[:n])
				}
			}
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

func sameTree(t *testing.T, what, want, got string) {
	t.Helper()
	if want != got {
		t.Errorf("%s differs from the original:\n--- want\n%s\n--- got\n%s", what, want, got)
	}
}

func noTemporaries(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".#") {
			t.Errorf("left behind in the images directory: %s", e.Name())
		}
	}
}

func TestImagesEndToEnd(t *testing.T) {
	e := harness.NewEnv(t)
	deb := filepath.Join(t.TempDir(), "debian-like")
	fakeDebian(t, deb)
	debListing := treeListing(t, deb)
	for _, want := range []string{"system.posix_acl_access=", "user.origin=", "trusted.netspawn-test=", "dev=7:9", "hardlink=usr/bin/su", "mode=104755", "owner=1000:1000"} {
		if !strings.Contains(debListing, want) {
			t.Fatalf("the debian-like tree lacks %q:\n%s", want, debListing)
		}
	}
	bbListing := treeListing(t, e.Tree)

	// import-fs, list-images, image-status, show-image.
	mustRun(t, e, "import-fs", e.Tree, "bb")
	mustRun(t, e, "import-fs", deb, "deb")
	sameTree(t, "import-fs busybox", bbListing, treeListing(t, filepath.Join(e.ImagesDir, "bb")))
	sameTree(t, "import-fs debian-like", debListing, treeListing(t, filepath.Join(e.ImagesDir, "deb")))
	mustFail(t, e, "already exists", "import-fs", deb, "deb")
	mustFail(t, e, "invalid image name", "import-fs", deb, "bad_name")
	mustFail(t, e, "contains the images directory", "import-fs", filepath.Dir(e.ImagesDir), "loop")
	if err := os.WriteFile(filepath.Join(e.ImagesDir, "deb.nspawn"), []byte("[Exec]\nBoot=no\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	imgs := listImages(t, e)
	if len(imgs) != 2 || imgs["deb"].Type != "directory" || imgs["deb"].OS != "Debian GNU/Linux 12 (bookworm)" ||
		imgs["deb"].ReadOnly || imgs["deb"].Usage <= 0 || imgs["deb"].Settings == "" || imgs["bb"].Path != filepath.Join(e.ImagesDir, "bb") {
		t.Fatalf("list-images -o json: %+v", imgs)
	}
	if r := mustRun(t, e, "list-images"); !strings.Contains(r.Stdout, "NAME") || !strings.Contains(r.Stdout, "2 images listed.") {
		t.Errorf("list-images table:\n%s", r.Stdout)
	}
	st := mustRun(t, e, "image-status", "deb").Stdout
	for _, want := range []string{"Path: " + filepath.Join(e.ImagesDir, "deb"), "Type: directory", "OS: Debian GNU/Linux 12 (bookworm)", "Read-Only: writable", "deb.nspawn", "Boot=no"} {
		if !strings.Contains(st, want) {
			t.Errorf("image-status lacks %q:\n%s", want, st)
		}
	}
	if r := mustRun(t, e, "show-image", "deb", "-p", "Type", "--value"); strings.TrimSpace(r.Stdout) != "directory" {
		t.Errorf("show-image -p Type --value = %q", r.Stdout)
	}
	// Hidden images only with --all.
	mustRun(t, e, "import-fs", deb, "hidden")
	if err := os.Rename(filepath.Join(e.ImagesDir, "hidden"), filepath.Join(e.ImagesDir, ".hidden")); err != nil {
		t.Fatal(err)
	}
	if _, ok := listImages(t, e)[".hidden"]; ok {
		t.Error("hidden image listed without --all")
	}
	if _, ok := listImages(t, e, "--all")[".hidden"]; !ok {
		t.Error("hidden image not listed with --all")
	}
	mustRun(t, e, "remove", ".hidden")

	// clone, rename (with the .nspawn file), read-only.
	mustRun(t, e, "clone", "deb", "deb2")
	sameTree(t, "clone", debListing, treeListing(t, filepath.Join(e.ImagesDir, "deb2")))
	if _, err := os.Stat(filepath.Join(e.ImagesDir, "deb2.nspawn")); err != nil {
		t.Errorf("clone did not copy the .nspawn file: %v", err)
	}
	mustRun(t, e, "rename", "deb2", "deb3")
	if _, err := os.Stat(filepath.Join(e.ImagesDir, "deb3.nspawn")); err != nil {
		t.Errorf("rename did not move the .nspawn file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.ImagesDir, "deb2")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("deb2 still there after rename: %v", err)
	}
	mustRun(t, e, "read-only", "deb3")
	if !listImages(t, e)["deb3"].ReadOnly {
		t.Error("read-only deb3 not shown as read-only")
	}
	mustFail(t, e, "read-only", "remove", "deb3")
	mustFail(t, e, "read-only", "rename", "deb3", "deb4")
	mustFail(t, e, "read-only", "clone", "deb", "deb3")
	mustFail(t, e, "read-only", "import-fs", deb, "deb3")
	if _, err := os.Stat(filepath.Join(e.ImagesDir, "deb3", "etc/hostname")); err != nil {
		t.Errorf("a refused remove touched the image: %v", err)
	}
	mustRun(t, e, "read-only", "deb3", "false")
	mustRun(t, e, "remove", "deb3")
	if _, err := os.Stat(filepath.Join(e.ImagesDir, "deb3.nspawn")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("remove left the .nspawn file: %v", err)
	}

	// export-tar in every compression, import-tar back.
	out := t.TempDir()
	for _, ext := range []string{"tar", "tar.gz", "tar.xz", "tar.zst"} {
		file := filepath.Join(out, "deb."+ext)
		mustRun(t, e, "export-tar", "deb", file)
		head := make([]byte, 6)
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = f.Read(head)
		f.Close()
		wantHead := map[string]string{"tar.gz": "\x1f\x8b", "tar.xz": "\xfd7zXZ", "tar.zst": "\x28\xb5\x2f\xfd"}[ext]
		if !bytes.HasPrefix(head, []byte(wantHead)) {
			t.Errorf("export-tar %s: file starts with %q", ext, head)
		}
		name := "deb-" + strings.ReplaceAll(ext, ".", "-")
		mustRun(t, e, "import-tar", file, name)
		sameTree(t, "export-tar/import-tar "+ext, debListing, treeListing(t, filepath.Join(e.ImagesDir, name)))
	}
	mustFail(t, e, "already exists", "export-tar", "deb", filepath.Join(out, "deb.tar"))
	// Through a pipe: standard output to standard input.
	piped := mustRun(t, e, "export-tar", "--format=zstd", "deb").Stdout
	if r := e.RunInput(piped, "netspawnctl", "import-tar", "-", "piped"); r.Code != 0 {
		t.Fatalf("import-tar -: %s", r.Stderr)
	}
	sameTree(t, "export-tar | import-tar -", debListing, treeListing(t, filepath.Join(e.ImagesDir, "piped")))

	// An archive climbing out of the image is refused and leaves nothing.
	evil := filepath.Join(out, "evil.tar")
	writeTar(t, evil, &tar.Header{Name: "ok", Typeflag: tar.TypeReg, Mode: 0o644}, &tar.Header{Name: "../../escaped", Typeflag: tar.TypeReg, Mode: 0o644})
	mustFail(t, e, "unsafe path", "import-tar", evil, "evil")
	if _, err := os.Stat(filepath.Join(e.ImagesDir, "evil")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused import left an image: %v", err)
	}

	// pull-tar from a server inside the test's namespace.
	bbTar := filepath.Join(out, "bb.tar.zst")
	mustRun(t, e, "export-tar", "bb", bbTar)
	data, err := os.ReadFile(bbTar)
	if err != nil {
		t.Fatal(err)
	}
	good := sha256.Sum256(data)
	files := map[string][]byte{
		"/good/bb.tar.zst":      data,
		"/good/SHA256SUMS":      []byte(hex.EncodeToString(good[:]) + "  bb.tar.zst\n"),
		"/bad/bb.tar.zst":       data,
		"/bad/SHA256SUMS":       []byte(strings.Repeat("0", 64) + " *bb.tar.zst\n"),
		"/nosums/bb.tar.zst":    data,
		"/nosums/fresh.tar.zst": data,
	}
	url := serveInNS(t, e.NS, files)
	r := mustRun(t, e, "pull-tar", url+"/good/bb.tar.zst", "pulled")
	if !strings.Contains(r.Stderr, "verified") {
		t.Errorf("pull-tar did not say the checksum was verified: %q", r.Stderr)
	}
	sameTree(t, "pull-tar", bbListing, treeListing(t, filepath.Join(e.ImagesDir, "pulled")))
	mustFail(t, e, "checksum mismatch", "pull-tar", url+"/bad/bb.tar.zst", "badsum")
	mustFail(t, e, "no ", "pull-tar", "--verify=checksum", url+"/nosums/bb.tar.zst", "nosums")
	mustFail(t, e, "404", "pull-tar", "--verify=no", url+"/missing/bb.tar.zst", "missing")
	for _, n := range []string{"badsum", "nosums", "missing"} {
		if _, err := os.Stat(filepath.Join(e.ImagesDir, n)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("failed pull-tar left image %s", n)
		}
	}
	if r := mustRun(t, e, "pull-tar", url+"/nosums/fresh.tar.zst"); !strings.Contains(r.Stderr, "not verified") {
		t.Errorf("pull-tar without SHA256SUMS did not say so: %q", r.Stderr)
	}
	if _, ok := listImages(t, e)["fresh"]; !ok {
		t.Error("pull-tar without NAME did not name the image after the file")
	}
	noTemporaries(t, e.ImagesDir)

	// The imported and pulled images run; a running machine's image
	// refuses remove and rename.
	// The debian-like tree has no programs: give its copy busybox.
	bbBin, err := os.ReadFile(filepath.Join(e.Tree, "bin", "busybox"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.ImagesDir, "deb-tar-zst", "usr/bin/busybox"), bbBin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("busybox", filepath.Join(e.ImagesDir, "deb-tar-zst", "usr/bin/true")); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"pulled", "deb-tar-zst"} {
		if r := e.Run("netspawn", "-q", "-M", n, "true"); r.Code != 0 {
			t.Errorf("netspawn -q -M %s true: exit %d: %s", n, r.Code, r.Stderr)
		}
	}
	cmd := e.Command("netspawn", "-q", "-M", "pulled", "sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { harness.Stop(cmd.Process, done) })
	waitRunning(t, e, "pulled")
	mustFail(t, e, "in use by running machine pulled", "remove", "pulled")
	mustFail(t, e, "in use by running machine pulled", "rename", "pulled", "other")
	harness.Stop(cmd.Process, done)
	// A machine of another name on the image: only netspawnd's registry
	// (its root directory) tells.
	runner := e.Command("netspawn", "-q", "-D", filepath.Join(e.ImagesDir, "pulled"), "-M", "runner", "sleep", "60")
	if err := runner.Start(); err != nil {
		t.Fatal(err)
	}
	done2 := make(chan struct{})
	go func() { _ = runner.Wait(); close(done2) }()
	t.Cleanup(func() { harness.Stop(runner.Process, done2) })
	waitRunning(t, e, "runner")
	mustFail(t, e, "in use by running machine runner", "remove", "pulled")
	harness.Stop(runner.Process, done2)
	mustRun(t, e, "remove", "pulled")
	noTemporaries(t, e.ImagesDir)
}

// waitRunning waits until netspawnctl list shows the machine.
func waitRunning(t *testing.T, e *harness.Env, name string) {
	t.Helper()
	for range 400 {
		if r := e.Run("netspawnctl", "list"); strings.Contains(r.Stdout, name) {
			return
		}
	}
	t.Fatalf("machine %s never listed", name)
}

func writeTar(t *testing.T, file string, hs ...*tar.Header) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hs {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// serveInNS serves files over HTTP on 127.0.0.1 of the test's namespace
// (where netspawnctl runs) and returns the base URL. The listening socket
// is made on a locked thread that entered the namespace and is then
// discarded; serving it needs no namespace.
func serveInNS(t *testing.T, ns *harness.NetNS, files map[string][]byte) string {
	t.Helper()
	type res struct {
		l   net.Listener
		err error
	}
	ch := make(chan res)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		f, err := os.Open(ns.Path())
		if err != nil {
			ch <- res{nil, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- res{nil, fmt.Errorf("setns: %w", err)}
			return
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		ch <- res{l, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, ok := files[req.URL.Path]
		if !ok {
			http.NotFound(w, req)
			return
		}
		_, _ = w.Write(b)
	}))
	srv.Listener.Close()
	srv.Listener = r.l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestImagesBtrfsClone checks that clone makes a btrfs snapshot of a
// subvolume image, and read-only sets the subvolume's property, on a
// loop-mounted btrfs made for the test.
func TestImagesBtrfsClone(t *testing.T) {
	e := harness.NewEnv(t)
	harness.RequireTool(t, "mkfs.btrfs", "btrfs", "losetup", "mount", "umount")
	dir := t.TempDir()
	img := filepath.Join(dir, "btrfs.img")
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v: %s", name, args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(256 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	run("mkfs.btrfs", "-q", img)
	loop := run("losetup", "--find", "--show", img)
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", loop).Run() })
	run("mount", "-t", "btrfs", loop, mnt)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
			_ = unix.Unmount(mnt, unix.MNT_DETACH)
		}
	})
	machines := filepath.Join(mnt, "machines")
	if err := os.Mkdir(machines, 0o755); err != nil {
		t.Fatal(err)
	}
	run("btrfs", "subvolume", "create", filepath.Join(machines, "base"))
	if err := harness.CopyTree(e.Tree, filepath.Join(machines, "base", "tree")); err != nil {
		t.Fatal(err)
	}
	want := treeListing(t, filepath.Join(machines, "base"))

	ctl := func(args ...string) harness.Result {
		t.Helper()
		cmd := exec.Command(filepath.Join(e.Bin, "netspawnctl"), args...)
		cmd.Env = append(append(os.Environ(), e.Vars...), "NETSPAWN_IMAGES_DIR="+machines)
		var so, se bytes.Buffer
		cmd.Stdout, cmd.Stderr = &so, &se
		err := cmd.Run()
		r := harness.Result{Stdout: so.String(), Stderr: se.String()}
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			r.Code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := ctl("clone", "base", "snap"); r.Code != 0 {
		t.Fatalf("clone: %s", r.Stderr)
	}
	// New images on btrfs are subvolumes, as machinectl makes them.
	if r := ctl("import-fs", e.Tree, "imported"); r.Code != 0 {
		t.Fatalf("import-fs: %s", r.Stderr)
	}
	r := ctl("-o", "json", "list-images")
	var imgs []imageJSON
	if err := json.Unmarshal([]byte(r.Stdout), &imgs); err != nil {
		t.Fatalf("list-images: %v: %s %s", err, r.Stdout, r.Stderr)
	}
	types := map[string]string{}
	for _, i := range imgs {
		types[i.Name] = i.Type
	}
	if types["base"] != "subvolume" || types["snap"] != "subvolume" || types["imported"] != "subvolume" {
		t.Fatalf("image types %v, want all subvolume (snap a snapshot)", types)
	}
	sameTree(t, "import-fs into a subvolume", treeListing(t, e.Tree), treeListing(t, filepath.Join(machines, "imported")))
	show := run("btrfs", "subvolume", "show", filepath.Join(machines, "snap"))
	baseUUID := ""
	for _, l := range strings.Split(run("btrfs", "subvolume", "show", filepath.Join(machines, "base")), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), ":"); ok && k == "UUID" {
			baseUUID = strings.TrimSpace(v)
		}
	}
	if baseUUID == "" || !strings.Contains(show, "Parent UUID:") || !strings.Contains(show, baseUUID) {
		t.Errorf("snap is not a snapshot of base (UUID %s):\n%s", baseUUID, show)
	}
	sameTree(t, "btrfs snapshot", want, treeListing(t, filepath.Join(machines, "snap")))
	if r := ctl("read-only", "snap"); r.Code != 0 {
		t.Fatalf("read-only: %s", r.Stderr)
	}
	if p := run("btrfs", "property", "get", filepath.Join(machines, "snap"), "ro"); p != "ro=true" {
		t.Errorf("btrfs property ro = %q after read-only", p)
	}
	if r := ctl("remove", "snap"); r.Code == 0 || !strings.Contains(r.Stderr, "read-only") {
		t.Errorf("remove of a read-only subvolume: %d %s", r.Code, r.Stderr)
	}
	if r := ctl("read-only", "snap", "no"); r.Code != 0 {
		t.Fatalf("read-only no: %s", r.Stderr)
	}
	if r := ctl("remove", "snap"); r.Code != 0 {
		t.Fatalf("remove: %s", r.Stderr)
	}
	if _, err := os.Stat(filepath.Join(machines, "snap")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("snap still there: %v", err)
	}
}

// TestImagesDebian takes the debootstrapped Debian image through the image
// verbs, then starts it as a service and checks it boots with its network.
func TestImagesDebian(t *testing.T) {
	e := harness.NewEnv(t)
	harness.RequireTool(t, "debootstrap")
	pristine, err := harness.CachedDebianTree(harness.CacheDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	mustRun(t, e, "import-fs", pristine, "deb")
	imgs := listImages(t, e)
	if img, ok := imgs["deb"]; !ok || !strings.Contains(img.OS, "Debian") {
		t.Fatalf("imported Debian image: %+v", imgs)
	}
	mustRun(t, e, "clone", "deb", "deb-gold")
	mustRun(t, e, "read-only", "deb-gold", "yes")
	t.Cleanup(func() { e.Run("netspawnctl", "read-only", "deb-gold", "no") })
	mustFail(t, e, "read-only", "remove", "deb-gold")
	tarball := filepath.Join(t.TempDir(), "deb.tar.zst")
	mustRun(t, e, "export-tar", "deb", tarball)
	mustRun(t, e, "import-tar", tarball, "deb2")
	sameTree(t, "Debian through export-tar/import-tar", treeListing(t, filepath.Join(e.ImagesDir, "deb")), treeListing(t, filepath.Join(e.ImagesDir, "deb2")))
	mustRun(t, e, "rename", "deb2", "debsvc")

	// start boots it in the background with -n; its networkd takes the
	// reserved address from netspawnd's DHCP.
	mustRun(t, e, "start", "debsvc")
	mustFail(t, e, "running", "remove", "debsvc")
	var addr string
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) && addr == "" {
		r := e.Run("netspawnctl", "shell", "debsvc", "sh", "-c", "systemctl is-system-running >/dev/null; ip -o -4 addr show dev host0 | awk '{print $4}'")
		addr = strings.TrimSpace(r.Stdout)
		if addr == "" {
			time.Sleep(250 * time.Millisecond)
		}
	}
	if addr == "" {
		t.Fatalf("started Debian never got an address; log:\n%s", e.Run("netspawnctl", "logs", "-n", "30", "debsvc").Stdout)
	}
	var ms []struct {
		Name      string   `json:"name"`
		OS        string   `json:"os"`
		Addresses []string `json:"addresses"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, e, "list", "-o", "json").Stdout), &ms); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range ms {
		if m.Name == "debsvc" && strings.Contains(m.OS, "Debian") && len(m.Addresses) > 0 && strings.HasPrefix(addr, m.Addresses[0]) {
			found = true
		}
	}
	if !found {
		t.Fatalf("list -o json lacks debsvc with %s: %+v", addr, ms)
	}
	mustRun(t, e, "poweroff", "debsvc")
	waitListed(t, e, "debsvc", false)
	mustRun(t, e, "read-only", "deb-gold", "no")
	mustRun(t, e, "remove", "deb", "deb-gold", "debsvc")
	if imgs := listImages(t, e); len(imgs) != 0 {
		t.Fatalf("images left: %v", imgs)
	}
}
