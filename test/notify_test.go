package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netspawn/netspawn/internal/sdnotify"
	"github.com/netspawn/netspawn/internal/testutil"
	"github.com/netspawn/netspawn/test/harness"
)

// Machine names here start with "ntf-": machine cgroups are global.

// sdnotifySrc is a tiny sd_notify(3) for the busybox tree (which has
// none): sdnotify MESSAGE [COMMAND ARGS...] sends MESSAGE to
// $NOTIFY_SOCKET, then execs COMMAND, keeping its PID (a container's
// PID 1 stays PID 1).
const sdnotifySrc = `#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
int main(int argc, char **argv) {
	const char *p = getenv("NOTIFY_SOCKET");
	if (argc < 2 || !p || !*p) { fprintf(stderr, "sdnotify: no $NOTIFY_SOCKET\n"); return 2; }
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strncpy(sa.sun_path, p, sizeof(sa.sun_path) - 1);
	if (sa.sun_path[0] == '@') sa.sun_path[0] = 0;
	int fd = socket(AF_UNIX, SOCK_DGRAM|SOCK_CLOEXEC, 0);
	if (fd < 0 || sendto(fd, argv[1], strlen(argv[1]), 0, (struct sockaddr *)&sa, offsetof(struct sockaddr_un, sun_path) + strlen(p)) < 0) {
		perror("sdnotify: sendto");
		return 1;
	}
	close(fd);
	if (argc > 2) { execvp(argv[2], argv + 2); perror("sdnotify: exec"); return 127; }
	return 0;
}
`

