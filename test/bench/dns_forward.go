package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// The dns-forward benchmark measures what containers mostly ask: names
// outside, which both servers forward to one upstream resolver and cache.
// netspawn's server (the dns package in a helper process, default cache of
// 10,000 answers and forward cap of 150) and dnsmasq (--cache-size=10000
// --dns-forward-max=150 --use-stale-cache) run side by side on loopback
// in a namespace of their own and forward to an upstream (a helper process
// of this binary on miekg/dns) in another network namespace, joined by a
// veth pair, which answers every name after 20 ms and counts the queries
// and the most in flight at once for each name. Three rounds, each first
// with a core per server (dnsperf on the other) and then with the same
// quarter of a core per server (a cgroup CPU quota), as in the dns
// benchmark:
//
//  1. cached: 1,000 names asked once (warm-up), then served from cache
//     under dnsperf, alternating rounds;
//  2. cold: 1,000 new names per round, each asked three times within a
//     few milliseconds (blocks of 50 names, three passes): the rate, how
//     many queries per name reached the upstream and the most in flight
//     at once per name; then a check that a cached answer's TTL is
//     lowered by the time it spent in the cache;
//  3. upstream silent: 1,000 names cached with TTL 2 s, left to expire,
//     the upstream told to drop every query, then dnsperf with the
//     client timeout 5 s: the rate, the longest wait, queries lost and the
//     TTL of the stale answers.
//
// DNSBENCH_FWD_ROUNDS=cached,cold,silent picks rounds (for experiments;
// the warm-up always runs). DNSBENCH_CPUPROFILE=FILE profiles our server.
func init() {
	register("dns-forward", benchDNSForward)
	registerChild("dns-upstream", dnsUpstreamChild)
}

const (
	fwdOurAddr      = "127.0.0.3"
	fwdPeerAddr     = "127.0.0.4"
	fwdHostSide     = "10.53.0.1/30"
	fwdUpstreamSide = "10.53.0.2/30"
	fwdUpstream     = "10.53.0.2:53"
	fwdDelay        = 20 * time.Millisecond
	fwdNames        = 1000
	fwdBlock        = 50 // cold round: names per block, asked three times
	fwdRepeat       = 3
	fwdOutstanding  = 100 // dnsperf -q: under both servers' cap of 150
	fwdLongTTL      = 3600
	fwdStaleTTL     = 2
	fwdClientWait   = 5 // dnsperf -t and dig +time: a glibc client's timeout
)

// fwdServer is one side of the comparison.
type fwdServer struct {
	label string // "netspawn", "dnsmasq"
	tag   string // in query names: "ns", "dm"
	addr  string
	pid   int
}

type fwdEnv struct {
	b      *B
	ctx    context.Context
	dir    string
	nsPath string // the servers' (and dnsperf's) network namespace
	up     *upstreamCtl
}

