package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/netspawn/netspawn/netctl/api"
	"github.com/netspawn/netspawn/test/harness"
)

func init() { register("netctl", benchNetctl) }

var benchLogLevel = envOr("NETSPAWN_BENCH_LOG", "warn")

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

// fakeLeader is a process in its own network namespace, standing in for a
// container's PID 1.
type fakeLeader struct{ cmd *exec.Cmd }

func startLeaders(ns *harness.NetNS, n int) ([]*fakeLeader, error) {
	var out []*fakeLeader
	for range n {
		cmd := ns.Command("unshare", "--net", "sleep", "1000000")
		if err := cmd.Start(); err != nil {
			return out, err
		}
		out = append(out, &fakeLeader{cmd})
	}
	for _, l := range out { // wait for each to be in its own namespace
		for i := 0; ; i++ {
			exe, _ := os.Readlink("/proc/" + strconv.Itoa(l.cmd.Process.Pid) + "/exe")
			if strings.HasSuffix(exe, "/sleep") {
				break
			}
			if i > 2000 {
				return out, fmt.Errorf("fake leader %d did not start", l.cmd.Process.Pid)
			}
			time.Sleep(time.Millisecond)
		}
	}
	return out, nil
}

func stopLeaders(ls []*fakeLeader) {
	for _, l := range ls {
		l.cmd.Process.Kill()
	}
	for _, l := range ls {
		l.cmd.Wait()
	}
}

func rssKiB(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			return strconv.Atoi(f[1])
		}
	}
	return 0, fmt.Errorf("no VmRSS for %d", pid)
}

func daemonBinary() (string, error) {
	p, err := filepath.Abs("bin/netspawnd")
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("bin/netspawnd missing: run make build first: %w", err)
	}
	return p, nil
}

// startBenchDaemon starts netspawnd in ns with its directories under tmp
// and its log in tmp/netspawnd.log; it returns the runtime directory.
func startBenchDaemon(ns *harness.NetNS, bin, tmp string, extra ...string) (*exec.Cmd, string, *os.File, error) {
	rt, st := filepath.Join(tmp, "run"), filepath.Join(tmp, "state")
	args := append([]string{"--runtime-dir", rt, "--state-dir", st, "--log-level", benchLogLevel, "--config", "/dev/null"}, extra...)
	daemon := ns.Command(bin, args...)
	logf, err := os.Create(filepath.Join(tmp, "netspawnd.log"))
	if err != nil {
		return nil, "", nil, err
	}
	daemon.Stdout, daemon.Stderr = logf, logf
	if err := daemon.Start(); err != nil {
		return nil, "", nil, err
	}
	return daemon, rt, logf, nil
}

