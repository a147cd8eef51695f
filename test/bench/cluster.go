package main

// Cluster benchmark (issue 18): what a cluster zone costs against the
// underlay it runs on. The world is made of namespaces: an underlay
// namespace with a bridge (ulbr0) and a real etcd; two host namespaces on
// it, each with a netspawnd in cluster mode and one member of zone
// "bench"; two plain namespaces joined to the same bridge with addresses in
// the underlay subnet (the direct path the members are compared with); and
// a host namespace with a netspawnd without --cluster-etcd for the
// single-host start time.
//
//   - RTT: UDP request/response (one in flight, as netperf's UDP_RR) from
//     member A to member B, against plain A to plain B, alternating rounds.
//   - Throughput: iperf3 (run from the host's filesystem in the member's
//     network namespace) against the same pair of plain namespaces.
//   - Start time: netspawn -M x --network-zone=bench true on a cluster host
//     against the same on the single host (a resident member keeps each
//     zone up), blocks alternating.

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/netspawn/netspawn/test/harness"
)

func init() {
	register("cluster", benchCluster)
	registerChild("udpecho", udpEchoChild)
	registerChild("udpping", udpPingChild)
}

const (
	clEtcdAddr = "198.18.0.254"
	clZone     = "bench"
	clEchoPort = "7777"
	// clEchoPinnedPort: the echo servers pinned to CPU 0, for the pinned
	// round trips.
	clEchoPinnedPort = "7778"
	clIperf          = 5201
)

// clProc is a background process of the benchmark, stopped by PID.
type clProc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	out  *lockedBuffer
}

// lockedBuffer is a buffer a process writes to while the benchmark reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (p *clProc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// clHost is a host namespace with its own netspawnd.
type clHost struct {
	name     string
	ns       *harness.NetNS
	underlay string // "" for the single host
	env      []string
	runDir   string
	daemon   *clProc
}

// cpuTime is the CPU time a process has used so far.
func cpuTime(pid int) time.Duration {
	d, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name (which may hold spaces).
	_, rest, _ := strings.Cut(string(d), ") ")
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * time.Second / 100 // USER_HZ
}

type clWorld struct {
	bin   string // directory of netspawn's programs
	self  string // this benchmark binary, for its children
	tree  string
	base  string // temporary directory on disk
	shm   string // runtime directories (tmpfs)
	ul    *harness.NetNS
	nss   []*harness.NetNS
	procs []*clProc
}

// start runs cmd in the background (in its own process group, so that an
// interrupt at the terminal reaches only the benchmark, which then stops
// everything in order).
func (w *clWorld) start(name string, cmd *exec.Cmd) (*clProc, error) {
	p := &clProc{name: name, cmd: cmd, done: make(chan struct{}), out: &lockedBuffer{}}
	if cmd.Stdout == nil {
		cmd.Stdout = p.out
	}
	cmd.Stderr = p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	w.procs = append(w.procs, p)
	return p, nil
}

// close stops every process in the reverse order of their starts (members
// before their netspawnd, netspawnd before etcd), then removes the
// namespaces (killing anything left in them) and the directories.
func (w *clWorld) close() {
	for i := len(w.procs) - 1; i >= 0; i-- {
		harness.Stop(w.procs[i].cmd.Process, w.procs[i].done)
	}
	w.procs = nil
	for i := len(w.nss) - 1; i >= 0; i-- {
		w.nss[i].Close()
	}
	if w.base != "" {
		os.RemoveAll(w.base)
	}
	if w.shm != "" {
		os.RemoveAll(w.shm)
	}
}

func (w *clWorld) newNS() (*harness.NetNS, error) {
	ns, err := harness.OpenNetNS()
	if err != nil {
		return nil, err
	}
	w.nss = append(w.nss, ns)
	return ns, nil
}

// onUnderlay joins ns to the underlay bridge with address addr/24 on ul0.
func (w *clWorld) onUnderlay(ns *harness.NetNS, port, addr string) error {
	if err := harness.Veth(ns, w.ul, "ul0", port, addr+"/24", ""); err != nil {
		return err
	}
	if out, err := w.ul.Sh("ip link set " + port + " master ulbr0"); err != nil {
		return fmt.Errorf("underlay port %s: %v: %s", port, err, out)
	}
	return nil
}

