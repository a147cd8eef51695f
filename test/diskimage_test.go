package test

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netspawn/netspawn/internal/testutil"
	"github.com/netspawn/netspawn/spawn/dissect"
	"github.com/netspawn/netspawn/test/harness"
)

// Machine names here start with "img": machine cgroups are global.

// loopsOf lists the loop devices whose backing file is img.
func loopsOf(img string) []string {
	var out []string
	ms, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, m := range ms {
		b, err := os.ReadFile(m)
		if err != nil {
			continue
		}
		f := strings.TrimSuffix(strings.TrimSpace(string(b)), " (deleted)")
		if f == img {
			out = append(out, "/dev/"+filepath.Base(filepath.Dir(filepath.Dir(m))))
		}
	}
	return out
}

// detachLeftovers detaches what a failed test left bound to img, device
// by device, and fails the test if there was any.
func detachLeftovers(t *testing.T, img string) {
	t.Cleanup(func() {
		for _, d := range loopsOf(img) {
			t.Errorf("loop device %s is still attached to %s", d, img)
			if out, err := exec.Command("losetup", "-d", d).CombinedOutput(); err != nil {
				t.Logf("losetup -d %s: %v %s", d, err, out)
			}
		}
	})
}

// waitDetached waits for the loop devices of img to go (the container's
// mount namespace may outlive netspawn's exit by a moment).
func waitDetached(t *testing.T, img string) {
	t.Helper()
	if !testutil.Eventually(10*time.Second, func() bool { return len(loopsOf(img)) == 0 }) {
		t.Fatalf("loop devices still attached to %s: %v", img, loopsOf(img))
	}
}

// mkExt4 makes a sparse file of mib MiB holding an ext4 file system with
// the contents of dir.
func mkExt4(t *testing.T, dir, path string, mib int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(mib << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-E", "root_owner=0:0", "-d", dir, path).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 -d %s: %v\n%s", dir, err, out)
	}
}

// gptPart is one partition of mkGPT: its type, size and file system
// contents ("" for no file system).
type gptPart struct {
	typ  string
	mib  int64
	tree string
}

