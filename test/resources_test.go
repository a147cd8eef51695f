package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netspawn/netspawn/test/harness"
)

// machineLimitFile finds where a limit of the machine's cgroup is visible:
// its cgroup v2 directory, or on hybrid hosts its v1 controller cgroup.
func machineLimitFile(t *testing.T, leader string, v2file, v1ctrl, v1file string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + leader + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[1] == "" {
			for _, root := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
				p := filepath.Join(root, f[2], v2file)
				if _, err := os.Stat(p); err == nil {
					return p
				}
			}
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == v1ctrl {
				for _, dir := range []string{v1ctrl, "cpu,cpuacct"} {
					p := filepath.Join("/sys/fs/cgroup", dir, f[2], v1file)
					if _, err := os.Stat(p); err == nil {
						return p
					}
				}
			}
		}
	}
	t.Fatalf("no %s / %s for leader %s", v2file, v1file, leader)
	return ""
}

func readTrim(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func leaderOf(t *testing.T, e *harness.Env, name string) string {
	t.Helper()
	r := e.Run("netspawnctl", "status", name, "-o", "json")
	i := strings.Index(r.Stdout, `"leader":`)
	if i < 0 {
		t.Fatalf("no leader in status: %s %s", r.Stdout, r.Stderr)
	}
	rest := strings.TrimLeft(r.Stdout[i+len(`"leader":`):], " ")
	return strings.TrimRight(strings.SplitN(rest, ",", 2)[0], "\n }")
}

func TestResourceLimits(t *testing.T) {
	e := harness.NewEnv(t)
	e.ShareTree()
	background(t, e, "limited", "--property=MemoryMax=256M", "--property=TasksMax=100", "sleep", "1000")
	leader := leaderOf(t, e, "limited")
	mem := machineLimitFile(t, leader, "memory.max", "memory", "memory.limit_in_bytes")
	if got := readTrim(t, mem); got != "268435456" {
		t.Errorf("%s = %s, want 268435456", mem, got)
	}
	// Raised at run time, not kept.
	if r := e.Run("netspawnctl", "set-property", "--runtime", "limited", "MemoryMax=300M", "CPUQuota=50%"); r.Code != 0 {
		t.Fatalf("set-property: %s", r.Stderr)
	}
	if got := readTrim(t, mem); got != "314572800" {
		t.Errorf("after set-property %s = %s, want 314572800", mem, got)
	}
	cpu := machineLimitFile(t, leader, "cpu.max", "cpu", "cpu.cfs_quota_us")
	if got := readTrim(t, cpu); got != "50000 100000" && got != "50000" {
		t.Errorf("%s = %s, want a 50%% quota", cpu, got)
	}
	wantFail(t, e.Run("netspawnctl", "set-property", "limited", "MemoryMax=lots"), "MemoryMax")

	// Enforced: a payload writing more than MemoryMax into tmpfs is killed.
	r := e.Netspawn("-M", "hungry", "--property=MemoryMax=64M", "sh", "-c",
		"dd if=/dev/zero of=/dev/shm/fill bs=1M count=200 2>/dev/null; echo dd=$?")
	if r.Code != 0 || strings.TrimSpace(r.Stdout) == "dd=0" {
		t.Fatalf("allocation beyond MemoryMax=64M was not stopped: %q %q", r.Stdout, r.Stderr)
	}

	// A machine started without limits gets them at run time (on hybrid
	// hosts its processes move into v1 cgroups of its own then).
	background(t, e, "late", "sh", "-c", "sleep 1000 & sleep 1000")
	if r := e.Run("netspawnctl", "set-property", "--runtime", "late", "MemoryMax=128M"); r.Code != 0 {
		t.Fatalf("set-property on a running machine without limits: %s", r.Stderr)
	}
	lateLeader := leaderOf(t, e, "late")
	if got := readTrim(t, machineLimitFile(t, lateLeader, "memory.max", "memory", "memory.limit_in_bytes")); got != "134217728" {
		t.Errorf("MemoryMax=128M at run time: %s", got)
	}

	// Kept for the next start unless --runtime.
	if r := e.Run("netspawnctl", "set-property", "later", "TasksMax=77"); r.Code != 0 {
		t.Fatalf("set-property on a stopped machine: %s", r.Stderr)
	}
	background(t, e, "later", "sleep", "1000")
	pids := machineLimitFile(t, leaderOf(t, e, "later"), "pids.max", "pids", "pids.max")
	if got := readTrim(t, pids); got != "77" {
		t.Errorf("%s = %s, want 77 from the saved property", pids, got)
	}
}