func benchDNSForward(ctx context.Context, b *B) error {
	for _, tool := range []string{"dnsperf", "dnsmasq", "dig", "unshare", "nsenter", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (apt-get install dnsperf dnsmasq bind9-dnsutils util-linux iproute2): %w", tool, err)
		}
	}
	dir, err := os.MkdirTemp("", "netspawn-bench-dnsfwd-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// Two network namespaces, each held by a sleeping process: the
	// servers' and the upstream's, joined by a veth pair.
	var holders []*exec.Cmd
	defer func() {
		for _, h := range holders {
			_ = h.Process.Kill()
			_ = h.Wait()
		}
	}()
	hold := func() (string, error) {
		h := exec.CommandContext(ctx, "unshare", "-n", "sh", "-c", "ip link set lo up && exec sleep 3600")
		if err := h.Start(); err != nil {
			return "", fmt.Errorf("unshare -n: %w", err)
		}
		holders = append(holders, h)
		if err := dnsWaitLo(ctx, h.Process.Pid); err != nil {
			return "", err
		}
		return fmt.Sprintf("/proc/%d/ns/net", h.Process.Pid), nil
	}
	srvNS, err := hold()
	if err != nil {
		return err
	}
	upNS, err := hold()
	if err != nil {
		return err
	}
	sh := func(ns, script string) error {
		out, err := exec.CommandContext(ctx, "nsenter", "--net="+ns, "sh", "-ec", script).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w: %s", script, err, out)
		}
		return nil
	}
	// The veth pair dies with the namespaces.
	if err := sh(srvNS, fmt.Sprintf("ip link add fwd0 type veth peer name fwd1 netns %d && ip addr add %s dev fwd0 && ip link set fwd0 up",
		holders[1].Process.Pid, fwdHostSide)); err != nil {
		return err
	}
	if err := sh(upNS, fmt.Sprintf("ip addr add %s dev fwd1 && ip link set fwd1 up", fwdUpstreamSide)); err != nil {
		return err
	}

	up, err := startUpstream(ctx, upNS)
	if err != nil {
		return err
	}
	defer up.close()

	ours, err := startDNSChild(ctx, srvNS, netip.AddrPortFrom(netip.MustParseAddr(fwdOurAddr), dnsBenchPort),
		"NETSPAWN_BENCH_DNS_UPSTREAM="+fwdUpstream)
	if err != nil {
		return err
	}
	defer func() { _ = ours.Process.Signal(syscall.SIGTERM); _ = ours.Wait() }()
	upHost, _, _ := net.SplitHostPort(fwdUpstream)
	dm := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + srvNS}, pinned(serverCPU, []string{"dnsmasq", "--keep-in-foreground", "--no-daemon",
		"--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--server=" + upHost,
		"--cache-size=10000", "--dns-forward-max=150", "--use-stale-cache=86400",
		"-p", strconv.Itoa(dnsBenchPort), "--listen-address=" + fwdPeerAddr, "--bind-interfaces",
		"--pid-file=", "--user=root", "--log-facility=/dev/null"})...)...)
	if err := dm.Start(); err != nil {
		return fmt.Errorf("dnsmasq: %w", err)
	}
	defer func() { _ = dm.Process.Signal(syscall.SIGTERM); _ = dm.Wait() }()

	e := &fwdEnv{b: b, ctx: ctx, dir: dir, nsPath: srvNS, up: up}
	servers := []*fwdServer{
		{label: "dnsmasq", tag: "dm", addr: fwdPeerAddr, pid: dm.Process.Pid},
		{label: "netspawn", tag: "ns", addr: fwdOurAddr, pid: ours.Process.Pid},
	}
	for _, s := range servers {
		if err := e.waitServing(s); err != nil {
			return err
		}
	}
	b.Logf("upstream in another netns answers after %s; dnsperf -c %d -q %d; %d names; cache 10,000 and forward cap 150 on both sides; load %s",
		fwdDelay, dnsBenchClients, fwdOutstanding, fwdNames, loadavg())

	// Round 1's names are asked once before any measurement.
	for _, s := range servers {
		if err := e.warmCached(s); err != nil {
			return err
		}
	}
	if err := e.phase("a core each", servers); err != nil {
		return err
	}
	budget, err := newCPUBudget(dnsBudgetPercent)
	if err != nil {
		return err
	}
	defer budget.close()
	for _, s := range servers {
		if err := budget.add(s.pid); err != nil {
			return err
		}
	}
	return e.phase(fmt.Sprintf("%d%% of a core each", dnsBudgetPercent), servers)
}