// waitFor polls cond every 20 ms until it holds, the time is up or ctx ends.
func waitFor(ctx context.Context, limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for {
		if cond() {
			return true
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (w *clWorld) startEtcd(ctx context.Context) error {
	ep := "http://" + clEtcdAddr + ":2379"
	cmd := w.ul.Command("etcd", "--name", "bench", "--data-dir", filepath.Join(w.base, "etcd"),
		"--listen-client-urls", ep, "--advertise-client-urls", ep,
		"--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", "bench=http://127.0.0.1:2380", "--log-level", "warn")
	p, err := w.start("etcd", cmd)
	if err != nil {
		return err
	}
	if !waitFor(ctx, 30*time.Second, func() bool {
		return p.running() && w.ul.Command("etcdctl", "--endpoints", ep, "endpoint", "health").Run() == nil
	}) {
		return fmt.Errorf("etcd did not become healthy: %s", lastLinesOf(p.out.String(), 20))
	}
	return nil
}

// newHost makes a host namespace with its netspawnd; underlay "" makes
// the single host (no underlay, no cluster).
func (w *clWorld) newHost(ctx context.Context, name, underlay string) (*clHost, error) {
	ns, err := w.newNS()
	if err != nil {
		return nil, err
	}
	h := &clHost{name: name, ns: ns, underlay: underlay, runDir: filepath.Join(w.shm, name)}
	state, images := filepath.Join(w.base, name, "state"), filepath.Join(w.base, name, "machines")
	for _, d := range []string{h.runDir, state, images} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	h.env = append(os.Environ(), "NETSPAWN_RUNTIME_DIR="+h.runDir, "NETSPAWN_STATE_DIR="+state,
		"NETSPAWN_IMAGES_DIR="+images, "SYSTEMD_NSPAWN_LOCK=0")
	args := []string{"--config", "/dev/null", "--runtime-dir", h.runDir, "--state-dir", state}
	if underlay != "" {
		if err := w.onUnderlay(ns, "ul-"+name, underlay); err != nil {
			return nil, err
		}
		args = append(args, "--cluster-etcd", "http://"+clEtcdAddr+":2379", "--cluster-node", name, "--cluster-address", underlay)
	}
	p, err := w.start("netspawnd on "+name, h.command(filepath.Join(w.bin, "netspawnd"), args...))
	if err != nil {
		return nil, err
	}
	h.daemon = p
	if !waitFor(ctx, 15*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(h.runDir, "netspawnd.sock"))
		return p.running() && err == nil
	}) {
		return nil, fmt.Errorf("netspawnd on %s did not start: %s", name, lastLinesOf(p.out.String(), 20))
	}
	return h, nil
}

// command prepares a program to run in the host's namespace with its
// directories.
func (h *clHost) command(prog string, args ...string) *exec.Cmd {
	cmd := h.ns.Command(prog, args...)
	cmd.Env = h.env
	return cmd
}

// member starts a zone member that sleeps, waits until netspawnd lists it
// and returns its leader's PID.
func (w *clWorld) member(ctx context.Context, h *clHost, name string) (int, error) {
	p, err := w.start("member "+name, h.command(filepath.Join(w.bin, "netspawn"), "-q", "-D", w.tree, "-M", name, "--network-zone="+clZone, "sleep", "1000000"))
	if err != nil {
		return 0, err
	}
	ctl := filepath.Join(w.bin, "netspawnctl")
	leader := 0
	if !waitFor(ctx, 30*time.Second, func() bool {
		if !p.running() {
			return true
		}
		out, err := h.command(ctl, "show", name, "--property=Leader", "--value").Output()
		if err != nil {
			return false
		}
		leader, _ = strconv.Atoi(strings.TrimSpace(string(out)))
		return leader > 0
	}) || leader <= 0 {
		return 0, fmt.Errorf("member %s on %s did not start: %s", name, h.name, lastLinesOf(p.out.String(), 20))
	}
	return leader, nil
}

// inNetNS runs a program of the host's filesystem in a process's network
// namespace (it is the network path being measured, not the tree).
func inNetNS(ctx context.Context, pid int, prog string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=/proc/" + strconv.Itoa(pid) + "/ns/net", "--", prog}, args...)...)
}

// hostAddr is the IPv4 address and MTU of host0 in a leader's namespace.
func hostAddr(ctx context.Context, leader int) (string, string, error) {
	out, err := inNetNS(ctx, leader, "ip", "-4", "-o", "addr", "show", "dev", "host0").Output()
	if err != nil {
		return "", "", fmt.Errorf("host0 of leader %d: %w", leader, err)
	}
	f := strings.Fields(string(out))
	if len(f) < 4 {
		return "", "", fmt.Errorf("host0 of leader %d has no IPv4 address: %q", leader, out)
	}
	addr, _, _ := strings.Cut(f[3], "/")
	return addr, linkMTU(inNetNS(ctx, leader, "ip", "-o", "link", "show", "dev", "host0")), nil
}

func linkMTU(cmd *exec.Cmd) string {
	out, _ := cmd.Output()
	f := strings.Fields(string(out))
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "mtu" {
			return f[i+1]
		}
	}
	return "?"
}