// buildSdnotify compiles sdnotifySrc statically into the tree's /usr/bin.
func buildSdnotify(t *testing.T, tree string) {
	t.Helper()
	harness.RequireTool(t, "gcc")
	src := filepath.Join(t.TempDir(), "sdnotify.c")
	if err := os.WriteFile(src, []byte(sdnotifySrc), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("gcc", "-static", "-O2", "-o", filepath.Join(tree, "usr/bin/sdnotify"), src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
}

// notifications collects what arrives on a socket standing in for
// netspawn's own supervisor (systemd's $NOTIFY_SOCKET of a Type=notify
// unit).
type notifications struct {
	t   *testing.T
	c   *sdnotify.Conn
	got chan string
}

func listenNotify(t *testing.T) (*notifications, string) {
	t.Helper()
	addr := filepath.Join(t.TempDir(), "notify")
	c, err := sdnotify.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	n := &notifications{t: t, c: c, got: make(chan string, 64)}
	t.Cleanup(func() { c.Close() })
	go func() {
		for {
			d, err := c.Read()
			if err != nil {
				return
			}
			n.got <- string(d.Raw)
		}
	}()
	return n, addr
}

// next returns the next notification, failing the test after 30s.
func (n *notifications) next(what string) string {
	n.t.Helper()
	select {
	case m := <-n.got:
		return m
	case <-time.After(30 * time.Second):
		n.t.Fatalf("no notification while waiting for %s", what)
	}
	return ""
}

// until reads notifications until one equals want, returning those before.
func (n *notifications) until(want string) []string {
	n.t.Helper()
	var before []string
	for {
		m := n.next(want)
		if m == want {
			return before
		}
		before = append(before, m)
	}
}

// --notify-ready=: the payload (PID 1) finds $NOTIFY_SOCKET=/run/host/notify,
// a socket of mode 0755; netspawn passes its READY=1 and STATUS= on to its
// own $NOTIFY_SOCKET, heeds nobody but PID 1, says READY=1 itself at the
// start unless --notify-ready=yes, and STOPPING=1 at the end. On both start
// paths (the fast path's raw child and the re-executed init).
func TestNotifyReady(t *testing.T) {
	e := harness.NewEnv(t)
	buildSdnotify(t, e.Tree)
	waiting, gate := filepath.Join(e.Tree, "root/ntf-waiting"), filepath.Join(e.Tree, "root/ntf-go")
	// A child's READY=1 first (not PID 1: ignored), then wait for the
	// test, then PID 1 says STATUS= and READY=1, and sleeps.
	script := `sdnotify READY=1 || exit 1
		echo "$NOTIFY_SOCKET $(stat -c '%a %F' /run/host/notify)" > /root/ntf-w && mv /root/ntf-w /root/ntf-waiting
		while [ ! -e /root/ntf-go ]; do sleep 0.02; done
		exec sdnotify STATUS=payload-up sdnotify READY=1 sleep 1000`
	for _, path := range []string{"fast", "reexec"} {
		for _, ready := range []string{"yes", "no"} {
			t.Run(path+"/"+ready, func(t *testing.T) {
				os.Remove(waiting)
				os.Remove(gate)
				n, addr := listenNotify(t)
				cmd := e.Command("netspawn", "-q", "-D", e.Tree, "-M", "ntf-ready", "--notify-ready="+ready, "sh", "-c", script)
				cmd.Env = append(cmd.Env, "NOTIFY_SOCKET="+addr)
				if path == "reexec" {
					cmd.Env = append(cmd.Env, "NETSPAWN_REEXEC_INIT=1")
				}
				var out strings.Builder
				cmd.Stdout, cmd.Stderr = &out, &out
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				done := make(chan struct{})
				go func() { _ = cmd.Wait(); close(done) }()
				stopped := false
				defer func() {
					if !stopped {
						harness.Stop(cmd.Process, done)
					}
				}()

				first := n.next("netspawn's status")
				if !strings.HasPrefix(first, "STATUS=Container running.\nX_NSPAWN_LEADER_PID=") {
					t.Fatalf("first notification %q (netspawn: %s)", first, out.String())
				}
				if ready == "no" {
					// Ready at the start, while the payload still waits.
					if m := n.next("READY=1 at the start"); m != "READY=1" {
						t.Fatalf("with --notify-ready=no, got %q before READY=1", m)
					}
					if _, err := os.Stat(gate); err == nil {
						t.Fatal("the gate is open")
					}
				}
				if !testutil.Eventually(30*time.Second, func() bool { _, err := os.Stat(waiting); return err == nil }) {
					t.Fatalf("the payload never got to wait: %s", out.String())
				}
				b, _ := os.ReadFile(waiting)
				if got := strings.TrimSpace(string(b)); got != "/run/host/notify 755 socket" {
					t.Errorf("in the container: %q", got)
				}
				if err := os.WriteFile(gate, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				// The child's READY=1 was sent before PID 1's STATUS=: had it
				// been passed on, it would come first.
				if before := n.until("STATUS=Container running: payload-up"); len(before) > 0 {
					t.Errorf("before the payload's status: %q", before)
				}
				if m := n.next("the payload's READY=1"); m != "READY=1" {
					t.Errorf("after the payload's status: %q", m)
				}
				harness.Stop(cmd.Process, done)
				stopped = true
				if before := n.until("STOPPING=1\nSTATUS=Terminating..."); len(before) > 0 {
					t.Errorf("before STOPPING=1: %q", before)
				}
			})
		}
	}
	// With --as-pid2 PID 1 is the stub: the payload's READY=1 is not heeded
	// (as with nspawn 252), so netspawn never says it.
	t.Run("as-pid2", func(t *testing.T) {
		n, addr := listenNotify(t)
		defer withEnv(e, "NOTIFY_SOCKET="+addr)()
		want(t, e.Netspawn("-M", "ntf-ready", "-a", "--notify-ready=yes", "sh", "-c", "exec sdnotify READY=1 echo sent"), "sent")
		if before := n.until("STOPPING=1\nSTATUS=Terminating..."); len(before) != 1 || !strings.HasPrefix(before[0], "STATUS=Container running.\n") {
			t.Errorf("notifications: %q", before)
		}
	})
	// Without a supervisor's socket netspawn runs as ever, and the payload
	// has its socket anyway (as nspawn gives it).
	want(t, e.Netspawn("-M", "ntf-ready", "sh", "-c", "echo $NOTIFY_SOCKET; test -S /run/host/notify && echo socket"), "/run/host/notify\nsocket")
	want(t, e.Netspawn("-M", "ntf-ready", "-E", "NOTIFY_SOCKET=/x", "sh", "-c", "echo $NOTIFY_SOCKET"), "/x")
	wantFail(t, e.Netspawn("-M", "ntf-ready", "--notify-ready=ready", "true"), `--notify-ready: "ready" is not a valid notify mode; use yes or no`)
}

// netspawnctl start of a machine whose .nspawn file says NotifyReady=yes
// returns only once its init said READY=1; without it, once the init runs.
func TestNotifyReadyStart(t *testing.T) {
	e := harness.NewEnv(t)
	img := filepath.Join(e.ImagesDir, "ntf-svc")
	if err := harness.CopyTree(e.Tree, img); err != nil {
		t.Fatal(err)
	}
	buildSdnotify(t, img)
	initPath := filepath.Join(img, "usr/sbin/init")
	os.Remove(initPath)
	if err := os.WriteFile(initPath, []byte(`#!/bin/sh
trap 'exit 0' TERM
touch /ntf-waiting
while [ ! -e /ntf-go ]; do sleep 0.05; done
exec sdnotify READY=1 /bin/sh -c "trap 'exit 0' TERM; while :; do sleep 0.2; done"
`), 0o755); err != nil {
		t.Fatal(err)
	}
	settings := filepath.Join(e.ImagesDir, "ntf-svc.nspawn")
	waiting, gate := filepath.Join(img, "ntf-waiting"), filepath.Join(img, "ntf-go")
	for _, notifyReady := range []bool{true, false} {
		os.Remove(waiting)
		os.Remove(gate)
		os.Remove(settings)
		if notifyReady {
			if err := os.WriteFile(settings, []byte("[Exec]\nNotifyReady=yes\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		started := make(chan harness.Result, 1)
		go func() { started <- e.Run("netspawnctl", "start", "ntf-svc") }()
		if notifyReady {
			if !testutil.Eventually(30*time.Second, func() bool { _, err := os.Stat(waiting); return err == nil }) {
				t.Fatal("the init never got to wait")
			}
			select {
			case r := <-started:
				t.Fatalf("start returned before the init said READY=1: %+v", r)
			default:
			}
			if err := os.WriteFile(gate, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		r := <-started
		if r.Code != 0 {
			t.Fatalf("start (NotifyReady=%v): %s", notifyReady, r.Stderr)
		}
		if _, err := os.Stat(gate); !notifyReady && err == nil {
			t.Error("with NotifyReady=no, start waited for the init")
		}
		// Registered before it was ready: listed at once.
		if r := e.Run("netspawnctl", "list"); !strings.Contains(r.Stdout, "ntf-svc ") {
			t.Fatalf("started machine not listed: %s", r.Stdout)
		}
		if r := e.Run("netspawnctl", "poweroff", "ntf-svc"); r.Code != 0 {
			t.Fatal(r.Stderr)
		}
		if !testutil.Eventually(20*time.Second, func() bool { return !strings.Contains(e.Run("netspawnctl", "list").Stdout, "ntf-svc ") }) {
			t.Fatalf("NotifyReady=%v: still listed after poweroff: %s\nlog: %s", notifyReady, e.Run("netspawnctl", "list").Stdout, e.Run("netspawnctl", "logs", "ntf-svc").Stdout)
		}
	}
}

// -Z/--selinux-context= and -L/--selinux-apifs-context= on a host without
// SELinux: accepted by the parser, then refused before anything is made,
// naming what is missing (systemd-nspawn 252 fails too, later: setexeccon()
// failed: Invalid argument, or the tmpfs mount refused).
func TestSELinuxOptionsWithoutSELinux(t *testing.T) {
	e := harness.NewEnv(t)
	if _, err := os.Stat("/sys/fs/selinux/enforce"); err == nil {
		t.Skip("SELinux is enabled on this host; this test is of hosts without it")
	}
	list := func() string {
		var names []string
		for _, d := range []string{filepath.Dir(e.Tree), e.RuntimeDir, e.StateDir} {
			entries, _ := os.ReadDir(d)
			for _, en := range entries {
				names = append(names, filepath.Join(d, en.Name()))
			}
		}
		return strings.Join(names, "\n")
	}
	before := list()
	const label = "system_u:system_r:container_t:s0:c1,c2"
	wantFail(t, e.Netspawn("-M", "ntf-selinux", "-x", "--bind=:/scratch", "-Z", label, "true"),
		"--selinux-context="+label+": SELinux is not enabled on this host (no selinuxfs mounted at /sys/fs/selinux), so there is nothing to apply the label with; drop the option (-Z/-L)")
	wantFail(t, e.Netspawn("-M", "ntf-selinux", "--volatile=yes", "--selinux-apifs-context=system_u:object_r:container_file_t:s0", "true"),
		"--selinux-apifs-context=system_u:object_r:container_file_t:s0: SELinux is not enabled on this host")
	wantFail(t, e.Netspawn("-M", "ntf-selinux", "-Z", "a_t", "-L", "b_t", "-b"), "--selinux-context=a_t --selinux-apifs-context=b_t: SELinux is not enabled")
	if after := list(); after != before {
		t.Errorf("a refused run left something:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// Empty labels ask for nothing.
	want(t, e.Netspawn("-M", "ntf-selinux", "-Z", "", "-L", "", "echo", "ok"), "ok")
}

// A booted systemd says READY=1 on /run/host/notify when it finished
// starting up: with --notify-ready=yes that is when netspawn says it too.
func TestNotifyReadyBootDebian(t *testing.T) {
	e := harness.NewEnv(t)
	tree := debianTree(t, e)
	n, addr := listenNotify(t)
	restore := withEnv(e, "NOTIFY_SOCKET="+addr)
	b := boot(t, e, tree, "ntf-deb", "--private-network", "--notify-ready=yes")
	restore()
	var statuses []string
	deadline := time.After(150 * time.Second)
	for ready := false; !ready; {
		select {
		case m := <-n.got:
			ready = m == "READY=1"
			statuses = append(statuses, m)
		case <-deadline:
			t.Fatalf("no READY=1 from the booted system within 150s; got %q", statuses)
		case <-b.done:
			t.Fatalf("netspawn -b ended: %q", statuses)
		}
	}
	if !strings.HasPrefix(statuses[0], "STATUS=Container running.\nX_NSPAWN_LEADER_PID=") {
		t.Errorf("first notification %q", statuses[0])
	}
	// READY=1 means its start-up is over.
	if out, _ := b.exec("systemctl", "is-system-running"); out != "running" && out != "degraded" {
		t.Errorf("after READY=1 the system is %q", out)
	}
}