// waitServing waits until s answers a forwarded name.
func (e *fwdEnv) waitServing(s *fwdServer) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, _, err := e.dig(s, "ready."+s.tag+".probe.example."); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("%s does not answer forwarded names: %w", s.label, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func cachedName(tag string, i int) string { return fmt.Sprintf("c%04d.%s.cached.example.", i, tag) }

// warmCached asks round 1's names once.
func (e *fwdEnv) warmCached(s *fwdServer) error {
	var q bytes.Buffer
	for i := 0; i < fwdNames; i++ {
		fmt.Fprintf(&q, "%s A\n", cachedName(s.tag, i))
	}
	r, err := e.dnsperf(s, "warm-"+s.tag, q.Bytes(), "-n", "1")
	if err != nil {
		return err
	}
	st, err := e.up.stats("." + s.tag + ".cached.example.")
	if err != nil {
		return err
	}
	e.b.Logf("%s warm-up: %d of %d answered (%s), upstream saw %d queries for %d names", s.label,
		r.completed, r.sent, r.rcodes, st.queries, st.names)
	if r.completed != r.sent || st.names != fwdNames {
		return fmt.Errorf("%s: warm-up incomplete (%d of %d answered, upstream saw %d names)", s.label, r.completed, r.sent, st.names)
	}
	return nil
}

// phase runs the three rounds under the current CPU budget.
func (e *fwdEnv) phase(budget string, servers []*fwdServer) error {
	rounds := os.Getenv("DNSBENCH_FWD_ROUNDS")
	want := func(r string) bool { return rounds == "" || strings.Contains(rounds, r) }

	if want("cached") {
		if err := e.cachedRound(budget, servers); err != nil {
			return err
		}
	}
	if want("cold") {
		if err := e.coldRound(budget, servers); err != nil {
			return err
		}
	}
	if want("silent") {
		return e.silentRound(budget, servers)
	}
	return nil
}

func (e *fwdEnv) cachedRound(budget string, servers []*fwdServer) error {
	b := e.b
	before := map[string]int{}
	for _, s := range servers {
		st, err := e.up.stats("." + s.tag + ".cached.example.")
		if err != nil {
			return err
		}
		before[s.tag] = st.queries
	}
	var qps, lat [2]float64
	var cpu [2]time.Duration
	for round := 0; round < dnsBenchRounds; round++ {
		for i, s := range servers {
			var q bytes.Buffer
			for n := 0; n < fwdNames; n++ {
				fmt.Fprintf(&q, "%s A\n", cachedName(s.tag, n))
			}
			c0 := procCPU(s.pid)
			r, err := e.dnsperf(s, "cached", q.Bytes(), "-l", strconv.Itoa(dnsBenchSeconds))
			if err != nil {
				return err
			}
			used := procCPU(s.pid) - c0
			b.Logf("cached, %s: %s %.0f qps, %.3f ms average, %s, server CPU %.2f µs/query", budget, s.label, r.qps, r.avg*1000, r.rcodes,
				float64(used.Microseconds())/float64(max(r.completed, 1)))
			qps[i] += r.qps / dnsBenchRounds
			lat[i] += r.avg / dnsBenchRounds
			cpu[i] += used
		}
	}
	for _, s := range servers {
		st, err := e.up.stats("." + s.tag + ".cached.example.")
		if err != nil {
			return err
		}
		b.Logf("cached, %s: upstream queries for %s's names during the rounds: %d", budget, s.label, st.queries-before[s.tag])
	}
	b.Result("cached: dnsmasq queries/s, "+budget, qps[0], "qps")
	b.Result("cached: netspawn queries/s, "+budget, qps[1], "qps")
	b.Result("cached: dnsmasq average latency, "+budget, lat[0]*1000, "ms")
	b.Result("cached: netspawn average latency, "+budget, lat[1]*1000, "ms")
	b.Result("cached: netspawn/dnsmasq rate, "+budget+" (goal >= 1.5)", qps[1]/qps[0], "x")
	b.Result("cached: dnsmasq/netspawn latency, "+budget+" (goal > 1)", lat[0]/lat[1], "x")

	return nil
}

func phaseTag(budget string) string {
	if strings.Contains(budget, "%") {
		return "p2"
	}
	return "p1"
}

func (e *fwdEnv) coldRound(budget string, servers []*fwdServer) error {
	b := e.b
	dm, ours := servers[0], servers[1]
	var qps, lat [2]float64
	phaseTag := phaseTag(budget)
	for round := 0; round < dnsBenchRounds; round++ {
		for i, s := range servers {
			zone := fmt.Sprintf(".%s%d.%s.cold.example.", phaseTag, round, s.tag)
			var q bytes.Buffer
			for blk := 0; blk < fwdNames; blk += fwdBlock {
				for rep := 0; rep < fwdRepeat; rep++ {
					for n := blk; n < blk+fwdBlock && n < fwdNames; n++ {
						fmt.Fprintf(&q, "k%04d%s A\n", n, zone)
					}
				}
			}
			r, err := e.dnsperf(s, "cold", q.Bytes(), "-n", "1")
			if err != nil {
				return err
			}
			st, err := e.up.stats(zone)
			if err != nil {
				return err
			}
			b.Logf("cold, %s: %s %.0f qps, %.2f ms average (max %.1f ms), %d of %d answered (%s); upstream: %d queries for %d names, %d names asked more than once, at most %d in flight for one name",
				budget, s.label, r.qps, r.avg*1000, r.max*1000, r.completed, r.sent, r.rcodes, st.queries, st.names, st.multi, st.maxInflight)
			qps[i] += r.qps / dnsBenchRounds
			lat[i] += r.avg / dnsBenchRounds
			if i == 1 {
				b.Result(fmt.Sprintf("cold: netspawn upstream queries per name, round %d, %s", round+1, budget), float64(st.queries)/float64(max(st.names, 1)), "")
				b.Result(fmt.Sprintf("cold: netspawn most in flight for one name, round %d, %s (goal 1)", round+1, budget), float64(st.maxInflight), "")
			} else {
				b.Result(fmt.Sprintf("cold: dnsmasq upstream queries per name, round %d, %s", round+1, budget), float64(st.queries)/float64(max(st.names, 1)), "")
				b.Result(fmt.Sprintf("cold: dnsmasq most in flight for one name, round %d, %s", round+1, budget), float64(st.maxInflight), "")
			}
		}
	}
	b.Result("cold: dnsmasq queries/s, "+budget, qps[0], "qps")
	b.Result("cold: netspawn queries/s, "+budget, qps[1], "qps")
	b.Result("cold: dnsmasq average latency, "+budget, lat[0]*1000, "ms")
	b.Result("cold: netspawn average latency, "+budget, lat[1]*1000, "ms")
	b.Result("cold: netspawn/dnsmasq rate, "+budget+" (goal >= 1)", qps[1]/qps[0], "x")

	// TTL decay: one name asked, then again after 2 s or more.
	for _, s := range []*fwdServer{dm, ours} {
		name := fmt.Sprintf("ttl.%s.%s.cold.example.", phaseTag, s.tag)
		ttl1, t1, err := e.dig(s, name)
		if err != nil {
			return err
		}
		time.Sleep(2200 * time.Millisecond) // the elapsed time is the measurement
		ttl2, t2, err := e.dig(s, name)
		if err != nil {
			return err
		}
		elapsed := t2.Sub(t1)
		want := fwdLongTTL - int(elapsed/time.Second)
		ok := ttl1 == fwdLongTTL && math.Abs(float64(ttl2-want)) <= 1
		b.Logf("TTL decay, %s: %s: TTL %d, %.2f s later %d (expected %d±1): %s", budget, s.label, ttl1, elapsed.Seconds(), ttl2, want, passFail(ok))
	}

	return nil
}

func (e *fwdEnv) silentRound(budget string, servers []*fwdServer) error {
	b := e.b
	phaseTag := phaseTag(budget)
	for _, s := range servers {
		zone := fmt.Sprintf(".%s.%s.stale.example.", phaseTag, s.tag)
		var q bytes.Buffer
		for n := 0; n < fwdNames; n++ {
			fmt.Fprintf(&q, "s%04d%s A\n", n, zone)
		}
		if _, err := e.dnsperf(s, "stale-warm", q.Bytes(), "-n", "1"); err != nil {
			return err
		}
		time.Sleep((fwdStaleTTL + 1) * time.Second) // let every answer expire
		if err := e.up.silent(true); err != nil {
			return err
		}
		asked := time.Now()
		ttl, answered, err := e.dig(s, "s0000"+zone)
		if err != nil {
			_ = e.up.silent(false)
			return fmt.Errorf("%s, upstream silent: %w", s.label, err)
		}
		b.Logf("upstream silent, %s: %s: first stale answer after %.0f ms (dig included) with TTL %d", budget, s.label, answered.Sub(asked).Seconds()*1000, ttl)
		r, err := e.dnsperf(s, "stale", q.Bytes(), "-l", strconv.Itoa(dnsBenchSeconds))
		if serr := e.up.silent(false); err == nil {
			err = serr
		}
		if err != nil {
			return err
		}
		b.Logf("upstream silent, %s: %s %.0f qps, %.3f ms average, longest %.1f ms (client timeout %d s), %d of %d answered, %d lost (%s): %s",
			budget, s.label, r.qps, r.avg*1000, r.max*1000, fwdClientWait, r.completed, r.sent, r.lost, r.rcodes,
			passFail(r.lost == 0 && r.max < fwdClientWait && strings.HasPrefix(r.rcodes, "NOERROR") && !strings.Contains(r.rcodes, ",")))
		b.Result(fmt.Sprintf("upstream silent: %s queries/s, %s", s.label, budget), r.qps, "qps")
		b.Result(fmt.Sprintf("upstream silent: %s longest wait, %s", s.label, budget), r.max*1000, "ms")
	}
	return nil
}

func passFail(ok bool) string {
	if ok {
		return "ok"
	}
	return "FAILED"
}

// dig asks s for name's A record and returns the answer's TTL and when the
// answer arrived.
func (e *fwdEnv) dig(s *fwdServer, name string) (int, time.Time, error) {
	out, err := exec.CommandContext(e.ctx, "nsenter", "--net="+e.nsPath, "dig", "+tries=1", fmt.Sprintf("+time=%d", fwdClientWait),
		"+noall", "+answer", "-p", strconv.Itoa(dnsBenchPort), "@"+s.addr, name, "A").Output()
	at := time.Now()
	if err != nil {
		return 0, at, fmt.Errorf("dig %s @%s: %w", name, s.addr, err)
	}
	f := strings.Fields(string(out))
	if len(f) < 5 || f[3] != "A" {
		return 0, at, fmt.Errorf("dig %s @%s: no A record in %q", name, s.addr, out)
	}
	ttl, err := strconv.Atoi(f[1])
	if err != nil {
		return 0, at, fmt.Errorf("dig %s @%s: TTL %q", name, s.addr, f[1])
	}
	return ttl, at, nil
}

type dnsperfRun struct {
	qps, avg, max         float64 // latencies in seconds
	sent, completed, lost int
	rcodes                string
}

var (
	perfInt   = regexp.MustCompile(`Queries (sent|completed|lost):\s+(\d+)`)
	perfCodes = regexp.MustCompile(`Response codes:\s+(.*)`)
	perfLat   = regexp.MustCompile(`Average Latency \(s\):\s+([0-9.]+)\s+\(min [0-9.]+, max ([0-9.]+)\)`)
	perfQPS   = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)
)

