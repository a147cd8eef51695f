package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/netspawn/netspawn/internal/testutil"
	"github.com/netspawn/netspawn/test/harness"
)

// want fails unless the command succeeded and printed exactly out.
func want(t *testing.T, r harness.Result, out string) {
	t.Helper()
	if r.Code != 0 {
		t.Fatalf("exit status %d, want 0; stdout: %q stderr: %q", r.Code, r.Stdout, r.Stderr)
	}
	if got := strings.TrimSpace(r.Stdout); got != out {
		t.Fatalf("output %q, want %q (stderr: %q)", got, out, r.Stderr)
	}
}

// wantFail fails unless the command failed with a one-line error naming msg.
func wantFail(t *testing.T, r harness.Result, msg string) {
	t.Helper()
	if r.Code == 0 {
		t.Fatalf("succeeded, want failure naming %q; stdout: %q", msg, r.Stdout)
	}
	if !strings.Contains(r.Stderr, msg) {
		t.Fatalf("stderr %q does not name %q", r.Stderr, msg)
	}
	if n := strings.Count(strings.TrimSpace(r.Stderr), "\n"); n > 0 {
		t.Errorf("error is %d lines, want one: %q", n+1, r.Stderr)
	}
}

func TestHostnameAndMachineName(t *testing.T) {
	e := harness.NewEnv(t)
	want(t, e.Netspawn("hostname"), filepath.Base(e.Tree))
	want(t, e.Netspawn("-M", "web-1", "hostname"), "web-1")
	want(t, e.Netspawn("-M", "web", "--hostname", "db.example", "hostname"), "db.example")
	want(t, e.Run("netspawn", "-qD", e.Tree, "--machine=bundled", "hostname"), "bundled")
	// Options end at the first non-option: -l belongs to the command.
	want(t, e.Netspawn("ls", "-d", "/"), "/")
}

func TestExitStatus(t *testing.T) {
	e := harness.NewEnv(t)
	want(t, e.Netspawn("true"), "")
	if r := e.Netspawn("sh", "-c", "exit 42"); r.Code != 42 {
		t.Fatalf("exit status %d, want 42", r.Code)
	}
	// PID 1 cannot be killed from inside; as PID 2 the payload can.
	want(t, e.Netspawn("sh", "-c", "kill -9 $$; echo survived"), "survived")
	if r := e.Netspawn("-a", "sh", "-c", "kill -9 $$"); r.Code != 128+9 {
		t.Fatalf("exit status %d after SIGKILL, want 137", r.Code)
	}
	if r := e.Netspawn("-a", "sh", "-c", "exit 7"); r.Code != 7 {
		t.Fatalf("--as-pid2 exit status %d, want 7", r.Code)
	}
	// Without -q, netspawn reports how the container ended.
	r := e.Run("netspawn", "-D", e.Tree, "-M", "loud", "sh", "-c", "exit 3")
	if r.Code != 3 || !strings.Contains(r.Stderr, "Container loud failed with error code 3.") {
		t.Fatalf("status %d, stderr %q", r.Code, r.Stderr)
	}
}

func TestPID1AndPID2(t *testing.T) {
	e := harness.NewEnv(t)
	want(t, e.Netspawn("sh", "-c", "echo $$"), "1")
	want(t, e.Netspawn("-a", "sh", "-c", "echo $$"), "2")
	want(t, e.Netspawn("--as-pid2", "sh", "-c", "tr '\\0' ' ' </proc/1/cmdline | cut -d' ' -f1"), "netspawn-stub")
	// The stub init reaps orphans: a double-forked child leaves no zombie.
	want(t, e.Netspawn("-a", "sh", "-c", "(sleep 0.1 &); sleep 0.5; ps -o stat | grep -c '^Z' || true"), "0")
}

