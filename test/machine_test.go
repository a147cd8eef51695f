package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netspawn/netspawn/internal/testutil"
	"github.com/netspawn/netspawn/test/harness"
)

// background starts netspawn and waits until netspawnctl lists the machine.
func background(t *testing.T, e *harness.Env, name string, args ...string) (*exec.Cmd, chan struct{}) {
	t.Helper()
	cmd := e.Command("netspawn", append([]string{"-q", "-D", e.Tree, "-M", name}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { harness.Stop(cmd.Process, done) })
	for i := 0; i < 200; i++ {
		if r := e.Run("netspawnctl", "list"); strings.Contains(r.Stdout, name) {
			return cmd, done
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("machine %s never listed", name)
	return nil, nil
}

// waitInside waits until a shell command succeeds inside the machine (the
// payload has got as far as the test needs).
func waitInside(t *testing.T, e *harness.Env, name, script string) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if e.Run("netspawnctl", "shell", name, "sh", "-c", script).Code == 0 {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("%s: %q never succeeded inside", name, script)
}

func exitOf(t *testing.T, cmd *exec.Cmd, done chan struct{}) int {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("netspawn did not end")
	}
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

func TestNetspawnctlShellAndSignals(t *testing.T) {
	e := harness.NewEnv(t)
	e.ShareTree()
	background(t, e, "box", "sleep", "1000")
	// shell runs in the machine's namespaces, as root or as a user, and
	// returns the command's status.
	want(t, e.Run("netspawnctl", "shell", "box", "sh", "-c", "hostname; cat /proc/1/cmdline | tr '\\0' ' '"), "box\nsleep 1000")
	want(t, e.Run("netspawnctl", "shell", "user@box", "id", "-un"), "user")
	want(t, e.Run("netspawnctl", "shell", "--uid=user", "box", "pwd"), "/home/user")
	want(t, e.Run("netspawnctl", "shell", "-E", "X=y", "box", "sh", "-c", "echo $X $container"), "y netspawn")
	if r := e.Run("netspawnctl", "shell", "box", "sh", "-c", "exit 9"); r.Code != 9 {
		t.Fatalf("shell exit status %d, want 9", r.Code)
	}
	wantFail(t, e.Run("netspawnctl", "shell", "nosuch"), "nosuch")
	// show and status read the machine's cgroup: leader, tasks, a process tree.
	leader := strings.TrimSpace(e.Run("netspawnctl", "show", "box", "-p", "Leader", "--value").Stdout)
	if st := e.Run("netspawnctl", "status", "box"); !strings.Contains(st.Stdout, "Tasks:") || !strings.Contains(st.Stdout, leader+" sleep 1000") {
		t.Errorf("status lacks the process tree (leader %s):\n%s", leader, st.Stdout)
	}
	if r := e.Run("netspawnctl", "show", "box"); !strings.Contains(r.Stdout, "Name=box\n") || !strings.Contains(r.Stdout, "TasksCurrent=") {
		t.Errorf("show: %s", r.Stdout)
	}
	// The entered process has the container's bounding set, not the host's.
	want(t, e.Run("netspawnctl", "shell", "box", "sh", "-c", "grep CapBnd /proc/self/status | cut -f2"),
		strings.TrimSpace(e.Run("netspawnctl", "shell", "box", "sh", "-c", "grep CapBnd /proc/1/status | cut -f2").Stdout))

	// copy-to and copy-from keep owners and modes and never follow the
	// container's symlinks out of it; bind mounts a host directory in.
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "d"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "d/f"), []byte("from host\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(src, "d/f"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if r := e.Run("netspawnctl", "copy-to", "box", filepath.Join(src, "d"), "/root/d"); r.Code != 0 {
		t.Fatalf("copy-to: %s", r.Stderr)
	}
	want(t, e.Run("netspawnctl", "shell", "box", "sh", "-c", "cat /root/d/f; stat -c '%u %a' /root/d/f /root/d"), "from host\n1000 640\n0 750")
	wantFail(t, e.Run("netspawnctl", "copy-to", "box", filepath.Join(src, "d/f"), "/root/d/f"), "--force")
	want(t, e.Run("netspawnctl", "shell", "box", "sh", "-c", "echo inside > /root/d/g; ln -s /etc/hostname /root/d/h"), "")
	out := filepath.Join(t.TempDir(), "out")
	if r := e.Run("netspawnctl", "copy-from", "box", "/root/d", out); r.Code != 0 {
		t.Fatalf("copy-from: %s", r.Stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "g")); string(b) != "inside\n" {
		t.Errorf("copy-from: g = %q", b)
	}
	if l, _ := os.Readlink(filepath.Join(out, "h")); l != "/etc/hostname" {
		t.Errorf("copy-from: symlink h -> %q", l)
	}
	if r := e.Run("netspawnctl", "bind", "--read-only", "--mkdir", "box", src, "/mnt/hostdir"); r.Code != 0 {
		t.Fatalf("bind: %s", r.Stderr)
	}
	want(t, e.Run("netspawnctl", "shell", "box", "sh", "-c", "cat /mnt/hostdir/d/f; touch /mnt/hostdir/x 2>/dev/null || echo ro"), "from host\nro")

	// kill --signal reaches processes; terminate ends the machine.
	cmd, done := background(t, e, "trapper", "-a", "sh", "-c", "trap 'exit 4' USR1; while :; do sleep 0.1; done")
	waitInside(t, e, "trapper", "ps | grep -q '[s]leep 0.1'")
	if r := e.Run("netspawnctl", "kill", "--kill-whom=all", "--signal=SIGUSR1", "trapper"); r.Code != 0 {
		t.Fatalf("kill: %s", r.Stderr)
	}
	if code := exitOf(t, cmd, done); code != 4 {
		t.Fatalf("after kill -s USR1: status %d, want 4", code)
	}
	cmd, done = background(t, e, "victim", "sleep", "1000")
	if r := e.Run("netspawnctl", "terminate", "victim"); r.Code != 0 {
		t.Fatalf("terminate: %s", r.Stderr)
	}
	if code := exitOf(t, cmd, done); code != 137 {
		t.Fatalf("after terminate: status %d, want 137", code)
	}
	// poweroff of a command: SIGTERM when it handles it.
	cmd, done = background(t, e, "polite", "sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done")
	waitInside(t, e, "polite", "ps | grep -q '[s]leep 0.1'")
	if r := e.Run("netspawnctl", "poweroff", "polite"); r.Code != 0 {
		t.Fatalf("poweroff: %s", r.Stderr)
	}
	if code := exitOf(t, cmd, done); code != 0 {
		t.Fatalf("after poweroff: status %d, want 0", code)
	}
	// Gone from the list once ended.
	if r := e.Run("netspawnctl", "list"); strings.Contains(r.Stdout, "victim") || strings.Contains(r.Stdout, "polite") {
		t.Fatalf("ended machines still listed: %s", r.Stdout)
	}
}

// waitListed waits until netspawnctl list does (or does not) show a machine.
func waitListed(t *testing.T, e *harness.Env, name string, want bool) {
	t.Helper()
	for i := 0; i < 400; i++ {
		r := e.Run("netspawnctl", "list")
		if strings.Contains(r.Stdout, name+" ") == want {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("machine %s listed=%v never happened", name, want)
}

func TestStartEnableLogs(t *testing.T) {
	e := harness.NewEnv(t)
	img := filepath.Join(e.ImagesDir, "svc")
	if err := harness.CopyTree(e.Tree, img); err != nil {
		t.Fatal(err)
	}
	// An init that powers off on SIGTERM and then says hello on the console.
	initPath := filepath.Join(img, "usr/sbin/init")
	os.Remove(initPath)
	if err := os.WriteFile(initPath, []byte("#!/bin/sh\ntrap 'echo bye; exit 0' TERM\necho \"svc init up on $(hostname)\"\nwhile :; do sleep 0.2; done\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if r := e.Run("netspawnctl", "start", "svc"); r.Code != 0 {
		t.Fatalf("start: %s", r.Stderr)
	}
	waitListed(t, e, "svc", true)
	// It has its network (-n, as systemd-nspawn@.service).
	if r := e.Run("netspawnctl", "status", "svc"); !strings.Contains(r.Stdout, "ve-svc") {
		t.Errorf("started machine has no ve- link: %s", r.Stdout)
	}
	wantFail(t, e.Run("netspawnctl", "start", "svc"), "already running")
	wantFail(t, e.Run("netspawnctl", "start", "nosuchimage"), "nosuchimage")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(e.Run("netspawnctl", "logs", "svc").Stdout, "svc init up on svc") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if r := e.Run("netspawnctl", "logs", "svc"); !strings.Contains(r.Stdout, "svc init up on svc") {
		t.Fatalf("console log: %q %s", r.Stdout, r.Stderr)
	}
	if r := e.Run("netspawnctl", "poweroff", "svc"); r.Code != 0 {
		t.Fatal(r.Stderr)
	}
	waitListed(t, e, "svc", false)

	// Enabled machines start with netspawnd.
	if r := e.Run("netspawnctl", "enable", "svc"); r.Code != 0 {
		t.Fatal(r.Stderr)
	}
	out, _ := e.NS.Command("pgrep", "-f", "netspawnd --runtime-dir "+e.RuntimeDir).Output()
	for _, pid := range strings.Fields(string(out)) {
		_ = e.NS.Command("kill", pid).Run()
	}
	for i := 0; i < 100; i++ {
		if out, _ := e.NS.Command("pgrep", "-f", "netspawnd --runtime-dir "+e.RuntimeDir).Output(); len(out) == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitListed(t, e, "svc", true) // netspawnctl list starts netspawnd on demand, which starts svc
	// Its init has set its trap once it said it is up (the log starts again
	// with each start): a PID 1 ignores a signal it does not handle, as
	// under systemd-nspawn.
	if !testutil.Eventually(15*time.Second, func() bool {
		return strings.Contains(e.Run("netspawnctl", "logs", "svc").Stdout, "svc init up on svc")
	}) {
		t.Fatalf("the enabled machine's init never came up: %q", e.Run("netspawnctl", "logs", "svc").Stdout)
	}
	if r := e.Run("netspawnctl", "disable", "--now", "svc"); r.Code != 0 {
		t.Fatal(r.Stderr)
	}
	waitListed(t, e, "svc", false)
	if r := e.Run("netspawnctl", "logs", "-n", "3", "svc"); !strings.Contains(r.Stdout, "ended") {
		t.Errorf("log does not record the end: %q", r.Stdout)
	}
}

// One rule for machine names, nspawn's (a hostname of at most 64
// characters): netspawnd refused nothing netspawn would refuse before, so
// `netspawnctl start a_b` passed its check and then failed inside netspawn.
func TestOneMachineNameRule(t *testing.T) {
	e := harness.NewEnv(t)
	for _, name := range []string{"a_b", "web-", "-web"} {
		if err := harness.CopyTree(e.Tree, filepath.Join(e.ImagesDir, name)); err != nil {
			t.Fatal(err)
		}
		wantFail(t, e.Run("netspawnctl", "start", "--", name), "invalid machine name")
		wantFail(t, e.Run("netspawnctl", "enable", "--", name), "invalid machine name")
		wantFail(t, e.Run("netspawnctl", "disable", "--", name), "invalid machine name")
		wantFail(t, e.Netspawn("-M", name, "true"), "invalid machine name")
	}
	wantFail(t, e.Run("netspawnctl", "disable", "../../etc"), "invalid machine name")
	// What nspawn accepts, every part accepts.
	img := filepath.Join(e.ImagesDir, "web-1.example")
	if err := harness.CopyTree(e.Tree, img); err != nil {
		t.Fatal(err)
	}
	want(t, e.Netspawn("-M", "web-1.example", "-D", img, "hostname"), "web-1.example")
	if r := e.Run("netspawnctl", "enable", "web-1.example"); r.Code != 0 {
		t.Fatalf("enable web-1.example: %s", r.Stderr)
	}
	if r := e.Run("netspawnctl", "disable", "web-1.example"); r.Code != 0 {
		t.Fatalf("disable web-1.example: %s", r.Stderr)
	}
	wantFail(t, e.Run("netspawnctl", "clone", "web-1.example", "a_c"), "invalid image name")
}

// netspawnctl shell, login, copy-to, copy-from and bind against machines
// with a user namespace of their own (the wiki's `-bUD` then `machinectl
// shell` then `passwd`): the shell joins the machine's user namespace, so
// it is the machine's root with its capabilities, its files are the
// machine's root's (shifted on the host), and copies and binds keep owners
// as the machine sees them.
func TestEnterPrivateUsers(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		// onDisk is the host ID of a file the machine's UID id owns, for a
		// machine whose range starts at shift.
		onDisk func(shift, id uint32) uint32
	}{
		{"userns-map", []string{"-U"}, func(_, id uint32) uint32 { return id }},
		{"userns-fixed", []string{"--private-users=1966080:65536", "--private-users-ownership=chown"}, func(shift, id uint32) uint32 { return shift + id }},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := harness.NewEnv(t)
			name := c.name
			background(t, e, name, append(c.args, "sleep", "1000")...)
			// Joined: the shell's own ID map is the machine's.
			inside := e.Run("netspawnctl", "shell", name, "cat", "/proc/self/uid_map")
			var in, shift, size uint32
			if _, err := fmt.Sscan(inside.Stdout, &in, &shift, &size); err != nil || in != 0 || shift == 0 || size != 65536 {
				t.Fatalf("the shell is not in the machine's user namespace: uid_map %q (%s)", inside.Stdout, inside.Stderr)
			}
			// Root there, with root's capabilities there: it sets the
			// hostname of the machine's UTS namespace and chowns.
			want(t, e.Run("netspawnctl", "shell", name, "sh", "-c",
				"id -u; touch /root/by-root /root/given && chown 1000:1000 /root/given && hostname renamed && hostname"), "0\nrenamed")
			for f, id := range map[string]uint32{"root/by-root": 0, "root/given": 1000} {
				if u, g := owner(t, filepath.Join(e.Tree, f)); u != c.onDisk(shift, id) || g != c.onDisk(shift, id) {
					t.Errorf("/%s is %d:%d on the host, want %d", f, u, g, c.onDisk(shift, id))
				}
			}
			want(t, e.Run("netspawnctl", "shell", "user@"+name, "sh", "-c", "id -un; touch /home/user/mine"), "user")
			if u, _ := owner(t, filepath.Join(e.Tree, "home/user/mine")); u != c.onDisk(shift, 1000) {
				t.Errorf("a file the user made is %d on the host, want %d", u, c.onDisk(shift, 1000))
			}
			// passwd, then login with the new password on a terminal.
			want(t, e.RunInput("Sup3r-secret\nSup3r-secret\n", "netspawnctl", "shell", name, "sh", "-c", "passwd root >/dev/null 2>&1 && echo changed"), "changed")
			out, ok := onTerminal(t, e.Command("netspawnctl", "login", name), 30*time.Second,
				step{"login: ", "root\n"}, step{"Password: ", "Sup3r-secret\n"}, step{"# ", "echo IN-$((6*7)) $(id -u) $(tty)\n"}, step{"IN-42 0 /dev/pts/", ""})
			if !ok {
				t.Errorf("netspawnctl login with the new password:\n%s", out)
			}

			// copy-to: the host's 1000 is the machine's 1000; copy-from back.
			src := t.TempDir()
			if err := os.WriteFile(filepath.Join(src, "f"), []byte("from host\n"), 0o640); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(filepath.Join(src, "f"), 1000, 1000); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(filepath.Join(src, "d"), 0o750); err != nil {
				t.Fatal(err)
			}
			if r := e.Run("netspawnctl", "copy-to", name, src, "/root/in"); r.Code != 0 {
				t.Fatalf("copy-to: %s", r.Stderr)
			}
			want(t, e.Run("netspawnctl", "shell", name, "sh", "-c", "cat /root/in/f; stat -c '%u:%g %a' /root/in/f /root/in/d"), "from host\n1000:1000 640\n0:0 750")
			if u, _ := owner(t, filepath.Join(e.Tree, "root/in/f")); u != c.onDisk(shift, 1000) {
				t.Errorf("copied file is %d on the host, want %d", u, c.onDisk(shift, 1000))
			}
			back := filepath.Join(t.TempDir(), "back")
			if r := e.Run("netspawnctl", "copy-from", name, "/root", back); r.Code != 0 {
				t.Fatalf("copy-from: %s", r.Stderr)
			}
			for f, id := range map[string]uint32{"by-root": 0, "given": 1000, "in/f": 1000} {
				if u, g := owner(t, filepath.Join(back, f)); u != id || g != id {
					t.Errorf("copied out %s is %d:%d, want %d", f, u, g, id)
				}
			}
			// bind: the host's IDs as the machine sees its own (idmapped),
			// the mount point made by the machine's root.
			if r := e.Run("netspawnctl", "bind", "--mkdir", name, src, "/mnt/host"); r.Code != 0 {
				t.Fatalf("bind: %s", r.Stderr)
			}
			want(t, e.Run("netspawnctl", "shell", name, "sh", "-c", "stat -c '%u:%g' /mnt/host/f /mnt/host; touch /mnt/host/made"), "1000:1000\n0:0")
			if u, _ := owner(t, filepath.Join(src, "made")); u != 0 {
				t.Errorf("a file the machine's root made in the bind is %d on the host, want 0", u)
			}
			if r := e.Run("netspawnctl", "bind", "--read-only", "--mkdir", name, src, "/mnt/ro"); r.Code != 0 {
				t.Fatalf("bind --read-only: %s", r.Stderr)
			}
			want(t, e.Run("netspawnctl", "shell", name, "sh", "-c", "touch /mnt/ro/x 2>/dev/null || echo ro"), "ro")
		})
	}
}
