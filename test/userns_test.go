package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netspawn/netspawn/spawn/cgroup"

	"github.com/netspawn/netspawn/test/harness"
)

// uidMap runs the container with args and returns the host UID its UID 0
// maps to (and the range size).
func uidMap(t *testing.T, e *harness.Env, args ...string) (uint32, uint32) {
	t.Helper()
	r := e.Netspawn(append(args, "cat", "/proc/self/uid_map")...)
	var in, shift, size uint32
	if _, err := fmt.Sscan(r.Stdout, &in, &shift, &size); err != nil || r.Code != 0 || in != 0 {
		t.Fatalf("uid_map: %q (status %d, stderr %q)", r.Stdout, r.Code, r.Stderr)
	}
	return shift, size
}

// removeMachineCgroup removes the (empty) cgroup a SIGKILLed netspawn left.
func removeMachineCgroup(name string) {
	for _, root := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		_ = os.Remove(filepath.Join(root, cgroup.PayloadPath(name)))
		_ = os.Remove(filepath.Join(root, cgroup.ScopePath(name)))
	}
}

func owner(t *testing.T, p string) (uint32, uint32) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return st.Uid, st.Gid
}

func TestPrivateUsersChown(t *testing.T) {
	e := harness.NewEnv(t)
	shift, size := uidMap(t, e, "-U", "--private-users-ownership=chown")
	if size != 65536 || shift < 524288 || shift >= 1878982656 || shift%65536 != 0 {
		t.Fatalf("range %d:%d not a 64K range in 524288..1878982656", shift, size)
	}
	// The tree is now owned by the range; files made inside land shifted.
	if u, g := owner(t, e.Tree); u != shift || g != shift {
		t.Fatalf("tree root owned by %d:%d, want %d", u, g, shift)
	}
	if u, _ := owner(t, filepath.Join(e.Tree, "home/user")); u != shift+1000 {
		t.Fatalf("/home/user owned by %d, want %d", u, shift+1000)
	}
	want(t, e.Netspawn("-U", "sh", "-c", "touch /root/made && chown 1000:1000 /root/made && id -u"), "0")
	if u, g := owner(t, filepath.Join(e.Tree, "root/made")); u != shift+1000 || g != shift+1000 {
		t.Fatalf("file chowned to 1000 inside is %d:%d on the host, want %d", u, g, shift+1000)
	}
	// The next -U run reuses the range the tree is in.
	if s, _ := uidMap(t, e, "-U"); s != shift {
		t.Fatalf("second run got range %d, want the tree's %d", s, shift)
	}
	// --private-users=yes takes the tree owner's range.
	if s, _ := uidMap(t, e, "--private-users=yes"); s != shift {
		t.Fatalf("--private-users=yes: %d, want %d", s, shift)
	}
	// Root in the namespace has capabilities there, and none over the host.
	want(t, e.Netspawn("-U", "--private-network", "sh", "-c", "ip link set lo up && echo ok"), "ok")
	want(t, e.Netspawn("-U", "sh", "-c", "ls /sys/class/net >/dev/null && test -c /dev/null && echo ok"), "ok")
	want(t, e.Netspawn("-U", "-a", "sh", "-c", "echo $$"), "2")
	want(t, e.Netspawn("-U", "--read-only", "--tmpfs=/srv", "sh", "-c", "! touch /root/x 2>/dev/null && touch /srv/x /tmp/x && echo ok"), "ok")
	// Its root's capabilities do not reach the host: host-owned files stay closed.
	want(t, e.Netspawn("-U", "--bind-ro=/etc/shadow:/mnt/shadow", "sh", "-c", "cat /mnt/shadow >/dev/null 2>&1 || echo denied"), "denied")
}

func TestPrivateUsersMap(t *testing.T) {
	e := harness.NewEnv(t)
	shift, _ := uidMap(t, e, "--private-users=pick", "--private-users-ownership=map")
	want(t, e.Netspawn("--private-users=pick", "--private-users-ownership=map", "sh", "-c",
		"stat -c %u /home/user; touch /root/made && chown 1000 /root/made && echo ok"), "1000\nok")
	// Idmapped: the files on disk keep the tree's own IDs.
	if u, _ := owner(t, filepath.Join(e.Tree, "root/made")); u != 1000 {
		t.Fatalf("file chowned to 1000 inside is %d on disk, want 1000", u)
	}
	if u, _ := owner(t, e.Tree); u != 0 {
		t.Fatalf("map changed the tree's owner to %d", u)
	}
	// The range is remembered for the tree.
	if s, _ := uidMap(t, e, "-U"); s != shift {
		t.Fatalf("-U after map: range %d, want the remembered %d", s, shift)
	}
	if u, _ := owner(t, e.Tree); u != 0 {
		t.Fatalf("-U (auto) chowned instead of mapping: owner %d", u)
	}
}