// dnsperf runs dnsperf against s with the queries in q (a query file).
func (e *fwdEnv) dnsperf(s *fwdServer, what string, q []byte, extra ...string) (dnsperfRun, error) {
	file := filepath.Join(e.dir, what+"-"+s.tag)
	if err := os.WriteFile(file, q, 0o644); err != nil {
		return dnsperfRun{}, err
	}
	args := []string{"dnsperf", "-s", s.addr, "-p", strconv.Itoa(dnsBenchPort), "-d", file,
		"-c", strconv.Itoa(dnsBenchClients), "-q", strconv.Itoa(fwdOutstanding), "-t", strconv.Itoa(fwdClientWait)}
	args = append(args, extra...)
	out, err := exec.CommandContext(e.ctx, "nsenter", append([]string{"--net=" + e.nsPath}, pinned(clientCPU, args)...)...).CombinedOutput()
	if err != nil {
		return dnsperfRun{}, fmt.Errorf("dnsperf %s %s: %w\n%s", what, s.label, err, out)
	}
	var r dnsperfRun
	for _, m := range perfInt.FindAllSubmatch(out, -1) {
		n, _ := strconv.Atoi(string(m[2]))
		switch string(m[1]) {
		case "sent":
			r.sent = n
		case "completed":
			r.completed = n
		case "lost":
			r.lost = n
		}
	}
	if m := perfCodes.FindSubmatch(out); m != nil {
		r.rcodes = strings.TrimSpace(string(m[1]))
	}
	if m := perfLat.FindSubmatch(out); m != nil {
		r.avg, _ = strconv.ParseFloat(string(m[1]), 64)
		r.max, _ = strconv.ParseFloat(string(m[2]), 64)
	}
	if m := perfQPS.FindSubmatch(out); m != nil {
		r.qps, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	if r.sent == 0 || r.qps == 0 {
		return r, fmt.Errorf("dnsperf %s %s: output not understood:\n%s", what, s.label, out)
	}
	return r, nil
}

// upstreamCtl talks to the upstream helper over its stdin and stdout.
type upstreamCtl struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
	mu  sync.Mutex
}