// TestNoInheritedFDs: descriptors netspawn's caller left open do not reach
// the container (systemd-nspawn gives the payload 0, 1 and 2 only), on the
// fast path, the re-executed init's and under the stub. The payload looks
// with shell builtins only (a pipeline's or a glob's own descriptors would
// show), at 5-12 but 10 (where a shell may keep its own).
func TestNoInheritedFDs(t *testing.T) {
	e := harness.NewEnv(t)
	var extra []*os.File
	for i := 0; i < 10; i++ { // 3-12 in netspawn
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		defer w.Close()
		extra = append(extra, r)
	}
	check := "for n in 5 6 7 8 9 11 12; do [ -e /proc/$$/fd/$n ] && echo leaked $n; done; echo checked"
	for _, c := range []struct {
		name string
		env  []string
		args []string
	}{
		{"fast path", nil, nil},
		{"re-executed init", []string{"NETSPAWN_REEXEC_INIT=1"}, nil},
		{"stub", nil, []string{"-a"}},
	} {
		args := append([]string{"-q", "-D", e.Tree}, c.args...)
		cmd := e.Command("netspawn", append(args, "sh", "-c", check)...)
		cmd.Env = append(cmd.Env, c.env...)
		cmd.ExtraFiles = extra
		out, err := cmd.Output()
		if err != nil || strings.TrimSpace(string(out)) != "checked" {
			t.Errorf("%s: %q (%v), want no descriptor of netspawn's caller", c.name, out, err)
		}
	}
}