// endpoint is one side of a measured path: a command runner in a network
// namespace and its address.
type endpoint struct {
	label string
	run   func(ctx context.Context, prog string, args ...string) *exec.Cmd
	addr  string
}

func nsEndpoint(label string, ns *harness.NetNS, addr string) endpoint {
	return endpoint{label, func(ctx context.Context, prog string, args ...string) *exec.Cmd {
		return ns.CommandContext(ctx, prog, args...)
	}, addr}
}

func leaderEndpoint(label string, leader int, addr string) endpoint {
	return endpoint{label, func(ctx context.Context, prog string, args ...string) *exec.Cmd {
		return inNetNS(ctx, leader, prog, args...)
	}, addr}
}

// path is a client and a server endpoint.
type path struct {
	name           string
	client, server endpoint
}

func benchCluster(ctx context.Context, b *B) error {
	for _, tool := range []string{"etcd", "etcdctl", "iperf3", "nsenter", "ip", "nft", "sysctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not installed (apt-get install etcd-server etcd-client iperf3 util-linux iproute2 nftables procps)", tool)
		}
	}
	w := &clWorld{}
	defer w.close()
	var err error
	if w.bin, err = filepath.Abs("bin"); err != nil {
		return err
	}
	for _, p := range []string{"netspawn", "netspawnd", "netspawnctl"} {
		if _, err := os.Stat(filepath.Join(w.bin, p)); err != nil {
			return fmt.Errorf("bin/%s missing: run make build first: %w", p, err)
		}
	}
	if w.self, err = os.Executable(); err != nil {
		return err
	}
	if w.base, err = os.MkdirTemp("", "netspawn-bench-cluster-"); err != nil {
		return err
	}
	if w.shm, err = os.MkdirTemp("/dev/shm", "netspawn-bench-cluster-"); err != nil {
		return err
	}
	pristine, err := harness.CachedBusyboxTree(harness.CacheDir())
	if err != nil {
		return err
	}
	w.tree = filepath.Join(w.base, "tree")
	if err := harness.CopyTree(pristine, w.tree); err != nil {
		return err
	}
	b.Logf("load average at start: %s", loadavg())
	defer func() { b.Logf("load average at end: %s", loadavg()) }()

	// The underlay: a bridge, etcd on it.
	if w.ul, err = w.newNS(); err != nil {
		return err
	}
	if out, err := w.ul.Sh("ip link add ulbr0 type bridge && ip addr add " + clEtcdAddr + "/24 dev ulbr0 && ip link set ulbr0 up"); err != nil {
		return fmt.Errorf("underlay bridge: %v: %s", err, out)
	}
	if err := w.startEtcd(ctx); err != nil {
		return err
	}
	ha, err := w.newHost(ctx, "a", "198.18.0.11")
	if err != nil {
		return err
	}
	hb, err := w.newHost(ctx, "b", "198.18.0.12")
	if err != nil {
		return err
	}
	hs, err := w.newHost(ctx, "s", "")
	if err != nil {
		return err
	}
	// netspawnd's own CPU time over the benchmark: idle between requests,
	// it should be a small share of the wall time.
	began := time.Now()
	defer func() {
		for _, h := range []*clHost{ha, hb, hs} {
			b.Logf("netspawnd on %s used %s of CPU in %s", h.name, cpuTime(h.daemon.cmd.Process.Pid).Round(10*time.Millisecond), time.Since(began).Round(time.Second))
		}
	}()
	// The direct pair: plain namespaces on the same bridge.
	var plain [2]*harness.NetNS
	for i, addr := range []string{"198.18.0.21", "198.18.0.22"} {
		if plain[i], err = w.newNS(); err != nil {
			return err
		}
		if err := w.onUnderlay(plain[i], fmt.Sprintf("ul-p%d", i), addr); err != nil {
			return err
		}
	}
	la, err := w.member(ctx, ha, "cla")
	if err != nil {
		return err
	}
	lb, err := w.member(ctx, hb, "clb")
	if err != nil {
		return err
	}
	if _, err := w.member(ctx, hs, "sres"); err != nil {
		return err
	}
	addrA, mtuA, err := hostAddr(ctx, la)
	if err != nil {
		return err
	}
	addrB, _, err := hostAddr(ctx, lb)
	if err != nil {
		return err
	}
	brnf, _ := ha.ns.Command("sysctl", "-n", "net.bridge.bridge-nf-call-iptables").Output()
	b.Logf("member cla on host a: %s (host0 mtu %s); member clb on host b: %s; vx-%s mtu %s, underlay mtu %s; net.bridge.bridge-nf-call-iptables in the host namespaces: %s",
		addrA, mtuA, addrB, clZone, linkMTU(ha.ns.Command("ip", "-o", "link", "show", "dev", "vx-"+clZone)),
		linkMTU(ha.ns.Command("ip", "-o", "link", "show", "dev", "ul0")), strings.TrimSpace(string(brnf)))
	paths := []path{
		{"cluster zone, member a -> member b", leaderEndpoint("cla", la, addrA), leaderEndpoint("clb", lb, addrB)},
		{"underlay, plain namespace -> plain namespace", nsEndpoint("p0", plain[0], "198.18.0.21"), nsEndpoint("p1", plain[1], "198.18.0.22")},
	}
	if err := w.servers(ctx, paths); err != nil {
		return err
	}
	if err := clusterRTT(ctx, b, w, paths); err != nil {
		return err
	}
	if err := clusterThroughput(ctx, b, paths); err != nil {
		return err
	}
	if err := clusterStart(ctx, b, w, ha, hs); err != nil {
		return err
	}
	if os.Getenv("NETSPAWN_BENCH_CLUSTER_BREAKDOWN") != "" {
		return clusterBreakdown(ctx, b, w, paths, ha, hb)
	}
	return nil
}