func TestPrivateUsersFixedIdentity(t *testing.T) {
	e := harness.NewEnv(t)
	if s, n := uidMap(t, e, "--private-users=3145728:65536", "--private-users-ownership=chown"); s != 3145728 || n != 65536 {
		t.Fatalf("fixed range: %d:%d", s, n)
	}
	if s, n := uidMap(t, e, "--private-users=identity"); s != 0 || n != 65536 {
		t.Fatalf("identity: %d:%d", s, n)
	}
	wantFail(t, e.Netspawn("--private-users=bogus", "true"), "--private-users=bogus")
	wantFail(t, e.Netspawn("--private-users-ownership=bogus", "true"), "bogus")
}

// Two running containers never share a range, even when the second's tree
// is owned by the first one's range (which pick would otherwise reuse).
func TestPrivateUsersConcurrentRanges(t *testing.T) {
	e := harness.NewEnv(t)
	pristine, err := harness.CachedBusyboxTree(harness.CacheDir())
	if err != nil {
		t.Fatal(err)
	}
	tree2 := filepath.Join(t.TempDir(), "tree2")
	if err := harness.CopyTree(pristine, tree2); err != nil {
		t.Fatal(err)
	}
	first := e.Command("netspawn", "-q", "-D", e.Tree, "-M", "twin-a", "-U", "--private-users-ownership=map",
		"sh", "-c", "cat /proc/self/uid_map > /root/map; sleep 1000")
	first.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	firstDone := make(chan struct{})
	go func() { _ = first.Wait(); close(firstDone) }()
	t.Cleanup(func() { harness.Stop(first.Process, firstDone) })
	mapFile := filepath.Join(e.Tree, "root/map")
	var firstMap string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(mapFile); err == nil && len(b) > 0 {
			firstMap = string(b)
			break
		}
	}
	var in, s1, n uint32
	if _, err := fmt.Sscan(firstMap, &in, &s1, &n); err != nil {
		t.Fatalf("first container's uid_map %q", firstMap)
	}
	if err := os.Chown(tree2, int(s1), int(s1)); err != nil {
		t.Fatal(err)
	}
	r := e.Run("netspawn", "-q", "-D", tree2, "-M", "twin-b", "-U", "--private-users-ownership=map", "cat", "/proc/self/uid_map")
	var s2 uint32
	if _, err := fmt.Sscan(r.Stdout, &in, &s2, &n); err != nil || r.Code != 0 {
		t.Fatalf("second container: %q %q", r.Stdout, r.Stderr)
	}
	if s1 == s2 {
		t.Fatalf("two running containers share range %d", s1)
	}
	// Once the first is gone, the second tree gets its remembered range again.
	harness.Stop(first.Process, firstDone)
	r = e.Run("netspawn", "-q", "-D", tree2, "-M", "twin-b", "--private-users=pick", "cat", "/proc/self/uid_map")
	var s3 uint32
	if _, err := fmt.Sscan(r.Stdout, &in, &s3, &n); err != nil || r.Code != 0 {
		t.Fatalf("third container: %q %q", r.Stdout, r.Stderr)
	}
	if s3 != s2 {
		t.Fatalf("the tree's remembered range %d not reused (got %d)", s2, s3)
	}
}