// mkGPT makes a sparse disk image with a GUID partition table written by
// sfdisk, each partition's ext4 file system built apart and copied to its
// offset.
func mkGPT(t *testing.T, path string, parts []gptPart) {
	t.Helper()
	total := int64(2)
	for _, p := range parts {
		total += p.mib
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(total << 20); err != nil {
		t.Fatal(err)
	}
	script := "label: gpt\n"
	for _, p := range parts {
		script += "size=" + itoa(p.mib) + "MiB, type=" + p.typ + "\n"
	}
	cmd := exec.Command("sfdisk", "--no-reread", "--no-tell-kernel", "-q", path)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	off := int64(1 << 20)
	for _, p := range parts {
		if p.tree != "" {
			// mkfs.ext4 writes the file system right at the partition's offset.
			opts := "root_owner=0:0,offset=" + itoa(off)
			if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-E", opts, "-d", p.tree, path, itoa(p.mib<<10)+"k").CombinedOutput(); err != nil {
				t.Fatalf("mkfs.ext4 -d %s at %d: %v\n%s", p.tree, off, err, out)
			}
		}
		off += p.mib << 20
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// fsTypeOf is a shell command printing the file system type mounted at
// path in the container.
func fsTypeOf(path string) string {
	return `awk '$5 == "` + path + `" { for (i = 7; i <= NF; i++) if ($i == "-") { print $(i+1); exit } }' /proc/self/mountinfo`
}

func rootTypeGUID(t *testing.T) string {
	g, ok := dissect.RootType(runtime.GOARCH)
	if !ok {
		t.Fatalf("no root partition type known for %s", runtime.GOARCH)
	}
	return g.String()
}

// imageEnv is a test world with the busybox tree made into images.
func imageEnv(t *testing.T) (*harness.Env, string) {
	e := harness.NewEnv(t)
	testutil.RequireRoot(t, "loop devices", "mkfs.ext4", "sfdisk", "losetup")
	return e, filepath.Dir(e.Tree)
}

// failsWith fails the test unless the command failed with stderr naming
// msg; what says which case it was.
func failsWith(t *testing.T, r harness.Result, what, msg string) {
	t.Helper()
	if r.Code == 0 || !strings.Contains(r.Stderr, msg) {
		t.Fatalf("%s: %d %q", what, r.Code, r.Stderr)
	}
}

func TestDiskImageBare(t *testing.T) {
	e, base := imageEnv(t)
	img := filepath.Join(base, "imgbare.raw")
	detachLeftovers(t, img)
	mkExt4(t, e.Tree, img, 64)

	r := e.Run("netspawn", "-q", "-i", img, "-M", "img-bare", "/bin/true")
	if r.Code != 0 {
		t.Fatalf("netspawn -i %s /bin/true: %d %s", img, r.Code, r.Stderr)
	}
	want(t, e.Run("netspawn", "-q", "-i", img, "-M", "img-bare", "sh", "-c", "grep ^ID= /etc/os-release; "+fsTypeOf("/")),
		"ID=busybox\next4")
	// Writable by default, and what is written stays in the image.
	want(t, e.Run("netspawn", "-q", "-i", img, "-M", "img-bare", "sh", "-c", "echo kept > /root/note"), "")
	want(t, e.Run("netspawn", "-q", "-i", img, "-M", "img-bare", "cat", "/root/note"), "kept")
	waitDetached(t, img)

	// The machine name comes from the file name, without .raw.
	want(t, e.Run("netspawn", "-q", "-i", img, "hostname"), "imgbare")

	// --read-only: writing fails.
	failsWith(t, e.Run("netspawn", "-q", "-i", img, "-M", "img-bare", "--read-only", "sh", "-c", "touch /root/x"), "--read-only: touch succeeded or failed otherwise", "Read-only file system")
	// -x: writes go to a throw-away layer; the image is not written.
	waitDetached(t, img) // the last read-write mount's final writes are done
	st0, _ := os.Stat(img)
	// (Its machine name: the image's, with a random suffix.)
	want(t, e.Run("netspawn", "-q", "-x", "-i", img, "sh", "-c", "echo gone > /root/note; cat /root/note; hostname | grep -c '^imgbare-[0-9a-f]\\{16\\}$'"), "gone\n1")
	waitDetached(t, img)
	if st1, _ := os.Stat(img); !st1.ModTime().Equal(st0.ModTime()) {
		t.Errorf("-x modified the image")
	}
	want(t, e.Run("netspawn", "-q", "-i", img, "-M", "img-bare", "cat", "/root/note"), "kept")
	// An image without write bits is read-only (netspawnctl read-only).
	if err := os.Chmod(img, 0o444); err != nil {
		t.Fatal(err)
	}
	failsWith(t, e.Run("netspawn", "-q", "-i", img, "-M", "img-bare", "sh", "-c", "touch /root/x"), "image without write bits: touch succeeded or failed otherwise", "Read-only file system")
	if err := os.Chmod(img, 0o644); err != nil {
		t.Fatal(err)
	}
	// --volatile=state: a read-only root, /var on a tmpfs; overlay: a
	// writable root whose changes stay in memory.
	want(t, e.Run("netspawn", "-q", "-i", img, "-M", "img-bare", "--volatile=state", "sh", "-c",
		"touch /var/v && "+fsTypeOf("/var")+"; touch /root/x 2>&1 | grep -o 'Read-only file system'"), "tmpfs\nRead-only file system")
	want(t, e.Run("netspawn", "-q", "-i", img, "-M", "img-bare", "--volatile=overlay", "sh", "-c", "echo v > /root/note && cat /root/note"), "v")
	want(t, e.Run("netspawn", "-q", "-i", img, "-M", "img-bare", "cat", "/root/note"), "kept")
	// --volatile=yes: a tmpfs root with only the image's /usr
	// (TestDiskImageVolatileYes has more).
	want(t, e.Run("netspawn", "-q", "-i", img, "-M", "img-bare", "--volatile=yes", "sh", "-c", fsTypeOf("/")+"; test ! -e /root/note && echo clean"), "tmpfs\nclean")
	waitDetached(t, img)
}

func TestDiskImageGPT(t *testing.T) {
	e, base := imageEnv(t)
	img := filepath.Join(base, "gpt.raw")
	detachLeftovers(t, img)
	home := filepath.Join(base, "home")
	if err := os.MkdirAll(filepath.Join(home, "user"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "user/marker"), []byte("from the home partition\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mkGPT(t, img, []gptPart{
		{typ: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", mib: 4}, // an ESP: ignored
		{typ: rootTypeGUID(t), mib: 48, tree: e.Tree},
		{typ: dissect.TypeHome.String(), mib: 8, tree: home},
	})
	want(t, e.Run("netspawn", "-q", "-i", img, "-M", "img-gpt", "sh", "-c",
		"cat /home/user/marker; grep ^ID= /etc/os-release; "+fsTypeOf("/home")),
		"from the home partition\nID=busybox\next4")
	failsWith(t, e.Run("netspawn", "-q", "-i", img, "-M", "img-gpt", "--read-only", "sh", "-c", "touch /home/user/x"), "--read-only /home", "Read-only file system")
	// -x: /home gets a throw-away layer too.
	want(t, e.Run("netspawn", "-q", "-x", "-i", img, "-M", "img-gpt", "sh", "-c", "echo x > /home/user/new && echo y > /root/new && cat /home/user/new /root/new"), "x\ny")
	want(t, e.Run("netspawn", "-q", "-i", img, "-M", "img-gpt", "sh", "-c", "ls /home/user; ls /root"), "marker")
	// The policy: /home may be left unused, or refused.
	want(t, e.Run("netspawn", "-q", "-i", img, "-M", "img-gpt", "--image-policy=root=unprotected:home=unused", "ls", "/home/user"), "")
	failsWith(t, e.Run("netspawn", "-q", "-i", img, "-M", "img-gpt", "--image-policy=root=unprotected:home=absent", "true"), "home=absent", `partition home exists, but the policy says it must be absent (image policy "root=unprotected:home=absent")`)
	failsWith(t, e.Run("netspawn", "-q", "-i", img, "-M", "img-gpt", "--image-policy=root=verity+signed", "true"), "root=verity+signed", "partition root was found unprotected but the policy requires verity+signed")
	waitDetached(t, img)
}

func TestDiskImageErrors(t *testing.T) {
	e, base := imageEnv(t)
	zeros := filepath.Join(base, "zeros.raw")
	if err := os.WriteFile(zeros, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	failsWith(t, e.Run("netspawn", "-q", "-i", zeros, "-M", "img-err", "true"), "zeros", "disk image "+zeros+": neither a GUID partition table nor a file system")
	noroot := filepath.Join(base, "noroot.raw")
	detachLeftovers(t, noroot)
	mkGPT(t, noroot, []gptPart{{typ: dissect.TypeHome.String(), mib: 8, tree: filepath.Join(e.Tree, "etc")}})
	failsWith(t, e.Run("netspawn", "-q", "-i", noroot, "-M", "img-err", "true"), "no root", "no root partition: the GUID partition table has no partition of type "+rootTypeGUID(t))
	// A file system that is no OS tree.
	notos := filepath.Join(base, "notos.raw")
	detachLeftovers(t, notos)
	mkExt4(t, filepath.Join(e.Tree, "etc"), notos, 8)
	failsWith(t, e.Run("netspawn", "-q", "-i", notos, "-M", "img-err", "true"), "not an OS", "doesn't look like an OS tree")
	waitDetached(t, notos)
	failsWith(t, e.Run("netspawn", "-q", "-i", filepath.Join(base, "missing.raw"), "-M", "img-err", "true"), "missing", "no such file or directory")
	// --volatile=yes keeps only /usr: an OS without a merged /usr is
	// refused, as nspawn refuses it.
	split := filepath.Join(base, "split")
	for _, d := range []string{"usr/bin", "bin"} {
		if err := os.MkdirAll(filepath.Join(split, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	splitImg := filepath.Join(base, "split.raw")
	detachLeftovers(t, splitImg)
	mkExt4(t, split, splitImg, 8)
	failsWith(t, e.Run("netspawn", "-q", "-i", splitImg, "-M", "img-err", "--volatile=yes", "true"), "not merged", "--volatile=yes needs an OS tree with a merged /usr")
	waitDetached(t, splitImg)
	// dm-verity: a bare image's root hash needs its hash tree.
	r := e.Run("netspawn", "-q", "-i", notos, "-M", "img-err", "--root-hash="+strings.Repeat("0f", 32), "true")
	if r.Code == 0 || !strings.Contains(r.Stderr, "needs the hash tree") || !strings.Contains(r.Stderr, "--verity-data=") {
		t.Fatalf("--root-hash without a hash tree: %d %q", r.Code, r.Stderr)
	}
	// With one, refused naming what this host lacks (no device mapper
	// here), or by dm-verity itself (the tree is no verity superblock; the
	// host lane's TestDiskImageVerity runs the real thing).
	r = e.Run("netspawn", "-q", "-i", notos, "-M", "img-err", "--root-hash="+strings.Repeat("0f", 32), "--verity-data="+filepath.Join(base, "noroot.raw"), "true")
	if r.Code == 0 || !strings.Contains(r.Stderr, "dm-verity") || !strings.Contains(r.Stderr, notos) {
		t.Fatalf("--root-hash with a hash tree: %d %q", r.Code, r.Stderr)
	}
	waitDetached(t, notos)
}

// startUp starts cmd, a netspawn whose payload prints "up" and stays, and
// returns once it has printed it; done is closed when it is gone (it is
// killed at the test's end). Its output is read to the end before Wait.
func startUp(t *testing.T, cmd *exec.Cmd) (done <-chan struct{}) {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 3)
	if _, err := io.ReadFull(out, line); err != nil || string(line) != "up\n" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("container did not start: %v %q", err, line)
	}
	ch := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, out); _ = cmd.Wait(); close(ch) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-ch })
	return ch
}

// TestDiskImageKill: after kill -9 of netspawn, the container dies with it
// and the loop devices detach themselves.
func TestDiskImageKill(t *testing.T) {
	e, base := imageEnv(t)
	img := filepath.Join(base, "kill.raw")
	detachLeftovers(t, img)
	mkExt4(t, e.Tree, img, 64)
	cmd := e.Command("netspawn", "-q", "-i", img, "-M", "img-kill", "sh", "-c", "echo up; exec sleep 1000")
	done := startUp(t, cmd)
	if len(loopsOf(img)) == 0 {
		t.Fatal("no loop device attached to the running image")
	}
	// The image is locked while a container may write to it.
	failsWith(t, e.Run("netspawn", "-q", "-i", img, "-M", "img-kill2", "true"), "second writer", "Disk image "+img+" is currently busy")
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-done
	waitDetached(t, img)
}

// TestDiskImageBoot boots Debian from a GPT disk image with -b -i; the
// image is detached after the container is stopped.
func TestDiskImageBoot(t *testing.T) {
	e, base := imageEnv(t)
	pristine := pristineDebian(t)
	img := filepath.Join(base, "debian.raw")
	detachLeftovers(t, img)
	mkGPT(t, img, []gptPart{{typ: rootTypeGUID(t), mib: 768, tree: pristine}})
	b := bootFrom(t, e, []string{"-i", img}, "img-boot")
	// Booted when systemd says so (netspawnctl shell reaches it).
	if !testutil.Eventually(90*time.Second, func() bool {
		select {
		case <-b.done:
			return true
		default:
		}
		out, _ := b.exec("systemctl", "is-system-running")
		return out == "running" || out == "degraded"
	}) {
		t.Fatal("the image did not finish booting within 90s")
	}
	out, err := b.exec("sh", "-c", "grep ^ID= /etc/os-release; "+fsTypeOf("/"))
	if err != nil || out != "ID=debian\next4" {
		t.Fatalf("in the booted image: %q %v", out, err)
	}
	if len(loopsOf(img)) != 1 {
		t.Fatalf("loop devices of the running image: %v", loopsOf(img))
	}
	harness.Stop(b.cmd.Process, b.done)
	waitDetached(t, img)

	// --volatile=yes: systemd boots with an empty tmpfs root and the
	// image's /usr; the image stays as it was. (An empty /etc is a first
	// boot: systemd-firstboot would ask for a locale on the console.)
	sum := sha256File(t, img)
	b = bootFrom(t, e, []string{"-i", img}, "img-bootvol", "--volatile=yes", "systemd.firstboot=off")
	b.waitRunning()
	// (Not awk: /usr/bin/awk is a link through the empty /etc/alternatives.)
	out, err = b.exec("sh", "-c", "stat -f -c %T / /usr; grep ^ID= /usr/lib/os-release; touch /etc/booted && touch /usr/x")
	if !strings.HasPrefix(out, "tmpfs\next2/ext3\nID=debian\n") || !strings.Contains(out, "Read-only file system") {
		t.Fatalf("in the volatile image: %q %v", out, err)
	}
	harness.Stop(b.cmd.Process, b.done)
	waitDetached(t, img)
	if got := sha256File(t, img); got != sum {
		t.Errorf("booting with --volatile=yes changed the image: sha256 %s, was %s", got, sum)
	}
}

// TestDiskImageStart: netspawnctl lists a .raw image in the images
// directory and starts it (as systemd-nspawn@.service does).
func TestDiskImageStart(t *testing.T) {
	e, base := imageEnv(t)
	tree := filepath.Join(base, "svctree")
	if err := harness.CopyTree(e.Tree, tree); err != nil {
		t.Fatal(err)
	}
	initPath := filepath.Join(tree, "usr/sbin/init")
	os.Remove(initPath)
	if err := os.WriteFile(initPath, []byte("#!/bin/sh\ntrap 'echo bye; exit 0' TERM\necho \"raw init up on $(hostname)\"\nwhile :; do sleep 0.2; done\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(e.ImagesDir, "imgsvc.raw")
	detachLeftovers(t, img)
	mkGPT(t, img, []gptPart{{typ: rootTypeGUID(t), mib: 48, tree: tree}})
	if r := e.Run("netspawnctl", "list-images"); r.Code != 0 || !strings.Contains(r.Stdout, "imgsvc") || !strings.Contains(r.Stdout, "raw") {
		t.Fatalf("list-images: %q %s", r.Stdout, r.Stderr)
	}
	if r := e.Run("netspawnctl", "start", "imgsvc"); r.Code != 0 {
		t.Fatalf("start: %s", r.Stderr)
	}
	waitListed(t, e, "imgsvc", true)
	if !testutil.Eventually(15*time.Second, func() bool {
		return strings.Contains(e.Run("netspawnctl", "logs", "imgsvc").Stdout, "raw init up on imgsvc")
	}) {
		t.Fatalf("console log: %q", e.Run("netspawnctl", "logs", "imgsvc").Stdout)
	}
	if len(loopsOf(img)) != 1 {
		t.Errorf("loop devices of the started image: %v", loopsOf(img))
	}
	// netspawnd knows the machine's image: it is shown, and it may not be
	// removed while the machine runs.
	if r := e.Run("netspawnctl", "status", "imgsvc"); !strings.Contains(r.Stdout, "Root: "+img) {
		t.Errorf("status does not name the image: %q", r.Stdout)
	}
	if r := e.Run("netspawnctl", "remove", "imgsvc"); r.Code == 0 || !strings.Contains(r.Stderr, "image imgsvc is in use by running machine imgsvc") {
		t.Errorf("remove of a running disk image: %d %q", r.Code, r.Stderr)
	}
	if r := e.Run("netspawnctl", "poweroff", "imgsvc"); r.Code != 0 {
		t.Fatal(r.Stderr)
	}
	waitListed(t, e, "imgsvc", false)
	waitDetached(t, img)
}

// TestDiskImageBlockDevice: -i takes a block device too.
func TestDiskImageBlockDevice(t *testing.T) {
	e, base := imageEnv(t)
	img := filepath.Join(base, "blk.raw")
	detachLeftovers(t, img)
	mkGPT(t, img, []gptPart{{typ: rootTypeGUID(t), mib: 48, tree: e.Tree}})
	out, err := exec.Command("losetup", "--find", "--show", "--read-only", img).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", dev).Run() })
	want(t, e.Run("netspawn", "-q", "-i", dev, "-M", "img-blk", "sh", "-c", "grep ^ID= /etc/os-release; touch /x 2>&1 | grep -o 'Read-only file system'"),
		"ID=busybox\nRead-only file system")
	// Locked by its device number, with no lock file beside it in /dev.
	if _, err := os.Stat(filepath.Join("/dev", ".#"+filepath.Base(dev)+".lck")); err == nil {
		t.Errorf("a lock file was left in /dev for %s", dev)
	}
	if err := exec.Command("losetup", "-d", dev).Run(); err != nil {
		t.Fatal(err)
	}
	waitDetached(t, img)
}

// TestDiskImageSquashfs: a read-only file system is mounted read-only;
// -x still gives the container a writable root.
func TestDiskImageSquashfs(t *testing.T) {
	e, base := imageEnv(t)
	harness.RequireTool(t, "mksquashfs")
	img := filepath.Join(base, "imgsq.raw")
	detachLeftovers(t, img)
	if out, err := exec.Command("mksquashfs", e.Tree, img, "-noappend", "-quiet", "-no-progress").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, out)
	}
	want(t, e.Run("netspawn", "-q", "-i", img, "sh", "-c", "grep ^ID= /etc/os-release; "+fsTypeOf("/")+"; touch /x 2>&1 | grep -o 'Read-only file system'"),
		"ID=busybox\nsquashfs\nRead-only file system")
	want(t, e.Run("netspawn", "-q", "-x", "-i", img, "sh", "-c", "echo w > /x && cat /x"), "w")
	// --volatile=yes: the bare file system's /usr in a tmpfs root.
	want(t, e.Run("netspawn", "-q", "--volatile=yes", "-i", img, "sh", "-c", fsTypeOf("/")+"; "+fsTypeOf("/usr")+"; echo w > /x && cat /x"), "tmpfs\nsquashfs\nw")
	waitDetached(t, img)
}

// TestDiskImagePrivateUsers: -U with a disk image maps the image's
// ownership into the container's range with idmapped mounts; nothing in
// the image changes owner.
func TestDiskImagePrivateUsers(t *testing.T) {
	e, base := imageEnv(t)
	img := filepath.Join(base, "imgu.raw")
	detachLeftovers(t, img)
	home := filepath.Join(base, "home")
	if err := os.MkdirAll(filepath.Join(home, "user"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(home, "user"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
	mkGPT(t, img, []gptPart{
		{typ: rootTypeGUID(t), mib: 48, tree: e.Tree},
		{typ: dissect.TypeHome.String(), mib: 8, tree: home},
	})
	show := "awk '{print $1, ($2 >= 65536)}' /proc/self/uid_map; stat -c '%u %g' /etc/passwd /home/user; touch /root/u && stat -c %u /root/u"
	want(t, e.Run("netspawn", "-q", "-U", "-i", img, "-M", "img-u", "sh", "-c", show), "0 1\n0 0\n1000 1000\n0")
	want(t, e.Run("netspawn", "-q", "-U", "-x", "-i", img, "-M", "img-u", "sh", "-c", show+"; touch /home/user/v && stat -c %u /home/user/v"), "0 1\n0 0\n1000 1000\n0\n0")
	waitDetached(t, img)
	// On the host the image's files kept their owners: without -U the
	// file made above is root's.
	want(t, e.Run("netspawn", "-q", "-i", img, "-M", "img-u", "stat", "-c", "%u", "/root/u", "/etc/passwd"), "0\n0")
}

// TestDiskImageVerityDissect: a GPT image made as the Discoverable
// Partitions Specification says (veritysetup format's hash tree in a
// root-verity partition, both partitions' UUIDs from the root hash) passes
// dissection and the image policy root=verity with its root hash; on a
// host without the device mapper it is then refused naming what the
// kernel lacks, on one with it (and veritysetup) it runs. The host lane's
// TestDiskImageVerity runs it through dm-verity for real.
func TestDiskImageVerityDissect(t *testing.T) {
	e, base := imageEnv(t)
	testutil.RequireRoot(t, "dm-verity images", "veritysetup")
	if err := os.WriteFile(filepath.Join(e.Tree, "etc/verity-marker"), []byte("verity-ok\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	data, hash := filepath.Join(base, "v.ext4"), filepath.Join(base, "v.hash")
	mkExt4(t, e.Tree, data, 32)
	out, err := exec.Command("veritysetup", "format", data, hash).CombinedOutput()
	if err != nil {
		t.Fatalf("veritysetup format: %v\n%s", err, out)
	}
	var rootHash string
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "Root hash:"); ok {
			rootHash = strings.TrimSpace(v)
		}
	}
	h, err := hex.DecodeString(rootHash)
	if err != nil {
		t.Fatalf("root hash %q: %v\n%s", rootHash, err, out)
	}
	dataUUID, verityUUID, err := dissect.UUIDsOfRootHash(h)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(hash)
	if err != nil {
		t.Fatal(err)
	}
	hashMiB := (st.Size() + 1<<20 - 1) >> 20
	img := filepath.Join(base, "verity.raw")
	detachLeftovers(t, img)
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate((2 + 32 + hashMiB) << 20); err != nil {
		t.Fatal(err)
	}
	script := "label: gpt\nstart=2048, size=" + itoa(32<<11) + ", type=" + rootTypeGUID(t) + ", uuid=" + dataUUID.String() + "\n" +
		"size=" + itoa(hashMiB<<11) + ", type=2c7357ed-ebd2-46d9-aec1-23d437ec2bf5, uuid=" + verityUUID.String() + "\n"
	if runtime.GOARCH != "amd64" {
		t.Skip("the root-verity type here is x86-64's")
	}
	cmd := exec.Command("sfdisk", "--no-reread", "--no-tell-kernel", "-q", img)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	for _, c := range []struct {
		src string
		off int64
	}{{data, 1 << 20}, {hash, 33 << 20}} {
		src, err := os.Open(c.src)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(io.NewOffsetWriter(f, c.off), src)
		src.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	r := e.Run("netspawn", "-q", "-i", img, "-M", "img-verity", "--image-policy=root=verity", "--root-hash="+rootHash, "cat", "/etc/verity-marker")
	if _, err := os.Stat("/sys/class/misc/device-mapper"); err != nil && !kernelModules() {
		if r.Code == 0 || !strings.Contains(r.Stderr, "no device mapper") || !strings.Contains(r.Stderr, img) {
			t.Fatalf("no device mapper: %d %q %q", r.Code, r.Stdout, r.Stderr)
		}
		t.Logf("as expected here: %s", r.Stderr)
	} else if r.Code != 0 || strings.TrimSpace(r.Stdout) != "verity-ok" {
		t.Fatalf("through dm-verity: %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	waitDetached(t, img)
	// Another root hash: no partition has its UUIDs.
	other := strings.Repeat("5a", 32)
	r = e.Run("netspawn", "-q", "-i", img, "-M", "img-verity", "--root-hash="+other, "true")
	if r.Code == 0 || !strings.Contains(r.Stderr, "no root partition whose UUID is 5a5a5a5a-5a5a-5a5a-5a5a-5a5a5a5a5a5a") {
		t.Fatalf("another root hash: %d %q", r.Code, r.Stderr)
	}
	// Without a root hash the policy root=verity refuses it.
	r = e.Run("netspawn", "-q", "-i", img, "-M", "img-verity", "--image-policy=root=verity", "true")
	if r.Code == 0 || !strings.Contains(r.Stderr, "found unprotected but the policy requires verity") {
		t.Fatalf("no root hash: %d %q", r.Code, r.Stderr)
	}
	waitDetached(t, img)
}

// kernelModules says this kernel has a module directory (so it may load
// the device mapper on demand).
func kernelModules() bool {
	var u syscall.Utsname
	if syscall.Uname(&u) != nil {
		return false
	}
	var b []byte
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	_, err := os.Stat(filepath.Join("/lib/modules", string(b)))
	return err == nil
}

// sha256File is the hex SHA-256 of a file's contents.
func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// mountsOfLoops lists the lines of /proc/PID/mountinfo whose source is one
// of the loop devices devs.
func mountsOfLoops(t *testing.T, pid int, devs []string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		_, after, ok := strings.Cut(l, " - ")
		if f := strings.Fields(after); ok && len(f) >= 2 && slices.Contains(devs, f[1]) {
			out = append(out, l)
		}
	}
	return out
}

// TestDiskImageVolatileYes: --volatile=yes with -i runs on a tmpfs root
// with the image's /usr read-only in it (and its /home partition, as
// nspawn mounts the partitions below the root); what is written goes with
// the run, the image is not changed, and nothing is mounted in the host's
// mount namespace or left attached, even after kill -9 of netspawn.
func TestDiskImageVolatileYes(t *testing.T) {
	e, base := imageEnv(t)
	img := filepath.Join(base, "imgvol.raw")
	detachLeftovers(t, img)
	if err := os.WriteFile(filepath.Join(e.Tree, "usr/volimg-marker"), []byte("from the image's usr\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(base, "home")
	if err := os.MkdirAll(filepath.Join(home, "user"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "user/marker"), []byte("from the home partition\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mkGPT(t, img, []gptPart{
		{typ: rootTypeGUID(t), mib: 48, tree: e.Tree},
		{typ: dissect.TypeHome.String(), mib: 8, tree: home},
	})
	sum := sha256File(t, img)

	show := fsTypeOf("/") + "; " + fsTypeOf("/usr") + "; cat /usr/volimg-marker; test ! -e /etc/passwd && echo no-passwd; " +
		"mkdir -p /etc && echo written > /etc/volatile-note && cat /etc/volatile-note; " +
		"touch /usr/x 2>&1 | grep -o 'Read-only file system'; " +
		"cat /home/user/marker; touch /home/user/x 2>&1 | grep -o 'Read-only file system'"
	want(t, e.Run("netspawn", "-q", "-i", img, "-M", "img-vol", "--volatile=yes", "sh", "-c", show),
		"tmpfs\next4\nfrom the image's usr\nno-passwd\nwritten\nRead-only file system\nfrom the home partition\nRead-only file system")
	// The write to /etc went with the run.
	want(t, e.Run("netspawn", "-q", "-i", img, "-M", "img-vol", "--volatile", "sh", "-c", "test ! -e /etc/volatile-note && echo gone"), "gone")
	// -U: the tmpfs and the idmapped /usr belong to the container's root.
	want(t, e.Run("netspawn", "-q", "-U", "-i", img, "-M", "img-vol", "--volatile=yes", "sh", "-c",
		"awk '{print $1, ($2 >= 65536)}' /proc/self/uid_map; stat -c %u / /bin /usr/bin /home/user; touch /new && echo ok"),
		"0 1\n0\n0\n0\n0\nok")
	waitDetached(t, img)
	if got := sha256File(t, img); got != sum {
		t.Errorf("--volatile=yes changed the image: sha256 %s, was %s", got, sum)
	}

	// kill -9: the loop devices go with netspawn; none of the image's
	// mounts was ever in netspawn's (the host's) mount namespace.
	cmd := e.Command("netspawn", "-q", "-i", img, "-M", "img-vol", "--volatile=yes", "sh", "-c", "echo up; exec sleep 1000")
	done := startUp(t, cmd)
	loops := loopsOf(img)
	if len(loops) != 2 {
		t.Fatalf("loop devices of the running image (root and home): %v", loops)
	}
	if m := mountsOfLoops(t, cmd.Process.Pid, loops); len(m) != 0 {
		t.Errorf("the image is mounted in netspawn's mount namespace: %q", m)
	}
	if m := mountsOfLoops(t, os.Getpid(), loops); len(m) != 0 {
		t.Errorf("the image is mounted in the test's mount namespace: %q", m)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-done
	waitDetached(t, img)
	if got := sha256File(t, img); got != sum {
		t.Errorf("--volatile=yes and kill -9 changed the image: sha256 %s, was %s", got, sum)
	}
}

// TestDiskImageUsrPartition: an image whose /usr is a partition of its
// own (the /usr type of this architecture) has it mounted at /usr; with
// --volatile=yes it alone comes from the image.
func TestDiskImageUsrPartition(t *testing.T) {
	e, base := imageEnv(t)
	usrType, ok := dissect.UsrType(runtime.GOARCH)
	if !ok {
		t.Fatalf("no /usr partition type known for %s", runtime.GOARCH)
	}
	img := filepath.Join(base, "imgusr.raw")
	detachLeftovers(t, img)
	// The root partition: the tree with an empty /usr but for a decoy
	// the container must not see; the /usr partition: the tree's /usr.
	rootTree := filepath.Join(base, "usrroot")
	if err := harness.CopyTree(e.Tree, rootTree); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(rootTree, "usr")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(rootTree, "usr"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootTree, "usr/decoy"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.Tree, "usr/usr-partition"), []byte("from the usr partition\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mkGPT(t, img, []gptPart{
		{typ: rootTypeGUID(t), mib: 16, tree: rootTree},
		{typ: usrType.String(), mib: 40, tree: filepath.Join(e.Tree, "usr")},
	})
	sum := sha256File(t, img)
	show := fsTypeOf("/") + "; cat /usr/usr-partition; test ! -e /usr/decoy && echo no-decoy; touch /usr/x 2>&1 | grep -o 'Read-only file system'"
	want(t, e.Run("netspawn", "-q", "-i", img, "-M", "img-usr", "--read-only", "sh", "-c", show+"; grep ^ID= /etc/os-release"),
		"ext4\nfrom the usr partition\nno-decoy\nRead-only file system\nID=busybox")
	want(t, e.Run("netspawn", "-q", "-i", img, "-M", "img-usr", "--volatile=yes", "sh", "-c", show+"; test ! -e /etc/os-release && echo no-etc"),
		"tmpfs\nfrom the usr partition\nno-decoy\nRead-only file system\nno-etc")
	want(t, e.Run("netspawn", "-q", "-U", "-i", img, "-M", "img-usr", "--volatile=yes", "sh", "-c", "stat -c %u /usr/bin; touch /new && echo ok"), "0\nok")
	waitDetached(t, img)
	if got := sha256File(t, img); got != sum {
		t.Errorf("the image changed: sha256 %s, was %s", got, sum)
	}
}

// usrTree copies the busybox tree's /usr to base/name with an
// os-release file of ID=id in /usr/lib and, at init (a path in /usr), a
// shell init that says it is up and exits.
func usrTree(t *testing.T, e *harness.Env, base, name, id, init string) string {
	t.Helper()
	dir := filepath.Join(base, name)
	if err := harness.CopyTree(filepath.Join(e.Tree, "usr"), dir); err != nil {
		t.Fatal(err)
	}
	if id != "" {
		if err := os.MkdirAll(filepath.Join(dir, "lib"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "lib/os-release"), []byte("ID="+id+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, init)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Remove(p)
	script := "#!/usr/bin/sh\necho \"init up: $(grep ^ID= /usr/lib/os-release) pid $$ root $(" + fsTypeOf("/") + ")\"\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestDiskImageUsrOSRelease: -b with an image whose /etc/os-release is a
// link into the /usr partition (Debian's ../usr/lib/os-release) boots, as
// nspawn finds the file with the root and /usr mounted together; without
// the file on /usr the boot is refused.
func TestDiskImageUsrOSRelease(t *testing.T) {
	e, base := imageEnv(t)
	usrType, ok := dissect.UsrType(runtime.GOARCH)
	if !ok {
		t.Fatalf("no /usr partition type known for %s", runtime.GOARCH)
	}
	rootTree := filepath.Join(base, "osrelroot")
	if err := harness.CopyTree(e.Tree, rootTree); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(rootTree, "usr")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(rootTree, "usr"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(rootTree, "etc/os-release")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../usr/lib/os-release", filepath.Join(rootTree, "etc/os-release")); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(base, "osrel.raw")
	detachLeftovers(t, img)
	mkGPT(t, img, []gptPart{
		{typ: rootTypeGUID(t), mib: 16, tree: rootTree},
		{typ: usrType.String(), mib: 40, tree: usrTree(t, e, base, "osrelusr", "usrpart", "sbin/init")},
	})
	want(t, e.Run("netspawn", "-q", "-i", img, "-M", "img-osrel", "-b", "--console=pipe"), "init up: ID=usrpart pid 1 root ext4")
	waitDetached(t, img)

	// The same link, no os-release on the /usr partition.
	bad := filepath.Join(base, "osrelbad.raw")
	detachLeftovers(t, bad)
	mkGPT(t, bad, []gptPart{
		{typ: rootTypeGUID(t), mib: 16, tree: rootTree},
		{typ: usrType.String(), mib: 40, tree: usrTree(t, e, base, "osrelbadusr", "", "sbin/init")},
	})
	failsWith(t, e.Run("netspawn", "-q", "-i", bad, "-M", "img-osrel", "-b", "--console=pipe"), "no os-release on /usr",
		"disk image "+bad+" lacks /etc/os-release and /usr/lib/os-release")
	waitDetached(t, bad)
}

// TestDiskImageUsrOnly: an image with a /usr partition and no root
// partition runs, as with nspawn, on an empty tmpfs root with the
// partition on /usr (so -b needs /usr/lib/os-release and the init at
// /usr/lib/systemd/systemd); kill -9 leaves no loop device behind.
func TestDiskImageUsrOnly(t *testing.T) {
	e, base := imageEnv(t)
	usrType, ok := dissect.UsrType(runtime.GOARCH)
	if !ok {
		t.Fatalf("no /usr partition type known for %s", runtime.GOARCH)
	}
	img := filepath.Join(base, "usronly.raw")
	detachLeftovers(t, img)
	home := filepath.Join(base, "usronlyhome")
	if err := os.MkdirAll(filepath.Join(home, "user"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "user/marker"), []byte("from the home partition\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mkGPT(t, img, []gptPart{
		{typ: usrType.String(), mib: 40, tree: usrTree(t, e, base, "usronlyusr", "usronly", "lib/systemd/systemd")},
		{typ: dissect.TypeHome.String(), mib: 8, tree: home},
	})
	show := fsTypeOf("/") + "; " + fsTypeOf("/usr") + "; stat -c %a /; grep ^ID= /usr/lib/os-release; test ! -e /etc/os-release && echo no-etc; " +
		"cat /home/user/marker; touch /new && echo root-writable"
	want(t, e.Run("netspawn", "-q", "-i", img, "-M", "img-usronly", "sh", "-c", show),
		"tmpfs\next4\n755\nID=usronly\nno-etc\nfrom the home partition\nroot-writable")
	want(t, e.Run("netspawn", "-q", "-i", img, "-M", "img-usronly", "--volatile=yes", "sh", "-c", show+"; touch /usr/x 2>&1 | grep -o 'Read-only file system'"),
		"tmpfs\next4\n755\nID=usronly\nno-etc\nfrom the home partition\nroot-writable\nRead-only file system")
	want(t, e.Run("netspawn", "-q", "-U", "-i", img, "-M", "img-usronly", "sh", "-c", "stat -c %u / /usr/bin; touch /new && echo ok"), "0\n0\nok")
	want(t, e.Run("netspawn", "-q", "-x", "-i", img, "-M", "img-usronly", "sh", "-c", "touch /usr/x /new && echo ok"), "ok")
	want(t, e.Run("netspawn", "-q", "-i", img, "-M", "img-usronly", "sh", "-c", "test ! -e /usr/x && echo ephemeral-gone"), "ephemeral-gone")
	want(t, e.Run("netspawn", "-q", "-i", img, "-M", "img-usronly", "-b", "--console=pipe"), "init up: ID=usronly pid 1 root tmpfs")
	waitDetached(t, img)

	// kill -9: the loop devices go with netspawn.
	cmd := e.Command("netspawn", "-q", "-i", img, "-M", "img-usronly", "sh", "-c", "echo up; exec sleep 1000")
	done := startUp(t, cmd)
	if loops := loopsOf(img); len(loops) != 2 {
		t.Fatalf("loop devices of the running image (usr and home): %v", loops)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-done
	waitDetached(t, img)
}