// servers starts, on each path's server side, a UDP echo server and an
// iperf3 server, and waits until both path work end to end (for the
// cluster: until the flood entries are in).
func (w *clWorld) servers(ctx context.Context, paths []path) error {
	for _, p := range paths {
		for _, pinned := range []bool{false, true} {
			port, env, label := clEchoPort, []string{}, "udp echo on "+p.server.label
			if pinned {
				port, env, label = clEchoPinnedPort, []string{"NETSPAWN_BENCH_CPU=0"}, label+" (CPU 0)"
			}
			cmd := p.server.run(context.Background(), w.self)
			cmd.Env = append(append(os.Environ(), "NETSPAWN_BENCH_CHILD=udpecho", "UDPECHO_ADDR=:"+port), env...)
			r, wr := io.Pipe()
			cmd.Stdout = wr
			echo, err := w.start(label, cmd)
			if err != nil {
				return err
			}
			line, _ := bufio.NewReader(r).ReadString('\n')
			go func() { _, _ = io.Copy(io.Discard, r) }()
			if strings.TrimSpace(line) != "ready" {
				return fmt.Errorf("%s: %q %s", label, line, echo.out.String())
			}
			if !waitFor(ctx, 30*time.Second, func() bool {
				_, err := udpPing(ctx, p, w.self, 1, 0, pinned)
				return err == nil
			}) {
				_, err := udpPing(ctx, p, w.self, 1, 0, pinned)
				return fmt.Errorf("%s: no answer: %v", p.name, err)
			}
		}
		srv, err := w.start("iperf3 server on "+p.server.label, p.server.run(context.Background(), "iperf3", "-s", "-p", strconv.Itoa(clIperf)))
		if err != nil {
			return err
		}
		// nsenter execs iperf3: its PID is the server's; its sockets show in
		// its namespace's /proc/PID/net/tcp{,6}.
		if !waitFor(ctx, 15*time.Second, func() bool { return srv.running() && tcpListening(srv.cmd.Process.Pid, clIperf) }) {
			return fmt.Errorf("iperf3 server on %s did not listen: %s", p.server.label, srv.out.String())
		}
	}
	return nil
}

