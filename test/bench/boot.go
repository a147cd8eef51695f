package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/netspawn/netspawn/test/harness"
)

func init() { register("boot", benchBoot) }

// benchBoot boots the cached Debian tree with netspawn -b -n and with
// systemd-nspawn -b, side by side, and times: to the machine answering on
// the network by name (netspawn: its networkd's DHCP lease from netspawnd,
// resolved by netspawnd's DNS and pinged from the host every 10 ms by the
// reach child), and to `systemctl is-system-running` returning running.
func benchBoot(ctx context.Context, b *B) error {
	pristine, err := harness.CachedDebianTree(harness.CacheDir(), func(l string) { b.Logf("debootstrap: %s", l) })
	if err != nil {
		return err
	}
	ns, err := harness.OpenNetNS()
	if err != nil {
		return err
	}
	defer ns.Close()
	cleanup, err := privateDirs()
	if err != nil {
		return err
	}
	defer cleanup()
	work, err := os.MkdirTemp("/var/tmp", "netspawn-bench-boot-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	tree := filepath.Join(work, "deb")
	if err := harness.CopyTree(pristine, tree); err != nil {
		return err
	}
	netspawn, _ := filepath.Abs("bin/netspawn")
	netspawnctl, _ := filepath.Abs("bin/netspawnctl")
	nspawn, err := exec.LookPath("systemd-nspawn")
	if err != nil {
		return fmt.Errorf("systemd-nspawn not installed (Debian package systemd-container): %w", err)
	}
	const runs = 3
	var ours, oursName, oursPrivate, theirs []time.Duration
	for i := 0; i < runs; i++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		name, running, err := bootNetspawn(ctx, ns, netspawn, netspawnctl, tree, "-n")
		if err != nil {
			return fmt.Errorf("netspawn boot: %w", err)
		}
		oursName, ours = append(oursName, name), append(ours, running)
		_, private, err := bootNetspawn(ctx, ns, netspawn, netspawnctl, tree, "--private-network")
		if err != nil {
			return fmt.Errorf("netspawn boot: %w", err)
		}
		oursPrivate = append(oursPrivate, private)
		t, err := bootNspawn(ctx, ns, nspawn, tree)
		if err != nil {
			return fmt.Errorf("systemd-nspawn boot: %w", err)
		}
		theirs = append(theirs, t)
	}
	b.Logf("Debian bookworm (minbase + systemd, networkd enabled), median of %d boots each, inside a benchmark network namespace", runs)
	b.Result("netspawn -b -n: answering by name (DHCP + DNS)", ms(median(oursName)), "ms")
	b.Result("netspawn -b -n: is-system-running = running", ms(median(ours)), "ms")
	b.Result("netspawn -b --private-network: running", ms(median(oursPrivate)), "ms")
	b.Result("systemd-nspawn -b --private-network: running", ms(median(theirs)), "ms")
	b.Result("ratio netspawn/systemd-nspawn to running, both --private-network", float64(median(oursPrivate))/float64(median(theirs)), "")
	b.Result("netspawn -b -n by name / systemd-nspawn -b running (target <= 1.2)", float64(median(oursName))/float64(median(theirs)), "")
	return nil
}

func bootNetspawn(ctx context.Context, ns *harness.NetNS, netspawn, netspawnctl, tree, network string) (toName, toRunning time.Duration, err error) {
	self, err := os.Executable()
	if err != nil {
		return 0, 0, err
	}
	cmd := ns.Command(netspawn, "-q", "-D", tree, "-M", "bootbench", "-b", network, "--console=passive")
	var reach *exec.Cmd
	type reachResult struct {
		after time.Duration
		err   error
	}
	reached := make(chan reachResult, 1)
	var reachOut strings.Builder
	if network == "-n" {
		// Resolve and ping, as a user on the host would, from the moment
		// netspawn starts.
		reach = ns.Command(self)
		reach.Env = append(os.Environ(), "NETSPAWN_BENCH_CHILD=reach", "REACH_NAME=bootbench", "REACH_DNS=127.0.0.153:53", "REACH_TIMEOUT=120s")
		reach.Stdout = &reachOut
	} else {
		toName = -1 // not on a network: only the time to running
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	defer func() {
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		harness.Stop(cmd.Process, done)
	}()
	if reach != nil {
		if err := reach.Start(); err != nil {
			return 0, 0, fmt.Errorf("starting the reach prober: %w", err)
		}
		defer func() { _ = reach.Process.Kill() }()
		go func() {
			err := reach.Wait()
			reached <- reachResult{time.Since(start), err}
		}()
	}
	deadline := start.Add(120 * time.Second)
	for toRunning == 0 {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, 0, fmt.Errorf("not running within 120s")
		}
		if systemRunning(cmd.Process.Pid) {
			toRunning = time.Since(start)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if reach != nil {
		r := <-reached
		if r.err != nil {
			return 0, 0, fmt.Errorf("reaching the machine by name: %w", r.err)
		}
		toName = r.after
		// The address answering is the container's own, from DHCP.
		a := strings.TrimSpace(reachOut.String())
		if got, _ := ns.Command(netspawnctl, "shell", "bootbench", "sh", "-c", "ip -o -4 addr show dev host0").Output(); !strings.Contains(string(got), a+"/") {
			return 0, 0, fmt.Errorf("%s answered, but host0 has: %s", a, got)
		}
	}
	return max(toName, 0), toRunning, nil
}

func bootNspawn(ctx context.Context, ns *harness.NetNS, nspawn, tree string) (time.Duration, error) {
	cmd := ns.Command(nspawn, "--register=no", "--keep-unit", "-q", "-D", tree, "-M", "bootbench", "-b", "--private-network", "--console=passive")
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		harness.Stop(cmd.Process, done)
	}()
	deadline := start.Add(120 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if systemRunning(cmd.Process.Pid) {
			return time.Since(start), nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, fmt.Errorf("not running within 120s")
}

// systemRunning asks the systemd below pid (found the same way for both
// container managers) whether it has finished booting.
func systemRunning(pid int) bool {
	leader := nspawnLeader(pid)
	if leader <= 0 {
		return false
	}
	out, _ := exec.Command("nsenter", "-t", strconv.Itoa(leader), "-m", "-u", "-i", "-n", "-p", "--", "systemctl", "is-system-running").Output()
	s := strings.TrimSpace(string(out))
	return s == "running" || s == "degraded"
}

// nspawnLeader finds the container's PID 1 below the nsenter'd
// systemd-nspawn: the first descendant running systemd.
func nspawnLeader(pid int) int {
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p)); strings.TrimSpace(string(comm)) == "systemd" {
			return p
		}
		// Children hang off the thread that forked them: look at every task.
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", p))
		for _, t := range tasks {
			kids, _ := os.ReadFile(t)
			for _, f := range strings.Fields(string(kids)) {
				if n, err := strconv.Atoi(f); err == nil {
					queue = append(queue, n)
				}
			}
		}
	}
	return 0
}