func TestEnvironment(t *testing.T) {
	e := harness.NewEnv(t)
	want(t, e.Netspawn("-E", "FOO=bar baz", "--setenv=EMPTY=", "sh", "-c", "echo \"$FOO|$EMPTY|$container\""), "bar baz||netspawn")
	want(t, e.Netspawn("sh", "-c", "echo $PATH"), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	// A bare NAME copies netspawn's own value.
	cmd := e.Command("netspawn", "-q", "-D", e.Tree, "-E", "FROMHOST", "sh", "-c", "echo $FROMHOST")
	cmd.Env = append(cmd.Env, "FROMHOST=copied")
	out, err := cmd.Output()
	if err != nil || strings.TrimSpace(string(out)) != "copied" {
		t.Fatalf("-E NAME: %q, %v", out, err)
	}
	want(t, e.Netspawn("cat", "/run/host/container-manager"), "netspawn")
}

func TestUserAndChdir(t *testing.T) {
	e := harness.NewEnv(t)
	want(t, e.Netspawn("-u", "user", "sh", "-c", "id -u; id -g; pwd; echo $HOME $USER"), "1000\n1000\n/home/user\n/home/user user")
	want(t, e.Netspawn("--user=user", "sh", "-c", "id -G"), "1000 10")
	want(t, e.Netspawn("--chdir=/etc", "pwd"), "/etc")
	want(t, e.Netspawn("pwd"), "/root")
	wantFail(t, e.Netspawn("-u", "nosuchuser", "true"), "nosuchuser")
	// An unprivileged user has no capabilities left.
	want(t, e.Netspawn("-u", "user", "sh", "-c", "grep CapEff /proc/self/status | cut -f2"), "0000000000000000")
}

func TestBinds(t *testing.T) {
	e := harness.NewEnv(t)
	rw := t.TempDir()
	ro := t.TempDir()
	if err := os.WriteFile(filepath.Join(ro, "f"), []byte("host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want(t, e.Netspawn("--bind", rw+":/mnt/rw", "--bind-ro="+ro+":/mnt/ro",
		"sh", "-c", "echo written > /mnt/rw/out && cat /mnt/ro/f && (echo x > /mnt/ro/f) 2>/dev/null || echo ro-refused"),
		"host\nro-refused")
	if b, err := os.ReadFile(filepath.Join(rw, "out")); err != nil || string(b) != "written\n" {
		t.Fatalf("write through --bind not visible on host: %q %v", b, err)
	}
	// DST defaults to SRC; norbind accepted.
	want(t, e.Netspawn("--bind="+rw+":"+rw+":norbind", "cat", rw+"/out"), "written")
	want(t, e.Netspawn("--bind="+rw, "cat", rw+"/out"), "written")
	// An empty source is a temporary directory.
	want(t, e.Netspawn("--bind=:/scratch", "sh", "-c", "touch /scratch/x && ls /scratch"), "x")
	// tmpfs, with and without options.
	want(t, e.Netspawn("--tmpfs=/var/cache", "--tmpfs=/srv:mode=0700", "sh", "-c",
		"stat -c '%a' /var/cache /srv; grep -c ' /srv tmpfs' /proc/mounts"), "755\n700\n1")
	wantFail(t, e.Netspawn("--bind=/nonexistent-src:/x", "true"), "/nonexistent-src")
}

func TestReadOnlyKernelAndRoot(t *testing.T) {
	e := harness.NewEnv(t)
	want(t, e.Netspawn("sh", "-c", "(echo 1 > /proc/sys/kernel/ns_last_pid) 2>/dev/null || echo procsys-ro"), "procsys-ro")
	want(t, e.Netspawn("sh", "-c", "(echo x > /proc/sysrq-trigger) 2>/dev/null || echo sysrq-ro"), "sysrq-ro")
	want(t, e.Netspawn("sh", "-c", "touch /sys/x 2>/dev/null || echo sys-ro"), "sys-ro")
	want(t, e.Netspawn("sh", "-c", "touch /root/x && echo rw"), "rw")
	want(t, e.Netspawn("--read-only", "sh", "-c", "touch /root/y 2>/dev/null || echo root-ro; touch /tmp/z && echo tmp-rw"), "root-ro\ntmp-rw")
	want(t, e.Netspawn("sh", "-c", "ls /dev | tr '\\n' ' '"), "fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero")
	want(t, e.Netspawn("sh", "-c", "head -c 4 /dev/urandom | wc -c; grep -c ' /tmp tmpfs' /proc/mounts; grep -c ' /run tmpfs' /proc/mounts"), "4\n1\n1")
}

func TestCapabilitiesAndNetworkAdmin(t *testing.T) {
	e := harness.NewEnv(t)
	// Sharing the host's network: no CAP_NET_ADMIN, so it cannot change it.
	wantFail(t, e.Netspawn("ip", "addr", "add", "10.99.0.1/32", "dev", "lo"), "")
	if out, _ := e.NS.Command("ip", "-o", "addr", "show", "dev", "lo").Output(); strings.Contains(string(out), "10.99.0.1") {
		t.Fatal("container changed the host's network")
	}
	if capBnd(t, e, "")&(1<<12) != 0 {
		t.Fatal("CAP_NET_ADMIN in the bounding set while sharing the host's network")
	}
	if capBnd(t, e, "--private-network")&(1<<12) == 0 {
		t.Fatal("CAP_NET_ADMIN missing with --private-network")
	}
	// With its own network it may configure it.
	want(t, e.Netspawn("--private-network", "sh", "-c", "ip addr add 10.99.0.1/32 dev lo && ip -o addr show dev lo | grep -c 10.99.0.1"), "1")
	want(t, e.Netspawn("--private-network", "sh", "-c", "ip -o link | wc -l"), "1")
	// --capability adds, --drop-capability removes.
	if capBnd(t, e, "--capability=CAP_NET_ADMIN")&^capBnd(t, e, "") != 1<<12 {
		t.Fatal("--capability=CAP_NET_ADMIN did not add exactly NET_ADMIN")
	}
	if capBnd(t, e, "")&^capBnd(t, e, "--drop-capability=CAP_SYS_ADMIN,CAP_CHOWN") != 1<<21|1 {
		t.Fatal("--drop-capability did not remove SYS_ADMIN and CHOWN")
	}
	want(t, e.Netspawn("--no-new-privileges=yes", "sh", "-c", "grep NoNewPrivs /proc/self/status | cut -f2"), "1")
	want(t, e.Netspawn("sh", "-c", "grep NoNewPrivs /proc/self/status | cut -f2"), "0")
}

// capBnd returns the container's bounding set under the extra flag.
func capBnd(t *testing.T, e *harness.Env, flag string) uint64 {
	t.Helper()
	args := []string{"sh", "-c", "grep CapBnd /proc/self/status | cut -f2"}
	if flag != "" {
		args = append([]string{flag}, args...)
	}
	r := e.Netspawn(args...)
	var v uint64
	if _, err := fmt.Sscanf(strings.TrimSpace(r.Stdout), "%x", &v); err != nil || r.Code != 0 {
		t.Fatalf("reading CapBnd: %q %q", r.Stdout, r.Stderr)
	}
	return v
}

func TestResolvConfAndTimezone(t *testing.T) {
	e := harness.NewEnv(t)
	host, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Skip("host has no /etc/resolv.conf")
	}
	conf := filepath.Join(e.Tree, "etc/resolv.conf")
	os.Remove(conf)
	want(t, e.Netspawn("--resolv-conf=copy-host", "cat", "/etc/resolv.conf"), strings.TrimSpace(string(host)))
	if b, _ := os.ReadFile(conf); string(b) != string(host) {
		t.Fatal("copy-host did not copy into the tree")
	}
	if err := os.WriteFile(conf, []byte("nameserver 192.0.2.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want(t, e.Netspawn("--resolv-conf=off", "cat", "/etc/resolv.conf"), "nameserver 192.0.2.1")
	want(t, e.Netspawn("--resolv-conf=bind-host", "sh", "-c", "cat /etc/resolv.conf >/dev/null && grep -c ' /etc/resolv.conf ' /proc/mounts"), "1")
	want(t, e.Netspawn("--resolv-conf=delete", "sh", "-c", "test -e /etc/resolv.conf || echo gone"), "gone")
	os.Remove(filepath.Join(e.Tree, "etc/localtime"))
	want(t, e.Netspawn("--timezone=off", "sh", "-c", "test -e /etc/localtime || echo none"), "none")
	if _, err := os.Stat("/etc/localtime"); err == nil {
		want(t, e.Netspawn("--timezone=copy", "sh", "-c", "test -f /etc/localtime && echo copied"), "copied")
		want(t, e.Netspawn("--timezone=delete", "sh", "-c", "test -e /etc/localtime || echo gone"), "gone")
	}
	wantFail(t, e.Netspawn("--resolv-conf=sideways", "true"), "resolv-conf")
}

func TestPipeAndStdin(t *testing.T) {
	e := harness.NewEnv(t)
	want(t, e.RunInput("hello\n", "netspawn", "-q", "-D", e.Tree, "cat"), "hello")
	want(t, e.RunInput("piped\n", "netspawn", "-P", "-D", e.Tree, "cat"), "piped")
	want(t, e.RunInput("x\n", "netspawn", "-q", "--console=pipe", "-D", e.Tree, "sh", "-c", "test -e /dev/console || echo no-console"), "no-console")
	// Compatibility flags are accepted.
	want(t, e.Netspawn("--register=no", "--keep-unit", "true"), "")
}

func TestTerminal(t *testing.T) {
	e := harness.NewEnv(t)
	run := func(input string, args ...string) (string, int) {
		t.Helper()
		cmd := e.Command("netspawn", append([]string{"-D", e.Tree}, args...)...)
		ptmx, err := pty.Start(cmd)
		if err != nil {
			t.Fatal(err)
		}
		defer ptmx.Close()
		_ = pty.Setsize(ptmx, &pty.Winsize{Rows: 33, Cols: 99})
		out := make(chan string)
		go func() {
			var b strings.Builder
			buf := make([]byte, 4096)
			for {
				n, err := ptmx.Read(buf)
				b.Write(buf[:n])
				if err != nil {
					out <- b.String()
					return
				}
			}
		}()
		if input != "" {
			// Typed once the payload runs (the machine is named "term").
			if !testutil.Eventually(10*time.Second, func() bool { return payloadRuns(e, "term", "sleep") }) {
				t.Fatal("the payload never started")
			}
			_, _ = ptmx.Write([]byte(input))
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatal("netspawn on a terminal did not end")
		}
		return <-out, cmd.ProcessState.ExitCode()
	}
	o, code := run("", "sh", "-c", "tty; stty size; test -c /dev/console && echo console")
	if code != 0 || !strings.Contains(o, "/dev/console") && !strings.Contains(o, "/dev/pts") || !strings.Contains(o, "33 99") || !strings.Contains(o, "console") {
		t.Fatalf("status %d, output %q", code, o)
	}
	if !strings.Contains(o, "Press Ctrl-] three times within 1s to kill container.") {
		t.Fatalf("no escape banner: %q", o)
	}
	// Ctrl-] three times within a second ends the container.
	o, code = run("\x1d\x1d\x1d", "-q", "-M", "term", "sleep", "30")
	if code == 0 {
		t.Fatalf("Ctrl-] x3: status 0, output %q", o)
	}
}

func TestSignals(t *testing.T) {
	e := harness.NewEnv(t)
	// start runs netspawn in the background and waits until its payload
	// is where the test needs it: a sleep running as PID 1 or as a child of
	// it (a trapping shell's loop has set its trap by then).
	start := func(args ...string) *exec.Cmd {
		cmd := e.Command("netspawn", append([]string{"-q", "-D", e.Tree, "-M", "sig"}, args...)...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		if !testutil.Eventually(10*time.Second, func() bool { return payloadRuns(e, "sig", "sleep") }) {
			t.Fatalf("netspawn %v: no sleep running in the container", args)
		}
		return cmd
	}
	wait := func(cmd *exec.Cmd) int {
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("container did not end after the signal")
		}
		return cmd.ProcessState.ExitCode()
	}
	// PID 1 without a handler: the kernel would drop SIGTERM, so it is escalated.
	cmd := start("sleep", "100")
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if code := wait(cmd); code != 137 {
		t.Fatalf("SIGTERM to netspawn running sleep as PID 1: status %d, want 137", code)
	}
	// A payload that handles SIGTERM gets it.
	cmd = start("sh", "-c", "trap 'exit 5' TERM; while :; do sleep 0.1; done")
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if code := wait(cmd); code != 5 {
		t.Fatalf("SIGTERM forwarded to a trapping PID 1: status %d, want 5", code)
	}
	// Under --as-pid2 the stub forwards it to the payload.
	cmd = start("-a", "sleep", "100")
	_ = cmd.Process.Signal(syscall.SIGINT)
	if code := wait(cmd); code != 128+2 {
		t.Fatalf("SIGINT with --as-pid2: status %d, want 130", code)
	}
	// --kill-signal is sent as given.
	cmd = start("--kill-signal=SIGUSR1", "-a", "sleep", "100")
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if code := wait(cmd); code != 128+int(syscall.SIGUSR1) {
		t.Fatalf("--kill-signal=SIGUSR1: status %d, want %d", code, 128+int(syscall.SIGUSR1))
	}
}

func TestErrors(t *testing.T) {
	e := harness.NewEnv(t)
	wantFail(t, e.Run("netspawn", "-q", "-D", "/nonexistent/tree", "true"), "/nonexistent/tree")
	notOS := t.TempDir()
	wantFail(t, e.Run("netspawn", "-q", "-D", notOS, "true"), "doesn't look like an OS tree")
	wantFail(t, e.Netspawn("no-such-command"), `"no-such-command" not found`)
	wantFail(t, e.Run("netspawn", "-q", "-D", e.Tree, "-M", "bad name!", "true"), "machine name")
	wantFail(t, e.Netspawn("-b", "-a"), "--as-pid2")
	wantFail(t, e.Netspawn("--no-such-flag"), "no-such-flag")
	if _, err := os.Stat(filepath.Join(e.Tree, "bin/noexec")); err == nil {
		t.Fatal("unexpected")
	}
	// A non-executable file.
	if err := os.WriteFile(filepath.Join(e.Tree, "usr/bin/notexec"), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantFail(t, e.Netspawn("/usr/bin/notexec"), "Permission denied")

	// Not root.
	cmd := e.NS.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", filepath.Join(e.Bin, "netspawn"), "-q", "-D", e.Tree, "true")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "root") {
		t.Fatalf("as non-root: %v %q", err, out)
	}

	// A tree on a noexec mount (the Arch wiki's "execv(...) failed: Permission
	// denied"): mounted in a private mount namespace of this test only.
	script := fmt.Sprintf(`set -e
mount -t tmpfs -o noexec tmpfs %[1]s
cp -a %[2]s %[1]s/tree
%[3]s -q -D %[1]s/tree true`, t.TempDir(), e.Tree, filepath.Join(e.Bin, "netspawn"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err = exec.CommandContext(ctx, "unshare", "-m", "--propagation", "private", "sh", "-c", script).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "noexec") {
		t.Fatalf("tree on a noexec mount: %v %q", err, out)
	}
}

// payloadRuns reports whether the machine's leader, or a child of it, is
// running the program comm.
func payloadRuns(e *harness.Env, machine, comm string) bool {
	r := e.Run("netspawnctl", "show", machine, "-p", "Leader", "--value")
	leader := strings.TrimSpace(r.Stdout)
	if r.Code != 0 || leader == "" || leader == "0" {
		return false
	}
	pids := []string{leader}
	if kids, err := os.ReadFile("/proc/" + leader + "/task/" + leader + "/children"); err == nil {
		pids = append(pids, strings.Fields(string(kids))...)
	}
	for _, p := range pids {
		if c, err := os.ReadFile("/proc/" + p + "/comm"); err == nil && strings.TrimSpace(string(c)) == comm {
			return true
		}
	}
	return false
}