// rttRounds runs UDP request/response rounds on each path, alternating.
// Besides every round trip of each path it returns, per round, the ratio
// of the first path's median to the second's: the median of those ratios
// stands up better than the ratio of the medians to other work on the
// machine changing between rounds.
func rttRounds(ctx context.Context, b *B, self string, paths []path, rounds, per int, tag string, pinned bool) ([][]time.Duration, []float64, error) {
	rtts := make([][]time.Duration, len(paths))
	var ratios []float64
	for round := 0; round < rounds; round++ {
		meds := make([]time.Duration, len(paths))
		for i, p := range paths {
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			d, err := udpPing(ctx, p, self, per, 200, pinned)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", p.name, err)
			}
			rtts[i] = append(rtts[i], d...)
			meds[i] = quantile(d, 0.5)
			b.Logf("%sround %d %-45s median %6.1f us  p99 %6.1f us", tag, round+1, p.name, us(meds[i]), us(quantile(d, 0.99)))
		}
		ratios = append(ratios, float64(meds[0])/float64(meds[1]))
	}
	return rtts, ratios, nil
}

func medianFloat(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// clusterRTT measures UDP request/response round trips on each path:
// first as the scheduler places the two ends, then with both ends (and so
// the softirq work their sends raise) on CPU 0. On a virtualised guest a
// wake-up across vCPUs costs tens of microseconds, and whether the two
// ends land on one vCPU or two changes from round to round: the unpinned
// ratio measures that luck as much as the path. Pinned, both paths do all
// their work on one CPU and the ratio is the member path's own cost
// (VXLAN, the bridges and veths, the hosts' filtering), as long as no
// other work wants CPU 0. Both are judged against the goal.
func clusterRTT(ctx context.Context, b *B, w *clWorld, paths []path) error {
	const rounds, per = 10, 3000
	goal := map[bool]float64{}
	for _, pinned := range []bool{false, true} {
		tag, label := "", ""
		if pinned {
			tag, label = "pinned ", ", both ends on CPU 0"
		}
		rtts, ratios, err := rttRounds(ctx, b, w.self, paths, rounds, per, tag, pinned)
		if err != nil {
			return err
		}
		b.Logf("UDP request/response%s (32-byte payload, one in flight, %d per round after 200 warm-up, %d alternating rounds); children of this binary nsenter'd into the namespaces", label, per, rounds)
		med := []time.Duration{quantile(rtts[0], 0.5), quantile(rtts[1], 0.5)}
		p99 := []time.Duration{quantile(rtts[0], 0.99), quantile(rtts[1], 0.99)}
		for i, p := range paths {
			b.Result(tag+"RTT "+p.name+": median", us(med[i]), "us")
			b.Result(tag+"RTT "+p.name+": p99", us(p99[i]), "us")
		}
		b.Result(tag+"RTT ratio cluster/underlay, medians of all rounds", float64(med[0])/float64(med[1]), "x")
		ratio := medianFloat(ratios)
		goal[pinned] = ratio
		b.Result(tag+"RTT ratio cluster/underlay, median of per-round (goal <= 1.3)", ratio, "x")
		b.Result(tag+"RTT ratio cluster/underlay, p99", float64(p99[0])/float64(p99[1]), "x")
	}
	b.Logf("goal RTT <= 1.3x underlay: placed by the scheduler %s, pinned %s", metOrNot(goal[false] <= 1.3), metOrNot(goal[true] <= 1.3))
	return nil
}

func metOrNot(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// udpPing runs the udpping child on p's client and returns its round trips.
func udpPing(ctx context.Context, p path, self string, n, warm int, pinned bool) ([]time.Duration, error) {
	cctx, cancel := context.WithTimeout(ctx, time.Duration(n+warm)*time.Second+10*time.Second)
	defer cancel()
	cmd := p.client.run(cctx, self)
	port := clEchoPort
	if pinned {
		port = clEchoPinnedPort
	}
	cmd.Env = append(os.Environ(), "NETSPAWN_BENCH_CHILD=udpping", "UDPPING_TARGET="+net.JoinHostPort(p.server.addr, port),
		"UDPPING_COUNT="+strconv.Itoa(n), "UDPPING_WARM="+strconv.Itoa(warm))
	if pinned {
		cmd.Env = append(cmd.Env, "NETSPAWN_BENCH_CPU=0")
	}
	var errb strings.Builder
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("udpping: %v: %s", err, errb.String())
	}
	var d []time.Duration
	for _, f := range strings.Fields(string(out)) {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("udpping output %q", f)
		}
		d = append(d, time.Duration(v))
	}
	if len(d) == 0 {
		return nil, fmt.Errorf("udpping: no answers: %s", errb.String())
	}
	return d, nil
}