func TestEphemeral(t *testing.T) {
	e := harness.NewEnv(t)
	want(t, e.Netspawn("-x", "sh", "-c", "rm /etc/passwd && echo x > /root/new && test ! -e /etc/passwd && echo gone"), "gone")
	if _, err := os.Stat(filepath.Join(e.Tree, "etc/passwd")); err != nil {
		t.Fatalf("-x delete reached the tree: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.Tree, "root/new")); err == nil {
		t.Fatal("-x write reached the tree")
	}
	// The machine name derived from the path gets a random suffix.
	r := e.Netspawn("-x", "hostname")
	base := filepath.Base(e.Tree)
	if h := strings.TrimSpace(r.Stdout); !strings.HasPrefix(h, base+"-") || len(h) != len(base)+17 {
		t.Fatalf("-x hostname %q, want %s-<16 hex>", h, base)
	}
	want(t, e.Netspawn("-x", "-M", "named", "hostname"), "named")
	// With a user namespace: the tree stays as it was.
	want(t, e.Netspawn("-x", "-U", "sh", "-c", "echo x > /root/new && id -u"), "0")
	if _, err := os.Stat(filepath.Join(e.Tree, "root/new")); err == nil {
		t.Fatal("-x -U write reached the tree")
	}
	if u, _ := owner(t, e.Tree); u != 0 {
		t.Fatalf("-x -U changed the tree's owner to %d", u)
	}
	wantFail(t, e.Netspawn("-x", "--template=/", "true"), "--template")
}

// A SIGKILLed netspawn cannot clean up: the container dies with it, and
// the next run removes the upper layer it left.
func TestEphemeralAfterSIGKILL(t *testing.T) {
	e := harness.NewEnv(t)
	tmp := t.TempDir()
	cmd := e.Command("netspawn", "-q", "-D", e.Tree, "-M", "killed-x", "-x", "sh", "-c", "touch /ready; sleep 1000")
	t.Cleanup(func() { removeMachineCgroup("killed-x") })
	cmd.Env = append(cmd.Env, "NETSPAWN_TMPDIR="+tmp)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var ready []string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && len(ready) == 0; time.Sleep(20 * time.Millisecond) {
		ready, _ = filepath.Glob(filepath.Join(tmp, "run-*", "ephemeral-*", "upper", "ready"))
	}
	if len(ready) == 0 {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal("the -x container did not start")
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	// The container went with it (its init has the parent-death signal).
	e.NS.KillAll()
	cmd2 := e.Command("netspawn", "-q", "-D", e.Tree, "-x", "true")
	cmd2.Env = append(cmd2.Env, "NETSPAWN_TMPDIR="+tmp)
	if out, err := cmd2.CombinedOutput(); err != nil {
		t.Fatalf("second run: %v %s", err, out)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "run-*")); len(left) != 0 {
		t.Fatalf("left behind after the next run: %v", left)
	}
}

func TestVolatile(t *testing.T) {
	e := harness.NewEnv(t)
	want(t, e.Netspawn("--volatile=yes", "sh", "-c", "touch /new && ! touch /usr/new 2>/dev/null && test ! -e /etc/passwd && echo ok"), "ok")
	want(t, e.Netspawn("--volatile=state", "sh", "-c", "touch /var/new && ! touch /etc/new 2>/dev/null && echo ok"), "ok")
	want(t, e.Netspawn("--volatile=overlay", "sh", "-c", "touch /etc/new && rm /etc/passwd && echo ok"), "ok")
	want(t, e.Netspawn("--volatile", "sh", "-c", "touch /new && echo ok"), "ok")
	want(t, e.Netspawn("--volatile=overlay", "-U", "sh", "-c", "touch /etc/new && id -u"), "0")
	for _, p := range []string{"new", "usr/new", "var/new", "etc/new"} {
		if _, err := os.Stat(filepath.Join(e.Tree, p)); err == nil {
			t.Errorf("volatile write reached the tree: %s", p)
		}
	}
	if _, err := os.Stat(filepath.Join(e.Tree, "etc/passwd")); err != nil {
		t.Errorf("volatile delete reached the tree: %v", err)
	}
	wantFail(t, e.Netspawn("--volatile=sometimes", "true"), "--volatile=sometimes")
}

func TestOverlayMounts(t *testing.T) {
	e := harness.NewEnv(t)
	lower, lower2, upper := t.TempDir(), t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(lower, "l"), []byte("lower\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lower2, "l2"), []byte("lower2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want(t, e.Netspawn("--overlay="+lower+":"+lower2+":"+upper+":/mnt/o", "sh", "-c",
		"cat /mnt/o/l /mnt/o/l2 && echo u > /mnt/o/u && rm /mnt/o/l && ls /mnt/o | tr '\\n' ' '"), "lower\nlower2\nl2 u")
	if b, err := os.ReadFile(filepath.Join(upper, "u")); err != nil || string(b) != "u\n" {
		t.Fatalf("upper layer: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(lower, "l")); err != nil {
		t.Fatal("a delete in the overlay reached the lower layer")
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(upper), ".#*")); len(left) != 0 {
		t.Fatalf("work directory left: %v", left)
	}
	// The standard example: a throw-away /var.
	want(t, e.Netspawn("--overlay=+/var::/var", "sh", "-c", "echo t > /var/tmpfile && cat /var/tmpfile"), "t")
	if _, err := os.Stat(filepath.Join(e.Tree, "var/tmpfile")); err == nil {
		t.Fatal("write to a temporary upper layer reached the tree")
	}
	// Read-only overlays.
	want(t, e.Netspawn("--overlay-ro="+lower+":"+lower2+":/mnt/ro", "sh", "-c",
		"cat /mnt/ro/l2 && ! touch /mnt/ro/x 2>/dev/null && echo ro"), "lower2\nro")
	want(t, e.Netspawn("--overlay-ro="+lower+"::/mnt/ro1", "sh", "-c", "! touch /mnt/ro1/x 2>/dev/null && cat /mnt/ro1/l"), "lower")
	wantFail(t, e.Netspawn("--overlay=/only", "true"), "--overlay=/only")
}

func TestTemplate(t *testing.T) {
	e := harness.NewEnv(t)
	dir := filepath.Join(t.TempDir(), "machines", "fresh")
	r := e.Run("netspawn", "-q", "-D", dir, "--template="+e.Tree, "sh", "-c", "hostname; cat /etc/hostname 2>/dev/null; echo made > /root/marker")
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "fresh\n") {
		t.Fatalf("--template: status %d, %q %q", r.Code, r.Stdout, r.Stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "root/marker")); err != nil {
		t.Fatalf("directory not created from the template: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.Tree, "root/marker")); err == nil {
		t.Fatal("write reached the template")
	}
	// Exists now: the template is not copied again.
	want(t, e.Run("netspawn", "-q", "-D", dir, "--template="+e.Tree, "cat", "/root/marker"), "made")
	wantFail(t, e.Run("netspawn", "-q", "-D", filepath.Join(t.TempDir(), "x"), "--template=/nonexistent", "true"), "/nonexistent")
}

func TestInaccessible(t *testing.T) {
	e := harness.NewEnv(t)
	want(t, e.Netspawn("--inaccessible=/home", "--inaccessible=/etc/group", "sh", "-c",
		"ls -A /home | wc -l; wc -c < /etc/group; su -s /bin/sh user -c 'ls /home' 2>/dev/null || echo denied"), "0\n0\ndenied")
	if _, err := os.Stat(filepath.Join(e.Tree, "home/user")); err != nil {
		t.Fatal("--inaccessible touched the tree")
	}
	wantFail(t, e.Netspawn("--inaccessible=/nonexistent", "true"), "/nonexistent")
}

// The btrfs path of -x and --template: a snapshot of a subvolume, on a
// loop-mounted btrfs image made for the test.
func TestEphemeralBtrfs(t *testing.T) {
	e := harness.NewEnv(t)
	harness.RequireTool(t, "mkfs.btrfs", "btrfs", "losetup")
	dir := t.TempDir()
	img := filepath.Join(dir, "img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 256<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.btrfs", "-q", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.btrfs: %v %s", err, out)
	}
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		harness.Unavailable(t, fmt.Sprintf("cannot loop-mount a btrfs image: %v %s", err, out))
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-d", mnt).Run() })
	sub := filepath.Join(mnt, "machine")
	if out, err := exec.Command("btrfs", "subvolume", "create", sub).CombinedOutput(); err != nil {
		t.Fatalf("btrfs subvolume create: %v %s", err, out)
	}
	if out, err := exec.Command("cp", "-a", e.Tree+"/.", sub).CombinedOutput(); err != nil {
		t.Fatalf("copying the tree: %v %s", err, out)
	}
	want(t, e.Run("netspawn", "-q", "-D", sub, "-x", "sh", "-c", "echo x > /root/new; grep -c ' / btrfs' /proc/mounts"), "1")
	if _, err := os.Stat(filepath.Join(sub, "root/new")); err == nil {
		t.Fatal("-x write reached the subvolume")
	}
	if left, _ := filepath.Glob(filepath.Join(mnt, ".#machine.*")); len(left) != 0 {
		t.Fatalf("snapshot left: %v", left)
	}
	// A SIGKILLed netspawn leaves its snapshot; the next run deletes it.
	tmp := t.TempDir()
	cmd := e.Command("netspawn", "-q", "-D", sub, "-M", "killed-btrfs", "-x", "sh", "-c", "sleep 1000")
	t.Cleanup(func() { removeMachineCgroup("killed-btrfs") })
	cmd.Env = append(cmd.Env, "NETSPAWN_TMPDIR="+tmp)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var snaps []string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && len(snaps) == 0; time.Sleep(20 * time.Millisecond) {
		snaps, _ = filepath.Glob(filepath.Join(mnt, ".#machine.*"))
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	e.NS.KillAll()
	if len(snaps) == 0 {
		t.Fatal("no snapshot while -x ran")
	}
	cmd2 := e.Command("netspawn", "-q", "-D", sub, "-x", "true")
	cmd2.Env = append(cmd2.Env, "NETSPAWN_TMPDIR="+tmp)
	if out, err := cmd2.CombinedOutput(); err != nil {
		t.Fatalf("second run: %v %s", err, out)
	}
	if left, _ := filepath.Glob(filepath.Join(mnt, ".#machine.*")); len(left) != 0 {
		t.Fatalf("snapshot of the killed run left: %v", left)
	}
	// --template from a subvolume makes a snapshot.
	copyDir := filepath.Join(mnt, "copy")
	want(t, e.Run("netspawn", "-q", "-D", copyDir, "--template="+sub, "hostname"), "copy")
	if out, err := exec.Command("btrfs", "subvolume", "show", copyDir).CombinedOutput(); err != nil {
		t.Fatalf("--template did not make a subvolume: %v %s", err, out)
	}
}

// -b -U, as the systemd-nspawn@.service template runs machines: systemd
// boots as root of a user namespace with the picked range.
func TestBootPrivateUsers(t *testing.T) {
	e := harness.NewEnv(t)
	tree := debianTree(t, e)
	b := boot(t, e, tree, "usr", "-U", "--private-network")
	run := func(args ...string) string {
		pid := b.leader()
		if pid == 0 {
			return ""
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, _ := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(pid), "-U", "-m", "-u", "-i", "-n", "-p", "-C", "-r", "-w", "--"}, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out))
	}
	state := ""
	for deadline := time.Now().Add(120 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		select {
		case <-b.done:
			t.Fatalf("netspawn -b -U exited during boot:\n%s", lastN(b.output(), 40))
		default:
		}
		if state = run("systemctl", "is-system-running", "--wait"); state == "running" || state == "degraded" {
			break
		}
	}
	if state != "running" {
		t.Errorf("system state %q; failed units:\n%s", state, run("systemctl", "--failed", "--no-legend"))
	}
	// The wiki's sequence: machinectl shell, systemctl in it, passwd, login.
	// The shell joins the machine's user namespace, so systemd's bus takes
	// it for the machine's root ("Failed to connect to bus: Operation not
	// permitted" when it did not).
	want(t, e.Run("netspawnctl", "shell", "usr", "/bin/systemctl", "is-system-running"), "running")
	out, ok := onTerminal(t, e.Command("netspawnctl", "shell", "root@usr", "/bin/bash"), 60*time.Second,
		step{"# ", "passwd\n"}, step{"New password: ", "Sup3r-secret\n"}, step{"Retype new password: ", "Sup3r-secret\n"},
		step{"password updated successfully", "exit\n"})
	if !ok {
		t.Errorf("passwd in netspawnctl shell:\n%s", out)
	}
	out, ok = onTerminal(t, e.Command("netspawnctl", "login", "usr"), 60*time.Second,
		step{"login: ", "root\n"}, step{"Password: ", "Sup3r-secret\n"}, step{"# ", "echo IN-$((6*7)) $(id -u)\n"}, step{"IN-42 0", ""})
	if !ok {
		t.Errorf("netspawnctl login with the password set by passwd:\n%s", out)
	}
	// The console (a pty of the host's) is usable by the namespace's root.
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(b.output(), "usr login:") && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(b.output(), "usr login:") {
		t.Errorf("no login prompt on the console:\n%s", lastN(b.output(), 20))
	}
	m, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", b.leader()))
	var in, shift, size uint32
	if _, serr := fmt.Sscan(string(m), &in, &shift, &size); err != nil || serr != nil || shift < 524288 || size != 65536 {
		t.Fatalf("PID 1's uid_map %q %v", m, err)
	}
	// -U maps ownership with an idmapped mount: inside root owns the
	// files, on disk they keep their IDs.
	if out := run("stat", "-c", "%u", "/etc/passwd"); out != "0" {
		t.Errorf("/etc/passwd owned by %q inside, want 0", out)
	}
	if u, _ := owner(t, filepath.Join(tree, "etc/passwd")); u != 0 {
		t.Errorf("/etc/passwd is %d on disk, want 0", u)
	}
	// A reboot starts it again in place, in the same range.
	first := b.leader()
	_ = run("systemctl", "reboot")
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if l := b.leader(); l != 0 && l != first {
			break
		}
		select {
		case <-b.done:
			t.Fatalf("netspawn -b -U exited on reboot:\n%s", lastN(b.output(), 40))
		default:
		}
	}
	for deadline := time.Now().Add(120 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		if state = run("systemctl", "is-system-running", "--wait"); state == "running" || state == "degraded" {
			break
		}
	}
	if b.leader() == first || (state != "running" && state != "degraded") {
		t.Fatalf("after reboot: leader %d (was %d), state %q", b.leader(), first, state)
	}
	if m2, _ := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", b.leader())); string(m2) != string(m) {
		t.Errorf("uid_map after reboot %q, was %q", m2, m)
	}
	_ = run("systemctl", "poweroff")
	if code := b.waitExit(60 * time.Second); code != 0 {
		t.Fatalf("poweroff: netspawn exited %d, want 0", code)
	}
}