type upstreamStats struct {
	names, queries, multi, maxInflight int
}

func startUpstream(ctx context.Context, nsPath string) (*upstreamCtl, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + nsPath}, pinned(clientCPU, []string{self})...)...)
	cmd.Env = append(os.Environ(), "NETSPAWN_BENCH_CHILD=dns-upstream", "NETSPAWN_BENCH_UPSTREAM_ADDR="+fwdUpstream,
		"NETSPAWN_BENCH_UPSTREAM_DELAY="+fwdDelay.String())
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	u := &upstreamCtl{cmd: cmd, in: in, out: bufio.NewReader(out)}
	line, err := u.out.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		u.close()
		return nil, fmt.Errorf("upstream did not start (%q): %v", line, err)
	}
	return u, nil
}

func (u *upstreamCtl) call(cmd string) (string, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, err := fmt.Fprintln(u.in, cmd); err != nil {
		return "", fmt.Errorf("upstream %s: %w", cmd, err)
	}
	line, err := u.out.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("upstream %s: %w", cmd, err)
	}
	return strings.TrimSpace(line), nil
}

func (u *upstreamCtl) stats(suffix string) (upstreamStats, error) {
	line, err := u.call("stats " + suffix)
	if err != nil {
		return upstreamStats{}, err
	}
	var st upstreamStats
	if _, err := fmt.Sscanf(line, "names=%d queries=%d multi=%d maxinflight=%d", &st.names, &st.queries, &st.multi, &st.maxInflight); err != nil {
		return st, fmt.Errorf("upstream stats %q: %w", line, err)
	}
	return st, nil
}

