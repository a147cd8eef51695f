package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netspawn/netspawn/test/harness"
)

// withEnv runs f with extra environment variables for netspawn.
func withEnv(e *harness.Env, vars ...string) func() {
	saved := e.Vars
	e.Vars = append(append([]string(nil), e.Vars...), vars...)
	return func() { e.Vars = saved }
}

// The Arch wiki's docker-in-a-container recipe: a .nspawn file with
// Capability=all, SystemCallFilter=add_key keyctl and Bind=/sys/fs/cgroup,
// run with SYSTEMD_NSPAWN_USE_CGNS=0 so the container's processes see their
// full cgroup paths (netspawn used to ignore the variable: "0::/" inside).
func TestDockerRecipeNoCgroupNS(t *testing.T) {
	e := harness.NewEnv(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dock.nspawn"), []byte(
		"[Exec]\nCapability=all\nSystemCallFilter=add_key keyctl\n\n[Files]\nBind=/sys/fs/cgroup\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.Vars = append(e.Vars, "NETSPAWN_SETTINGS_PATH="+dir)
	// The default: a cgroup namespace whose root is the machine's cgroup.
	want(t, e.Netspawn("-M", "dock", "sh", "-c", "grep ^0:: /proc/self/cgroup"), "0::/")
	defer withEnv(e, "SYSTEMD_NSPAWN_USE_CGNS=0")()
	r := e.Netspawn("-M", "dock", "sh", "-c", "grep ^0:: /proc/self/cgroup; readlink /proc/self/ns/cgroup; grep -c keyctl /proc/self/status >/dev/null; grep ^CapEff /proc/self/status")
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	hostCG, _ := os.Readlink("/proc/self/ns/cgroup")
	if r.Code != 0 || len(lines) != 3 || !strings.Contains(lines[0], "machine-dock.scope") || lines[1] != hostCG {
		t.Fatalf("SYSTEMD_NSPAWN_USE_CGNS=0: want the full cgroup path and the host's cgroup namespace %s; exit %d, %q %q", hostCG, r.Code, r.Stdout, r.Stderr)
	}
	// Without the Bind=, /sys/fs/cgroup is the host's whole hierarchy.
	if err := os.WriteFile(filepath.Join(dir, "dock.nspawn"), []byte("[Exec]\nCapability=all\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want(t, e.Netspawn("-M", "dock", "sh", "-c", "test -d /sys/fs/cgroup/machine.slice/machine-dock.scope && echo whole"), "whole")
	defer withEnv(e, "SYSTEMD_NSPAWN_USE_CGNS=maybe")()
	wantFail(t, e.Netspawn("true"), "SYSTEMD_NSPAWN_USE_CGNS")
}

func TestNspawnEnvironmentMounts(t *testing.T) {
	e := harness.NewEnv(t)
	mountFlags := `awk '$5 == "/proc/sys" || $5 == "/proc/sys/net" || $5 == "/sys" {split($6, o, ","); print $5, o[1]}' /proc/self/mountinfo | sort -u`
	want(t, e.Netspawn("sh", "-c", mountFlags), "/proc/sys ro\n/sys ro")
	func() {
		defer withEnv(e, "SYSTEMD_NSPAWN_API_VFS_WRITABLE=yes")()
		want(t, e.Netspawn("sh", "-c", mountFlags), "/sys rw")
		// A namespaced knob: the container's own hostname.
		want(t, e.Netspawn("sh", "-c", "echo renamed > /proc/sys/kernel/hostname && hostname"), "renamed")
	}()
	func() {
		defer withEnv(e, "SYSTEMD_NSPAWN_API_VFS_WRITABLE=network")()
		want(t, e.Netspawn("sh", "-c", mountFlags), "/proc/sys ro\n/proc/sys/net rw\n/sys ro")
	}()
	// SYSTEMD_NSPAWN_TMPFS_TMP=0: the image's own /tmp.
	if err := os.WriteFile(filepath.Join(e.Tree, "tmp/kept"), []byte("from the image\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want(t, e.Netspawn("sh", "-c", "cat /tmp/kept 2>/dev/null || echo hidden"), "hidden")
	func() {
		defer withEnv(e, "SYSTEMD_NSPAWN_TMPFS_TMP=0")()
		want(t, e.Netspawn("cat", "/tmp/kept"), "from the image")
	}()
	// SYSTEMD_SECCOMP=0: no filter.
	want(t, e.Netspawn("sh", "-c", "grep ^Seccomp: /proc/self/status | tr -d '\t'"), "Seccomp:2")
	func() {
		defer withEnv(e, "SYSTEMD_SECCOMP=0")()
		want(t, e.Netspawn("sh", "-c", "grep ^Seccomp: /proc/self/status | tr -d '\t'"), "Seccomp:0")
	}()
	// SYSTEMD_NSPAWN_CONTAINER_SERVICE: $container, /run/host and the
	// machine's service, also for netspawnctl shell.
	func() {
		defer withEnv(e, "SYSTEMD_NSPAWN_CONTAINER_SERVICE=acme-runner")()
		want(t, e.Netspawn("sh", "-c", "echo $container; cat /run/host/container-manager"), "acme-runner\nacme-runner")
		cmd, done := background(t, e, "svc", "sleep", "1000")
		if r := e.Run("netspawnctl", "list"); !strings.Contains(r.Stdout, "acme-runner") {
			t.Errorf("list does not show the service:\n%s", r.Stdout)
		}
		want(t, e.Run("netspawnctl", "shell", "svc", "sh", "-c", "echo $container"), "acme-runner")
		harness.Stop(cmd.Process, done)
	}()
	// SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=0 asks for cgroup v1 inside: said.
	func() {
		defer withEnv(e, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=0")()
		if r := e.Run("netspawn", "-D", e.Tree, "true"); r.Code != 0 || !strings.Contains(r.Stderr, "netspawn: warning: SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=0: netspawn gives containers the unified cgroup hierarchy only") {
			t.Errorf("UNIFIED_HIERARCHY=0: exit %d, stderr %q", r.Code, r.Stderr)
		}
	}()
}

// SYSTEMD_NSPAWN_SHARE_NS_*: the host's IPC, UTS and PID namespaces kept.
// netspawn runs inside namespaces of the test's own here, so the hostname it
// leaves alone is not the machine's.
func TestNspawnEnvironmentShareNS(t *testing.T) {
	e := harness.NewEnv(t)
	script := `hostname outer; echo "$(readlink /proc/self/ns/ipc) $(readlink /proc/self/ns/uts)"; exec "$@"`
	inner := `echo "$(readlink /proc/self/ns/ipc) $(readlink /proc/self/ns/uts)"; hostname; readlink /proc/self/ns/pid`
	run := func(vars ...string) []string {
		t.Helper()
		cmd := e.NS.Command("unshare", "-u", "-i", "sh", "-c", script, "sh",
			filepath.Join(e.Bin, "netspawn"), "-q", "-D", e.Tree, "-M", "shared", "sh", "-c", inner)
		cmd.Env = append(append(os.Environ(), e.Vars...), vars...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", vars, err, out)
		}
		return strings.Split(strings.TrimSpace(string(out)), "\n")
	}
	ownPID, _ := os.Readlink("/proc/self/ns/pid")
	l := run()
	if len(l) != 4 || l[1] == l[0] || l[2] != "shared" || l[3] == ownPID {
		t.Fatalf("default: own IPC, UTS and PID namespaces expected: %q", l)
	}
	l = run("SYSTEMD_NSPAWN_SHARE_SYSTEM=1")
	if len(l) != 4 || l[1] != l[0] || l[2] != "outer" || l[3] != ownPID {
		t.Fatalf("SHARE_SYSTEM=1: the host's IPC, UTS and PID namespaces expected: %q", l)
	}
	l = run("SYSTEMD_NSPAWN_SHARE_SYSTEM=1", "SYSTEMD_NSPAWN_SHARE_NS_PID=0")
	if len(l) != 4 || l[1] != l[0] || l[2] != "outer" || l[3] == ownPID {
		t.Fatalf("SHARE_SYSTEM=1 SHARE_NS_PID=0: %q", l)
	}
	l = run("SYSTEMD_NSPAWN_SHARE_NS_UTS=yes")
	if len(l) != 4 || l[1] == l[0] || l[2] != "outer" {
		t.Fatalf("SHARE_NS_UTS=yes: %q", l)
	}
	defer withEnv(e, "SYSTEMD_NSPAWN_SHARE_NS_PID=1")()
	wantFail(t, e.Netspawn("-b"), "PID namespace of its own")
	wantFail(t, e.Netspawn("-U", "true"), "user namespace")
}

// SYSTEMD_NSPAWN_LOCK and the lock itself: a tree a container may write to
// is locked, as nspawn locks it (.#NAME.lck beside it).
func TestImageLock(t *testing.T) {
	e := harness.NewEnv(t)
	lockFile := filepath.Join(filepath.Dir(e.Tree), ".#"+filepath.Base(e.Tree)+".lck")
	cmd, done := background(t, e, "holder", "sleep", "1000")
	if _, err := os.Stat(lockFile); err != nil {
		t.Errorf("no lock file beside the tree: %v", err)
	}
	wantFail(t, e.Netspawn("true"), "is currently busy")
	wantFail(t, e.Netspawn("--read-only", "true"), "is currently busy")
	func() {
		defer withEnv(e, "SYSTEMD_NSPAWN_LOCK=0")()
		want(t, e.Netspawn("-M", "unlocked", "echo", "ran"), "ran")
	}()
	harness.Stop(cmd.Process, done)
	if _, err := os.Stat(lockFile); err == nil {
		t.Error("the lock file outlived its container")
	}
	// Readers share it; a writer waits for none of them, it is refused.
	_, doneRO := background(t, e, "reader", "--read-only", "sleep", "1000")
	want(t, e.Netspawn("-M", "reader2", "--read-only", "echo", "shared"), "shared")
	want(t, e.Netspawn("-M", "eph", "-x", "echo", "ephemeral"), "ephemeral")
	wantFail(t, e.Netspawn("-M", "writer", "true"), "is currently busy")
	_ = doneRO
}

// SYSTEMD_SUPPRESS_SYNC and --suppress-sync=yes: sync calls do nothing
// and opens asking for synchronous writes fail, as with nspawn.
func TestSuppressSync(t *testing.T) {
	e := harness.NewEnv(t)
	harness.RequireTool(t, "gcc")
	src := filepath.Join(t.TempDir(), "osync.c")
	if err := os.WriteFile(src, []byte(`#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
int main(void) {
	int fd = open("/root/f", O_WRONLY|O_CREAT|O_SYNC, 0644);
	printf("open O_SYNC: %s\n", fd < 0 ? strerror(errno) : "ok");
	fd = open("/root/f", O_WRONLY|O_CREAT, 0644);
	printf("open: %s\n", fd < 0 ? strerror(errno) : "ok");
	printf("fsync: %d\n", fsync(fd));
	return 0;
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("gcc", "-static", "-O2", "-o", filepath.Join(e.Tree, "usr/bin/osync"), src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	want(t, e.Netspawn("osync"), "open O_SYNC: ok\nopen: ok\nfsync: 0")
	want(t, e.Netspawn("--suppress-sync=yes", "osync"), "open O_SYNC: Invalid argument\nopen: ok\nfsync: 0")
	func() {
		defer withEnv(e, "SYSTEMD_SUPPRESS_SYNC=1")()
		want(t, e.Netspawn("osync"), "open O_SYNC: Invalid argument\nopen: ok\nfsync: 0")
		// The command line wins over the environment.
		want(t, e.Netspawn("--suppress-sync=no", "osync"), "open O_SYNC: ok\nopen: ok\nfsync: 0")
	}()
	// And a .nspawn file's SuppressSync=.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "syncless.nspawn"), []byte("[Exec]\nSuppressSync=yes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer withEnv(e, "NETSPAWN_SETTINGS_PATH="+dir)()
	want(t, e.Netspawn("-M", "syncless", "osync"), "open O_SYNC: Invalid argument\nopen: ok\nfsync: 0")
}

// SYSTEMD_NSPAWN_NETWORK_MAC (nspawn 255): host0's MAC, with -n and in a
// zone, and the address netspawnd reserves for it follows.
func TestNspawnEnvironmentMAC(t *testing.T) {
	e := harness.NewEnv(t)
	defer withEnv(e, "SYSTEMD_NSPAWN_NETWORK_MAC=02:11:22:33:44:55")()
	for _, net := range []string{"-n", "--network-zone=macs"} {
		r := e.Netspawn("-M", "mac", net, "sh", "-c", "cat /sys/class/net/host0/address; ip -o -4 addr show dev host0 | grep -c inet")
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != "02:11:22:33:44:55\n1" {
			t.Errorf("%s: exit %d, %q %q", net, r.Code, r.Stdout, r.Stderr)
		}
	}
	defer withEnv(e, "SYSTEMD_NSPAWN_NETWORK_MAC=01:00:5e:00:00:01")()
	wantFail(t, e.Netspawn("-n", "true"), "SYSTEMD_NSPAWN_NETWORK_MAC")
}