// -U with -n: the controller moves host0 into a namespace owned by the
// container's user namespace, and the payload configures it as its root.
func TestPrivateUsersVeth(t *testing.T) {
	w := newWorld(t)
	r := w.Netspawn("-M", "uweb", "-n", "-U", "sh", "-c", "ip -o -4 addr show dev host0 | awk '{print $4}'; timeout 5 wget -qO- http://"+inetAddr+"/cgi-bin/ip; set -- $(cat /proc/self/uid_map); echo $2")
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if r.Code != 0 || len(lines) != 3 || !strings.HasSuffix(lines[0], "/28") || lines[1] != uplinkAddr || lines[2] == "0" {
		t.Fatalf("-n -U: status %d, %q %q", r.Code, r.Stdout, r.Stderr)
	}
}

// --bind with -U: sources under directories only the host's root can
// enter (the parent hands the mounts over), a temporary --bind=:DEST
// directory owned by the container's root.
func TestPrivateUsersBinds(t *testing.T) {
	e := harness.NewEnv(t)
	const shift = 4194304
	hidden := t.TempDir() // 0700, owned by the host's root
	rw := filepath.Join(hidden, "rw")
	ro := filepath.Join(hidden, "ro")
	for _, d := range []string{rw, ro} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(rw, shift, shift); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ro, "f"), []byte("host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want(t, e.Netspawn("--private-users=4194304", "--private-users-ownership=chown",
		"--bind="+rw+":/mnt/rw", "--bind-ro="+ro+":/mnt/ro", "--bind-ro="+filepath.Join(ro, "f")+":/etc/motd",
		"--bind=:/scratch", "--tmpfs=/mnt/rw/t",
		"sh", "-c", "echo w > /mnt/rw/out && cat /mnt/ro/f /etc/motd && ! touch /mnt/ro/x 2>/dev/null && touch /scratch/x && mount | grep -c ' /mnt/rw/t '"),
		"host\nhost\n1")
	if u, _ := owner(t, filepath.Join(rw, "out")); u != shift {
		t.Fatalf("file written through the bind owned by %d, want %d", u, shift)
	}
}