// tcpRounds runs iperf3 on each path, rounds alternating, and returns
// each path's median in Gbit/s.
// Also returned: the median of the per-round ratios first/second path.
func tcpRounds(ctx context.Context, b *B, paths []path, rounds, secs int, tag string) ([]float64, float64, error) {
	got := make([][]float64, len(paths))
	var ratios []float64
	for round := 0; round < rounds; round++ {
		for i, p := range paths {
			if ctx.Err() != nil {
				return nil, 0, ctx.Err()
			}
			cctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+30*time.Second)
			out, err := p.client.run(cctx, "iperf3", "-c", p.server.addr, "-p", strconv.Itoa(clIperf), "-t", strconv.Itoa(secs), "-O", "1", "-J").Output()
			cancel()
			if err != nil {
				return nil, 0, fmt.Errorf("iperf3 %s: %v: %s", p.name, err, lastLinesOf(string(out), 10))
			}
			var r struct {
				End struct {
					SumSent     struct{ Retransmits int } `json:"sum_sent"`
					SumReceived struct {
						BitsPerSecond float64 `json:"bits_per_second"`
					} `json:"sum_received"`
				} `json:"end"`
			}
			if err := json.Unmarshal(out, &r); err != nil {
				return nil, 0, fmt.Errorf("iperf3 %s output: %w", p.name, err)
			}
			gbps := r.End.SumReceived.BitsPerSecond / 1e9
			got[i] = append(got[i], gbps)
			b.Logf("%sround %d %-45s %6.2f Gbit/s (%d retransmits)", tag, round+1, p.name, gbps, r.End.SumSent.Retransmits)
		}
		ratios = append(ratios, got[0][round]/got[1][round])
	}
	med := make([]float64, len(paths))
	for i := range paths {
		med[i] = medianFloat(got[i])
	}
	return med, medianFloat(ratios), nil
}

// clusterThroughput measures one TCP stream with iperf3 on each path.
func clusterThroughput(ctx context.Context, b *B, paths []path) error {
	const rounds, secs = 8, 4
	med, ratio, err := tcpRounds(ctx, b, paths, rounds, secs, "")
	if err != nil {
		return err
	}
	b.Logf("iperf3 -t %d -O 1 (one TCP stream), %d alternating rounds; member path MTU 1450 (VXLAN), underlay 1500", secs, rounds)
	for i, p := range paths {
		b.Result("TCP "+p.name, med[i], "Gbit/s")
	}
	b.Result("TCP ratio cluster/underlay, medians of all rounds", med[0]/med[1], "x")
	b.Result("TCP ratio cluster/underlay, median of per-round (goal >= 0.8)", ratio, "x")
	b.Logf("goal throughput >= 0.8x underlay: %s", metOrNot(ratio >= 0.8))
	return nil
}

