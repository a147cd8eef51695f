package test

import (
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netspawn/netspawn/internal/testutil"
	"github.com/netspawn/netspawn/spawn/cgroup"
	"github.com/netspawn/netspawn/test/harness"
)

// TestStrayCgroupsRemoved: a netspawn killed before netspawnd heard of its
// machine (here one that does not register at all) leaves the machine's
// cgroups behind; netspawnd, on a host without systemd as PID 1, removes
// them once empty, in every hierarchy. It leaves alone a scope with a
// process in it and one a netspawn holds (its lock), until that lock goes.
func TestStrayCgroupsRemoved(t *testing.T) {
	e := harness.NewEnv(t)
	root := cgroup.V2Root()
	if root == "" {
		harness.Unavailable(t, "no cgroup v2 hierarchy")
	}
	if cgroup.SystemdRunning() {
		// Not a missing tool: the sweep is off by design there.
		t.Skip("systemd is PID 1: machine scopes are its units, which it removes itself (netspawnd does not sweep)")
	}
	id := strconv.Itoa(os.Getpid())
	killed, busy, held := "sweep-killed-"+id, "sweep-busy-"+id, "sweep-held-"+id
	scopeOf := func(name string) string { return filepath.Join(root, cgroup.ScopePath(name)) }
	for _, n := range []string{killed, busy, held} {
		scope := scopeOf(n)
		t.Cleanup(func() {
			testutil.Eventually(5*time.Second, func() bool {
				err := cgroup.RemoveTree(scope)
				return err == nil || os.IsNotExist(err)
			})
		})
	}

	// A scope with a process in it and no netspawn (one killed while its
	// container lives on).
	if err := os.MkdirAll(filepath.Join(scopeOf(busy), "payload"), 0o755); err != nil {
		t.Fatal(err)
	}
	sleep := exec.Command("sleep", "1000")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleep.Process.Kill(); _ = sleep.Wait() })
	if err := os.WriteFile(filepath.Join(scopeOf(busy), "payload", "cgroup.procs"), []byte(strconv.Itoa(sleep.Process.Pid)), 0); err != nil {
		t.Fatalf("moving a process into the busy scope: %v", err)
	}
	// An empty scope a netspawn holds (between making it and cloning the
	// container into it, or between two boots).
	if err := os.MkdirAll(filepath.Join(scopeOf(held), "payload"), 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.Open(scopeOf(held))
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_SH); err != nil {
		t.Fatal(err)
	}

	logs := e.StartNetspawnd("--cgroup-sweep-interval", "200ms", "--log-level", "debug")

	// A machine with a memory limit (a v1 memory cgroup of its own on
	// hybrid hosts) that never registers; its netspawn is killed.
	cmd := e.Command("netspawn", "-q", "-D", e.Tree, "-M", killed, "--register=no", "--property=MemoryMax=64M",
		"sh", "-c", "echo up; exec sleep 1000")
	done := startUp(t, cmd)
	dirs := []string{scopeOf(killed)}
	if v1 := v1ScopeOf(t, "memory", killed); v1 != "" {
		dirs = append(dirs, v1)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("the running machine's cgroup: %v", err)
		}
	}
	// Its netspawn holds it while it runs: sweeps pass it by.
	waitLog(t, logs, "scope", scopeOf(killed), "because", "held by a netspawn")
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-done
	if !testutil.Eventually(15*time.Second, func() bool {
		for _, d := range dirs {
			if _, err := os.Stat(d); !os.IsNotExist(err) {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("the killed netspawn's cgroups %v are still there after 15s; netspawnd:\n%s", dirs, logs())
	}
	t.Logf("removed: %v", dirs)
	if !strings.Contains(logs(), "level=INFO msg=\"removed the empty cgroups of a machine no netspawn runs") ||
		!strings.Contains(logs(), logAttrs("scope", cgroup.ScopeUnit(killed))) {
		t.Errorf("netspawnd did not log the removal of %s:\n%s", cgroup.ScopeUnit(killed), logs())
	}

	// The busy and the held scope were seen by sweeps and kept.
	waitLog(t, logs, "scope", scopeOf(busy), "because", "has processes")
	waitLog(t, logs, "scope", scopeOf(held), "because", "held by a netspawn")
	for _, d := range []string{scopeOf(busy), filepath.Join(scopeOf(busy), "payload"), scopeOf(held), filepath.Join(scopeOf(held), "payload")} {
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("%s went: %v", d, err)
		}
	}
	// The held one goes once its netspawn lets go.
	lock.Close()
	if !testutil.Eventually(15*time.Second, func() bool {
		_, err := os.Stat(scopeOf(held))
		return os.IsNotExist(err)
	}) {
		t.Fatalf("%s is still there 15s after its lock went; netspawnd:\n%s", scopeOf(held), logs())
	}
	if _, err := os.Stat(filepath.Join(scopeOf(busy), "payload")); err != nil {
		t.Fatalf("the busy scope's payload went: %v", err)
	}
}

// waitLog waits for netspawnd to log a line with these attributes (key,
// value, ...), one after the other.
func waitLog(t *testing.T, logs func() string, kv ...string) {
	t.Helper()
	s := logAttrs(kv...)
	if !testutil.Eventually(15*time.Second, func() bool { return strings.Contains(logs(), s) }) {
		t.Fatalf("netspawnd did not log %q within 15s:\n%s", s, logs())
	}
}

// v1ScopeOf is where netspawn, run by this process, makes a machine's
// cgroup in a v1 controller's hierarchy; "" when the host has none.
func v1ScopeOf(t *testing.T, ctrl, machine string) string {
	t.Helper()
	mounts, err := cgroup.HostMounts()
	if err != nil {
		t.Fatal(err)
	}
	mp, ok := mounts[ctrl]
	if !ok {
		return ""
	}
	own, err := cgroup.ProcCgroups(0)
	if err != nil {
		t.Fatal(err)
	}
	if cgroup.HasController(filepath.Join(cgroup.V2Root(), own[""]), ctrl) {
		return "" // in v2
	}
	return filepath.Join(mp, own[ctrl], cgroup.ScopePath(machine))
}

// logAttrs are attributes (key, value, ...) as slog's text handler writes
// them.
func logAttrs(kv ...string) string {
	var b strings.Builder
	h := slog.New(slog.NewTextHandler(&b, nil))
	args := make([]any, len(kv))
	for i, s := range kv {
		args[i] = s
	}
	h.Info("", args...)
	_, attrs, _ := strings.Cut(strings.TrimSpace(b.String()), `msg="" `)
	return attrs
}