// -D / is allowed with -x and --volatile=yes|state, which never write to
// the host's root, as nspawn allows (`systemd-nspawn -D / -xb`).
func TestHostRootThrowAway(t *testing.T) {
	e := harness.NewEnv(t)
	mark := "/netspawn-test-" + strconv.Itoa(os.Getpid())
	for _, args := range [][]string{{"-x"}, {"--volatile=yes"}} {
		r := e.Run("netspawn", append(append([]string{"-q", "-D", "/"}, args...), "sh", "-c", "touch "+mark+" && test -e /usr && echo ok")...)
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != "ok" {
			t.Errorf("-D / %v: status %d, %q %q", args, r.Code, r.Stdout, r.Stderr)
		}
		if _, err := os.Lstat(mark); err == nil {
			os.Remove(mark)
			t.Fatalf("-D / %v wrote to the host's root", args)
		}
	}
	want(t, e.Run("netspawn", "-q", "-D", "/", "--volatile=state", "sh", "-c", "touch /var/x && ! touch "+mark+" 2>/dev/null && echo ok"), "ok")
	if _, err := os.Lstat(mark); err == nil {
		os.Remove(mark)
		t.Fatal("--volatile=state wrote to the host's root")
	}
	wantFail(t, e.Run("netspawn", "-q", "-D", "/", "true"), "host's root")
	wantFail(t, e.Run("netspawn", "-q", "-D", "/", "--volatile=overlay", "true"), "host's root")
	wantFail(t, e.Run("netspawn", "-q", "-D", "/", "-x", "--private-users=pick", "--private-users-ownership=chown", "true"), "ownership of the host's root")
}