// clusterBreakdown (NETSPAWN_BENCH_CLUSTER_BREAKDOWN=1) measures the
// cluster path again with one change at a time in the host namespaces a
// and b (and the members' namespaces), each undone before the next, to see
// where its cost is and what a setting would win:
//   - net.bridge.bridge-nf-call-iptables=0: what br_netfilter's detour of
//     bridged frames through the host's IP hooks still costs (netspawnd
//     keeps those frames out of conntrack, but not out of the hooks);
//   - GRO on both ends of the members' veths (which makes veth receive in
//     NAPI, batching, instead of the backlog queue).
func clusterBreakdown(ctx context.Context, b *B, w *clWorld, paths []path, hosts ...*clHost) error {
	steps := []struct {
		name          string
		on, off       string // in each host namespace
		member, unset string // in each member's namespace
	}{
		{name: "bridge-nf-call-iptables=0",
			on: "sysctl -qw net.bridge.bridge-nf-call-iptables=0", off: "sysctl -qw net.bridge.bridge-nf-call-iptables=1"},
		{name: "GRO on the members' veths",
			on:     "for l in $(ip -o link show type veth master vz-" + clZone + " | awk -F'[:@ ]+' '{print $2}'); do ethtool -K $l gro on; done",
			off:    "for l in $(ip -o link show type veth master vz-" + clZone + " | awk -F'[:@ ]+' '{print $2}'); do ethtool -K $l gro off; done",
			member: "ethtool -K host0 gro on", unset: "ethtool -K host0 gro off"},
	}
	sh := func(script string, where ...func(string) ([]byte, error)) error {
		for _, run := range where {
			if out, err := run(script); err != nil {
				return fmt.Errorf("%s: %v: %s", script, err, out)
			}
		}
		return nil
	}
	var inHosts, inMembers []func(string) ([]byte, error)
	for _, h := range hosts {
		inHosts = append(inHosts, func(s string) ([]byte, error) { out, err := h.ns.Sh(s); return []byte(out), err })
	}
	for _, p := range paths[:1] {
		for _, e := range []endpoint{p.client, p.server} {
			inMembers = append(inMembers, func(s string) ([]byte, error) { return e.run(ctx, "sh", "-c", s).CombinedOutput() })
		}
	}
	for _, s := range steps {
		if err := sh(s.on, inHosts...); err != nil {
			return fmt.Errorf("breakdown %s: %w", s.name, err)
		}
		if s.member != "" {
			if err := sh(s.member, inMembers...); err != nil {
				return fmt.Errorf("breakdown %s: %w", s.name, err)
			}
		}
		tag := "[" + s.name + "] "
		_, rr, err := rttRounds(ctx, b, w.self, paths, 6, 3000, tag, false)
		if err != nil {
			return err
		}
		_, tr, err := tcpRounds(ctx, b, paths, 6, 4, tag)
		if err != nil {
			return err
		}
		b.Result(tag+"RTT ratio cluster/underlay, median of per-round", medianFloat(rr), "x")
		b.Result(tag+"TCP ratio cluster/underlay, median of per-round", tr, "x")
		if err := sh(s.off, inHosts...); err != nil {
			return fmt.Errorf("breakdown %s, undoing: %w", s.name, err)
		}
		if s.unset != "" {
			if err := sh(s.unset, inMembers...); err != nil {
				return fmt.Errorf("breakdown %s, undoing: %w", s.name, err)
			}
		}
	}
	return nil
}

// tcpListening reports whether pid's network namespace has a TCP socket
// listening on port.
func tcpListening(pid, port int) bool {
	want := fmt.Sprintf(":%04X", port)
	for _, f := range []string{"tcp", "tcp6"} {
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, f))
		for _, l := range strings.Split(string(data), "\n")[1:] {
			fs := strings.Fields(l)
			if len(fs) > 3 && strings.HasSuffix(fs[1], want) && fs[3] == "0A" {
				return true
			}
		}
	}
	return false
}

