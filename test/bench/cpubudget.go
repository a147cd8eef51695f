package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// cpuBudget is a cgroup that caps the CPU time of the processes moved into
// it (the cpu controller's CFS bandwidth: quota per period). The servers of
// a benchmark run in it one after the other, so that each gets the same
// share of a core and the load generator, on a core of its own, can drive
// every one of them past its limit.
type cpuBudget struct {
	dir     string
	percent int
}

// cpuBudgetPeriod is short so that a throttled server catches up in small
// bursts (its replies must fit the load generator's socket buffer).
const cpuBudgetPeriod = 4 * time.Millisecond

// The budget's weight against the machine's other work: that of a nice -10
// task (v1 cpu.shares 9548 against 1024 for nice 0; v2 cpu.weight 100 for
// nice 0). A process's nice value counts only against its siblings in its
// own cgroup, so the servers' nice -10 alone does not help a budget's
// cgroup against other load on the CPU; with this weight a server gets its
// quota on a busy machine as it would at nice -10. The quota still caps it.
const budgetShares, budgetWeight = 9548, 932

// newCPUBudget makes the cgroup with percent of one CPU: in the v1 cpu
// hierarchy where there is one (hybrid hosts), otherwise in the v2
// hierarchy when the host enables the cpu controller below its root.
func newCPUBudget(percent int) (*cpuBudget, error) {
	period := int(cpuBudgetPeriod / time.Microsecond)
	quota := period * percent / 100
	if quota < 1000 {
		return nil, fmt.Errorf("a %d%% budget is a quota under the kernel's 1 ms minimum", percent)
	}
	name := fmt.Sprintf("netspawn-bench-%d", os.Getpid())
	if _, err := os.Stat("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"); err == nil {
		dir := filepath.Join("/sys/fs/cgroup/cpu", name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, fmt.Errorf("cpu cgroup: %w", err)
		}
		b := &cpuBudget{dir: dir, percent: percent}
		// Quota first: a period below the current quota is refused.
		if err := b.write("cpu.cfs_quota_us", strconv.Itoa(quota)); err != nil {
			return nil, errors.Join(err, b.close())
		}
		if err := b.write("cpu.cfs_period_us", strconv.Itoa(period)); err != nil {
			return nil, errors.Join(err, b.close())
		}
		if err := b.write("cpu.shares", strconv.Itoa(budgetShares)); err != nil {
			return nil, errors.Join(err, b.close())
		}
		return b, nil
	}
	root := "/sys/fs/cgroup"
	ctrl, err := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
	if err != nil || !strings.Contains(" "+string(ctrl)+" ", " cpu ") {
		return nil, errors.New("no cgroup cpu controller (v1 cpu hierarchy or v2 with cpu) to cap the servers' CPU")
	}
	// The host's own setting: not changed here.
	sub, _ := os.ReadFile(filepath.Join(root, "cgroup.subtree_control"))
	if !strings.Contains(" "+strings.TrimSpace(string(sub))+" ", " cpu ") {
		return nil, fmt.Errorf("the cpu controller is not enabled below %s (echo +cpu > %s/cgroup.subtree_control)", root, root)
	}
	dir := filepath.Join(root, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cpu cgroup: %w", err)
	}
	b := &cpuBudget{dir: dir, percent: percent}
	if err := b.write("cpu.max", fmt.Sprintf("%d %d", quota, period)); err != nil {
		return nil, errors.Join(err, b.close())
	}
	if err := b.write("cpu.weight", strconv.Itoa(budgetWeight)); err != nil {
		return nil, errors.Join(err, b.close())
	}
	return b, nil
}

func (b *cpuBudget) write(file, v string) error {
	if err := os.WriteFile(filepath.Join(b.dir, file), []byte(v), 0o644); err != nil {
		return fmt.Errorf("cpu cgroup %s: %w", file, err)
	}
	return nil
}

// add moves a process (all its threads) into the budget.
func (b *cpuBudget) add(pid int) error {
	return b.write("cgroup.procs", strconv.Itoa(pid))
}

// throttling is the budget's CFS bandwidth counters: periods in which the
// cgroup ran out of quota, and for how long it waited in them.
type throttling struct {
	periods int64
	time    time.Duration
}

func (t throttling) sub(t0 throttling) throttling {
	return throttling{t.periods - t0.periods, t.time - t0.time}
}

func (t throttling) String() string {
	if t.periods == 0 && t.time == 0 {
		return ""
	}
	return fmt.Sprintf(" | throttled %d periods %v", t.periods, t.time.Round(time.Millisecond))
}

// throttled reads cpu.stat (v1: throttled_time in ns; v2: throttled_usec);
// zero for a nil budget.
func (b *cpuBudget) throttled() throttling {
	var t throttling
	if b == nil {
		return t
	}
	data, err := os.ReadFile(filepath.Join(b.dir, "cpu.stat"))
	if err != nil {
		return t
	}
	for _, l := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(l, " ")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch k {
		case "nr_throttled":
			t.periods = n
		case "throttled_time":
			t.time = time.Duration(n)
		case "throttled_usec":
			t.time = time.Duration(n) * time.Microsecond
		}
	}
	return t
}

// close removes the cgroup; processes still in it are moved back to its
// parent first.
func (b *cpuBudget) close() error {
	if procs, err := os.ReadFile(filepath.Join(b.dir, "cgroup.procs")); err == nil {
		for _, pid := range strings.Fields(string(procs)) {
			_ = os.WriteFile(filepath.Join(filepath.Dir(b.dir), "cgroup.procs"), []byte(pid), 0o644)
		}
	}
	var err error
	for i := 0; i < 100; i++ {
		if err = unix.Rmdir(b.dir); err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("removing %s: %w", b.dir, err)
}