// connectBenchDaemon waits until the netspawnd of runtime dir rt answers.
func connectBenchDaemon(ctx context.Context, rt string) (*api.Client, error) {
	for i := 0; ; i++ {
		cl, err := api.Connect(ctx, api.ConnectOptions{RuntimeDir: rt, NoStart: true})
		if err == nil {
			return cl, nil
		}
		if i > 500 {
			return nil, fmt.Errorf("netspawnd did not start: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// window is the median of durations d[from-1 .. to-1] (1-based machine
// numbers): other load on the machine makes single calls noisy.
func window(d []time.Duration, from, to int) float64 {
	return ms(median(append([]time.Duration(nil), d[from-1:to]...)))
}

// benchNetctl measures what netspawnd does per container (veth pair with the
// peer in the container's namespace, /28 allocation, gateway address,
// nftables elements for the link, subnet and one port forward) with 1, 100
// and 500 machines registered, against the same work done the usual way
// with iproute2 and the nft CLI, and netspawnd's memory with 500 machines.
func benchNetctl(ctx context.Context, b *B) error {
	const total = 500
	bin, err := daemonBinary()
	if err != nil {
		return err
	}
	ns, err := harness.OpenNetNS()
	if err != nil {
		return err
	}
	defer ns.Close()
	tmp, err := os.MkdirTemp("", "netspawn-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	args := strings.Fields(os.Getenv("NETSPAWN_BENCH_DAEMON_ARGS")) // e.g. --dhcp=false
	daemon, rt, logf, err := startBenchDaemon(ns, bin, tmp, args...)
	if err != nil {
		return err
	}
	defer func() { daemon.Process.Signal(syscall.SIGKILL); daemon.Wait() }()
	cl, err := connectBenchDaemon(ctx, rt)
	if err != nil {
		return err
	}
	defer cl.Close()

	leaders, err := startLeaders(ns, total)
	defer stopLeaders(leaders)
	if err != nil {
		return err
	}
	rssEmpty, _ := rssKiB(daemon.Process.Pid)

	// netspawnd: one Register call per machine.
	ours := make([]time.Duration, total)
	for i, l := range leaders {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		req := api.RegisterRequest{Name: fmt.Sprintf("m%d", i), Leader: l.cmd.Process.Pid,
			Network: api.NetworkRequest{Veth: true, Ports: []api.Port{{Protocol: "tcp", HostPort: uint16(20000 + i), ContainerPort: 80}}}}
		start := time.Now()
		if _, err := cl.Register(ctx, req); err != nil {
			return fmt.Errorf("register %s: %w", req.Name, err)
		}
		ours[i] = time.Since(start)
	}
	rss, err := rssKiB(daemon.Process.Pid)
	if err != nil {
		return err
	}
	if benchLogLevel == "debug" {
		log, _ := os.ReadFile(logf.Name())
		for _, line := range strings.Split(string(log), "\n") {
			for _, m := range []string{"machine=m0 ", "machine=m99 ", "machine=m499 "} {
				if strings.Contains(line, "register phases") && strings.Contains(line, m) {
					b.Logf("%s", line)
				}
			}
		}
	}
	// API round trip without work.
	start := time.Now()
	const pings = 2000
	for range pings {
		if _, err := cl.Ping(ctx); err != nil {
			return err
		}
	}
	ping := time.Since(start) / pings
	var unreg time.Duration
	for i := range leaders {
		start := time.Now()
		if err := cl.Unregister(ctx, fmt.Sprintf("m%d", i)); err != nil {
			return err
		}
		unreg += time.Since(start)
	}
	// Links are deleted in the background: wait until all are gone.
	start = time.Now()
	for i := 0; ; i++ {
		out, err := ns.Command("ip", "-o", "link", "show", "type", "veth").Output()
		if err != nil {
			return err
		}
		if len(strings.TrimSpace(string(out))) == 0 {
			break
		}
		if i > 3000 {
			return fmt.Errorf("veths still present after unregistering")
		}
		time.Sleep(10 * time.Millisecond)
	}
	drained := time.Since(start)

	// The peer: iproute2 + nft CLI doing the same per container, in a second
	// namespace with its own table.
	peerNS, err := harness.OpenNetNS()
	if err != nil {
		return err
	}
	defer peerNS.Close()
	if out, err := peerNS.Command("nft", "add table inet peer; add set inet peer links { type ifname; }; add set inet peer subnets { type ipv4_addr; }; "+
		"add map inet peer fwd4 { type inet_proto . inet_service : ipv4_addr . inet_service; }").CombinedOutput(); err != nil {
		return fmt.Errorf("nft: %v: %s", err, out)
	}
	theirs := make([]time.Duration, total)
	for i, l := range leaders {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		link := fmt.Sprintf("ve-m%d", i)
		sub := fmt.Sprintf("10.%d.%d.0", i/16, (i%16)*16)
		gw := fmt.Sprintf("10.%d.%d.1/28", i/16, (i%16)*16)
		addr := fmt.Sprintf("10.%d.%d.2", i/16, (i%16)*16)
		script := fmt.Sprintf(`ip link add %s type veth peer name host0 netns %d && ip addr add %s dev %s && ip link set %s up && `+
			`nft 'add element inet peer links { "%s" }; add element inet peer subnets { %s }; add element inet peer fwd4 { tcp . %d : %s . 80 }'`,
			link, l.cmd.Process.Pid, gw, link, link, link, sub, 20000+i, addr)
		// nsenter and sh are not part of the work: time them alone, right before.
		start := time.Now()
		if err := peerNS.Command("sh", "-c", "true").Run(); err != nil {
			return err
		}
		base := time.Since(start)
		start = time.Now()
		if out, err := peerNS.Command("sh", "-c", script).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", script, err, out)
		}
		theirs[i] = time.Since(start) - base
	}

	b.Logf("per-container network setup: veth (peer in the container's netns), /28, gateway address, nftables link+subnet+forward elements")
	for _, w := range [][2]int{{1, 1}, {81, 100}, {481, 500}} {
		o, t := window(ours, w[0], w[1]), window(theirs, w[0], w[1])
		label := fmt.Sprintf("machine %d", w[1])
		if w[0] != w[1] {
			label = fmt.Sprintf("machines %d-%d (median)", w[0], w[1])
		}
		b.Result("netspawnd Register, "+label, o, "ms")
		b.Result("ip + nft CLI, "+label, t, "ms")
		b.Result("ratio netspawnd/(ip+nft), "+label, o/t, "")
	}
	b.Result("growth netspawnd 481-500 vs 81-100 (flat = 1)", window(ours, 481, 500)/window(ours, 81, 100), "")
	b.Result("growth ip+nft 481-500 vs 81-100", window(theirs, 481, 500)/window(theirs, 81, 100), "")
	b.Result("netspawnd Unregister call, mean over 500", ms(unreg/total), "ms")
	b.Result("background link deletion drained after the last call", ms(drained), "ms")
	b.Result("API round trip (ping)", float64(ping.Microseconds()), "us")
	b.Result("netspawnd RSS, no machines", float64(rssEmpty)/1024, "MiB")
	b.Result("netspawnd RSS, 500 machines", float64(rss)/1024, "MiB")
	return nil
}