func (u *upstreamCtl) silent(on bool) error {
	line, err := u.call(fmt.Sprintf("silent %t", on))
	if err == nil && line != "ok" {
		err = fmt.Errorf("upstream silent: %q", line)
	}
	return err
}

func (u *upstreamCtl) close() {
	_ = u.in.Close() // the helper exits at the end of its input
	_ = u.cmd.Wait()
}

// dnsUpstreamChild is the upstream resolver of the dns-forward benchmark:
// it answers every A question after NETSPAWN_BENCH_UPSTREAM_DELAY with an
// address (TTL 2 s under stale.example., else 1 h), counts queries and the
// most in flight at once per name, and takes commands on stdin, one a line:
// "stats SUFFIX" prints the counters of the names ending in SUFFIX;
// "silent true|false" makes it drop every query (still counted) or answer
// again. It exits at the end of its input.
func dnsUpstreamChild() error {
	addr := os.Getenv("NETSPAWN_BENCH_UPSTREAM_ADDR")
	delay, err := time.ParseDuration(os.Getenv("NETSPAWN_BENCH_UPSTREAM_DELAY"))
	if err != nil {
		return fmt.Errorf("NETSPAWN_BENCH_UPSTREAM_DELAY: %w", err)
	}
	type nameStat struct{ queries, inflight, maxInflight int }
	var (
		mu     sync.Mutex
		names  = map[string]*nameStat{}
		silent atomic.Bool
	)
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		if len(r.Question) != 1 {
			return
		}
		q := r.Question[0]
		name := strings.ToLower(q.Name)
		mu.Lock()
		st := names[name]
		if st == nil {
			st = &nameStat{}
			names[name] = st
		}
		st.queries++
		st.inflight++
		st.maxInflight = max(st.maxInflight, st.inflight)
		mu.Unlock()
		defer func() {
			mu.Lock()
			st.inflight--
			mu.Unlock()
		}()
		if silent.Load() {
			return
		}
		time.Sleep(delay) // the upstream's answer time being simulated
		m := new(dns.Msg)
		m.SetReply(r)
		m.RecursionAvailable = true
		if q.Qtype == dns.TypeA && q.Qclass == dns.ClassINET {
			ttl := uint32(fwdLongTTL)
			if strings.HasSuffix(name, ".stale.example.") {
				ttl = fwdStaleTTL
			}
			h := uint32(len(name))*2654435761 + uint32(name[0])
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl},
				A:   net.IPv4(198, 51, byte(h>>8), byte(h)),
			})
		}
		if opt := r.IsEdns0(); opt != nil {
			m.SetEdns0(1232, opt.Do())
		}
		_ = w.WriteMsg(m)
	})
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		return fmt.Errorf("upstream listen %s: %w", addr, err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: handler}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	served := make(chan error, 1)
	go func() { served <- srv.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-served:
		return fmt.Errorf("upstream: %w", err)
	}
	defer func() { _ = srv.Shutdown() }()
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "stats":
			var sum upstreamStats
			mu.Lock()
			for n, st := range names {
				if !strings.HasSuffix(n, f[1]) {
					continue
				}
				sum.names++
				sum.queries += st.queries
				if st.queries > 1 {
					sum.multi++
				}
				sum.maxInflight = max(sum.maxInflight, st.maxInflight)
			}
			mu.Unlock()
			fmt.Printf("names=%d queries=%d multi=%d maxinflight=%d\n", sum.names, sum.queries, sum.multi, sum.maxInflight)
		case len(f) == 2 && f[0] == "silent":
			on, err := strconv.ParseBool(f[1])
			if err != nil {
				fmt.Println("bad value")
				continue
			}
			silent.Store(on)
			fmt.Println("ok")
		default:
			fmt.Println("unknown command")
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("upstream commands: %w", err)
	}
	return nil
}