// --bind options idmap and rootidmap with -U.
func TestPrivateUsersBindIDMap(t *testing.T) {
	e := harness.NewEnv(t)
	src := filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(src, "f"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
	// idmap: host IDs show as themselves; what the container writes lands
	// with its IDs unshifted on the host.
	want(t, e.Netspawn("-U", "--bind="+src+":/mnt:idmap", "sh", "-c", "stat -c '%u %g' /mnt/f /mnt; touch /mnt/new"), "1000 1000\n0 0")
	if u, _ := owner(t, filepath.Join(src, "new")); u != 0 {
		t.Fatalf("file made through an idmap bind owned by %d on the host, want 0", u)
	}
	// rootidmap: the source's owner is the container's root.
	if err := os.Chown(src, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	want(t, e.Netspawn("-U", "--bind="+src+":/mnt:rootidmap", "sh", "-c", "stat -c %u /mnt; touch /mnt/byroot"), "0")
	if u, _ := owner(t, filepath.Join(src, "byroot")); u != 1000 {
		t.Fatalf("file made through a rootidmap bind owned by %d on the host, want 1000", u)
	}
	wantFail(t, e.Netspawn("--bind="+src+":/mnt:idmap", "true"), "needs a user namespace")
}

// --as-pid2 gives the payload PID 2, always: with and without a user
// namespace, as systemd-nspawn does. (The stub init used to rewind the
// namespace's PID counter and start the payload, racing with its own runtime
// threads for PID 2: one run in a few dozen printed 3.)
func TestAsPID2Always(t *testing.T) {
	e := harness.NewEnv(t)
	for _, args := range [][]string{{"-U", "-a"}, {"-a"}, {"-a", "-u", "user"}} {
		fails := 0
		const runs = 200
		for i := 0; i < runs; i++ {
			r := e.Netspawn(append(args, "sh", "-c", "echo $$")...)
			if r.Code != 0 || strings.TrimSpace(r.Stdout) != "2" {
				fails++
				t.Errorf("netspawn %s: run %d: exit %d, PID %q (stderr %q)", strings.Join(args, " "), i, r.Code, r.Stdout, r.Stderr)
			}
		}
		t.Logf("netspawn %s sh -c 'echo $$': %d of %d runs not PID 2", strings.Join(args, " "), fails, runs)
	}
	// The payload's signal mask and handlers are a fresh process's, and it
	// reaches its own credentials.
	want(t, e.Netspawn("-a", "-u", "user", "sh", "-c", "grep -E '^(SigBlk|SigIgn)' /proc/self/status | tr -s '\t' ' '; id -u; id -G"),
		"SigBlk: 0000000000000000\nSigIgn: 0000000000000000\n1000\n1000 10")
	want(t, e.Netspawn("-u", "user", "id", "-G"), "1000 10")
	// Without CAP_SYS_ADMIN in the container the kernel chooses the PID:
	// the payload still runs, and netspawn says why it is not PID 2.
	r := e.Netspawn("-a", "--drop-capability=CAP_SYS_ADMIN", "sh", "-c", "echo ran")
	if r.Code != 0 || strings.TrimSpace(r.Stdout) != "ran" || !strings.Contains(r.Stderr, "PID 2") {
		t.Errorf("-a without CAP_SYS_ADMIN: exit %d, %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	// An exec that fails in the forked child is reported as such.
	if err := os.WriteFile(filepath.Join(e.Tree, "root/notaprogram"), []byte("\x00\x01garbage"), 0o755); err != nil {
		t.Fatal(err)
	}
	wantFail(t, e.Netspawn("-a", "/root/notaprogram"), "exec format error")
}