// clusterStart times a zone member running true on a cluster host and on
// the single host, blocks alternating. Before each run the host's links
// are back to what they were (the previous member's veth is gone).
func clusterStart(ctx context.Context, b *B, w *clWorld, hc, hs *clHost) error {
	const rounds, block, warm = 4, 6, 1
	hosts := []*clHost{hc, hs}
	labels := []string{"member of a cluster zone, cluster host", "member of a local zone, single host"}
	base := make([]int, len(hosts))
	for i, h := range hosts {
		base[i] = linkCount(h.ns)
	}
	times := make([][]time.Duration, len(hosts))
	for round := 0; round < rounds; round++ {
		for i, h := range hosts {
			for k := 0; k < block; k++ {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if !waitFor(ctx, 10*time.Second, func() bool { return linkCount(h.ns) == base[i] }) {
					return fmt.Errorf("%s: links not back to %d after a run: %d", labels[i], base[i], linkCount(h.ns))
				}
				cmd := h.command(filepath.Join(w.bin, "netspawn"), "-q", "-D", w.tree, "-M", "x", "--network-zone="+clZone, "true")
				start := time.Now()
				if out, err := cmd.CombinedOutput(); err != nil {
					return fmt.Errorf("%s: netspawn -M x --network-zone=%s true: %v: %s", labels[i], clZone, err, out)
				}
				if k >= warm {
					times[i] = append(times[i], time.Since(start))
				}
			}
		}
	}
	n := len(times[0])
	b.Logf("netspawn -q -D TREE -M x --network-zone=%s true (busybox tree; a resident member keeps the zone up on each host), median of %d runs in %d alternating blocks, nsenter included", clZone, n, rounds)
	med := []time.Duration{median(times[0]), median(times[1])}
	for i := range hosts {
		b.Result("start: "+labels[i], ms(med[i]), "ms")
	}
	ratio := float64(med[0]) / float64(med[1])
	b.Result("start ratio cluster/single host (goal <= 1.5)", ratio, "x")
	b.Logf("goal start <= 1.5x single host: %s", metOrNot(ratio <= 1.5))
	return nil
}

func linkCount(ns *harness.NetNS) int {
	out, err := ns.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		return -1
	}
	return strings.Count(string(out), "\n")
}

func quantile(d []time.Duration, q float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(q * float64(len(s)))
	if i >= len(s) {
		i = len(s) - 1
	}
	return s[i]
}

func lastLinesOf(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// udpEchoChild answers every datagram on UDPECHO_ADDR with itself; it
// prints "ready" once bound.
func udpEchoChild() error {
	c, err := net.ListenPacket("udp", os.Getenv("UDPECHO_ADDR"))
	if err != nil {
		return err
	}
	fmt.Println("ready")
	buf := make([]byte, 2048)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		if _, err := c.WriteTo(buf[:n], from); err != nil {
			return err
		}
	}
}

// udpPingChild sends UDPPING_WARM then UDPPING_COUNT datagrams to
// UDPPING_TARGET, one at a time, and prints the round trips of the counted
// ones in nanoseconds. A datagram unanswered within a second is lost;
// more than 1% lost is an error.
func udpPingChild() error {
	n, _ := strconv.Atoi(os.Getenv("UDPPING_COUNT"))
	warm, _ := strconv.Atoi(os.Getenv("UDPPING_WARM"))
	c, err := net.Dial("udp", os.Getenv("UDPPING_TARGET"))
	if err != nil {
		return err
	}
	defer c.Close()
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	msg, buf := make([]byte, 32), make([]byte, 2048)
	lost := 0
	for seq := 0; seq < warm+n; seq++ {
		binary.BigEndian.PutUint64(msg, uint64(seq))
		start := time.Now()
		if _, err := c.Write(msg); err != nil {
			return err
		}
		_ = c.SetReadDeadline(start.Add(time.Second))
		for {
			m, err := c.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					lost++
					break
				}
				return err
			}
			if m == len(msg) && binary.BigEndian.Uint64(buf) == uint64(seq) {
				if seq >= warm {
					fmt.Fprintln(out, int64(time.Since(start)))
				}
				break
			}
		}
	}
	if lost > 0 && lost*100 > warm+n {
		return fmt.Errorf("%d of %d datagrams unanswered", lost, warm+n)
	}
	return nil
}
