package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	nsdns "github.com/netspawn/netspawn/dns"
)

// The dns benchmark serves the same 1,000 machine names from netspawn's
// DNS server (the dns package in a helper process) and from dnsmasq on
// loopback inside a private network namespace and loads both with dnsperf
// (same query file, same duration): first with a core for the server and
// the other for dnsperf (taskset), then with the same quarter of a core for
// each server (a cgroup CPU quota), which dnsperf can saturate. Then it
// measures glibc lookups per second through libnss_netspawn against the
// same names in an /etc/hosts-style file (see dnsNSSBench).
func init() {
	register("dns", benchDNS)
	registerChild("dns-server", dnsServerChild)
}

const (
	dnsBenchNames    = 1000
	dnsBenchSeconds  = 5
	dnsBenchRounds   = 3
	dnsBenchClients  = 10
	dnsBenchPort     = 5353
	dnsBenchOurAddr  = "127.0.0.1"
	dnsBenchPeerAddr = "127.0.0.2"
)

// dnsBudgetPercent is the share of one core each server gets in the
// equal-budget rounds.
const dnsBudgetPercent = 25

// Knobs for experiments: DNSBENCH_READERS (UDP readers of our server),
// DNSBENCH_CPUPROFILE (a CPU profile of our server, see dnsServerChild).

func dnsBenchAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 200, byte(i / 250), byte(1 + i%250)})
}

func benchDNS(ctx context.Context, b *B) error {
	for _, tool := range []string{"dnsperf", "dnsmasq", "unshare", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (apt-get install dnsperf dnsmasq util-linux): %w", tool, err)
		}
	}
	dir, err := os.MkdirTemp("", "netspawn-bench-dns-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	zone := dnsBenchZone()
	var queries, hosts bytes.Buffer
	for i := 0; i < dnsBenchNames; i++ {
		name := fmt.Sprintf("m%04d", i)
		a := dnsBenchAddr(i)
		fmt.Fprintf(&queries, "%s.%s A\n", name, nsdns.DefaultDomain)
		fmt.Fprintf(&hosts, "%s %s.%s %s\n", a, name, nsdns.DefaultDomain, name)
	}
	qfile := filepath.Join(dir, "queries")
	hfile := filepath.Join(dir, "hosts")
	if err := os.WriteFile(qfile, queries.Bytes(), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(hfile, hosts.Bytes(), 0o644); err != nil {
		return err
	}

	// The network namespace: held by a sleeping process, loopback up.
	holder := exec.CommandContext(ctx, "unshare", "-n", "sh", "-c", "ip link set lo up && exec sleep 3600")
	if err := holder.Start(); err != nil {
		return fmt.Errorf("unshare -n: %w", err)
	}
	defer func() { _ = holder.Process.Kill(); _ = holder.Wait() }()
	nsPath := fmt.Sprintf("/proc/%d/ns/net", holder.Process.Pid)
	if err := dnsWaitLo(ctx, holder.Process.Pid); err != nil {
		return err
	}

	ours, err := startDNSChild(ctx, nsPath, netip.AddrPortFrom(netip.MustParseAddr(dnsBenchOurAddr), dnsBenchPort))
	if err != nil {
		return err
	}
	defer func() { _ = ours.Process.Signal(syscall.SIGTERM); _ = ours.Wait() }()

	dm := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + nsPath}, pinned(serverCPU, []string{"dnsmasq", "--keep-in-foreground", "--no-daemon",
		"--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--addn-hosts=" + hfile,
		"-p", strconv.Itoa(dnsBenchPort), "--listen-address=" + dnsBenchPeerAddr, "--bind-interfaces",
		"--pid-file=", "--user=root", "--log-facility=/dev/null"})...)...)
	if err := dm.Start(); err != nil {
		return fmt.Errorf("dnsmasq: %w", err)
	}
	defer func() { _ = dm.Process.Signal(syscall.SIGTERM); _ = dm.Wait() }()

	run := func(addr string, serverPID int, tag string) (qps, lat float64, err error) {
		// Warm up and wait for the server to answer.
		for i := 0; i < 50; i++ {
			out, _ := exec.CommandContext(ctx, "nsenter", "--net="+nsPath, "dig", "+short", "+tries=1", "+time=1",
				"-p", strconv.Itoa(dnsBenchPort), "@"+addr, "m0001."+nsdns.DefaultDomain).Output()
			if strings.TrimSpace(string(out)) == dnsBenchAddr(1).String() {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		before := procCPU(serverPID)
		perf := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + nsPath}, pinned(clientCPU, []string{"dnsperf", "-s", addr,
			"-p", strconv.Itoa(dnsBenchPort), "-d", qfile, "-l", strconv.Itoa(dnsBenchSeconds),
			"-c", strconv.Itoa(dnsBenchClients), "-q", "200"})...)...)
		out, err := perf.CombinedOutput()
		if err != nil {
			return 0, 0, fmt.Errorf("dnsperf %s: %w\n%s", addr, err, out)
		}
		server := procCPU(serverPID) - before
		qps, lat, err = dnsperfResult(out)
		if err == nil {
			b.Logf("%s%s: %.0f qps, server used %s CPU (%.2f µs/query), dnsperf %s", addr, tag, qps, server.Round(time.Millisecond),
				float64(server.Microseconds())/(qps*dnsBenchSeconds),
				(perf.ProcessState.UserTime() + perf.ProcessState.SystemTime()).Round(time.Millisecond))
		}
		return qps, lat, err
	}
	// Alternate short runs so that load from elsewhere on the machine
	// falls on both servers alike; report the means.
	rounds := func(tag string) (peerQPS, peerLat, ourQPS, ourLat float64, err error) {
		for round := 0; round < dnsBenchRounds; round++ {
			q, l, err := run(dnsBenchPeerAddr, dm.Process.Pid, tag)
			if err != nil {
				return 0, 0, 0, 0, err
			}
			peerQPS, peerLat = peerQPS+q/dnsBenchRounds, peerLat+l/dnsBenchRounds
			q, l, err = run(dnsBenchOurAddr, ours.Process.Pid, tag)
			if err != nil {
				return 0, 0, 0, 0, err
			}
			ourQPS, ourLat = ourQPS+q/dnsBenchRounds, ourLat+l/dnsBenchRounds
		}
		return
	}
	b.Logf("dnsperf -l %d -c %d -q 200, %d rounds each alternating, %d names, loopback in a private netns",
		dnsBenchSeconds, dnsBenchClients, dnsBenchRounds, dnsBenchNames)
	peerQPS, peerLat, ourQPS, ourLat, err := rounds(", a core each")
	if err != nil {
		return err
	}
	budget, err := newCPUBudget(dnsBudgetPercent)
	if err != nil {
		return err
	}
	defer budget.close()
	for _, pid := range []int{dm.Process.Pid, ours.Process.Pid} {
		if err := budget.add(pid); err != nil {
			return err
		}
	}
	tag := fmt.Sprintf(", %d%% of a core each", dnsBudgetPercent)
	cPeerQPS, cPeerLat, cOurQPS, cOurLat, err := rounds(tag)
	if err != nil {
		return err
	}
	b.Result("dnsmasq queries/s, a core each", peerQPS, "qps")
	b.Result("dnsmasq average latency, a core each", peerLat*1000, "ms")
	b.Result("netspawn queries/s, a core each", ourQPS, "qps")
	b.Result("netspawn average latency, a core each", ourLat*1000, "ms")
	b.Result("netspawn/dnsmasq rate ratio, a core each", ourQPS/peerQPS, "x")
	b.Result("dnsmasq/netspawn latency ratio, a core each (target > 1)", peerLat/ourLat, "x")
	b.Result("dnsmasq queries/s"+tag, cPeerQPS, "qps")
	b.Result("dnsmasq average latency"+tag, cPeerLat*1000, "ms")
	b.Result("netspawn queries/s"+tag, cOurQPS, "qps")
	b.Result("netspawn average latency"+tag, cOurLat*1000, "ms")
	b.Result("netspawn/dnsmasq rate ratio"+tag+" (target >= 1.5)", cOurQPS/cPeerQPS, "x")
	b.Result("dnsmasq/netspawn latency ratio"+tag+" (target > 1)", cPeerLat/cOurLat, "x")

	return dnsNSSBench(ctx, b, dir, zone, hfile)
}

// procCPU returns the user+system CPU time a process has used.
func procCPU(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// dnsperfResult reads qps and average latency (seconds) from dnsperf.
func dnsperfResult(out []byte) (qps, lat float64, err error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		line := sc.Text()
		switch {
		case strings.Contains(line, "Queries per second:") && len(f) >= 4:
			qps, _ = strconv.ParseFloat(f[3], 64)
		case strings.Contains(line, "Average Latency (s):") && len(f) >= 4:
			lat, _ = strconv.ParseFloat(f[3], 64)
		}
	}
	if qps == 0 || lat == 0 {
		return 0, 0, fmt.Errorf("dnsperf output not understood:\n%s", out)
	}
	return qps, lat, nil
}

func dnsWaitLo(ctx context.Context, pid int) error {
	for i := 0; i < 100; i++ {
		out, _ := exec.CommandContext(ctx, "nsenter", fmt.Sprintf("--net=/proc/%d/ns/net", pid), "ip", "-o", "link", "show", "lo").Output()
		if strings.Contains(string(out), "UP") {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("loopback did not come up in the benchmark namespace")
}

// dnsBenchZone holds the benchmark's machine names.
func dnsBenchZone() *nsdns.Zone {
	zone := nsdns.NewZone()
	for i := 0; i < dnsBenchNames; i++ {
		zone.Set(fmt.Sprintf("m%04d", i), []netip.Addr{dnsBenchAddr(i)}, "")
	}
	return zone
}

// startDNSChild runs our DNS server in a helper process in the namespace
// at nsPath, on the server CPU, and waits until it serves.
func startDNSChild(ctx context.Context, nsPath string, addr netip.AddrPort, env ...string) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + nsPath}, pinned(serverCPU, []string{self})...)...)
	cmd.Env = append(os.Environ(), "NETSPAWN_BENCH_CHILD=dns-server", "NETSPAWN_BENCH_DNS_ADDR="+addr.String())
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("dns server child: %w", err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("dns server child did not start (%q): %v", line, err)
	}
	return cmd, nil
}

// dnsServerChild is the helper process: the dns package's server with the
// benchmark's names on NETSPAWN_BENCH_DNS_ADDR until SIGTERM. With
// NETSPAWN_BENCH_DNS_UPSTREAM it forwards other names there (default cache
// and forward cap); without, it forwards nothing. DNSBENCH_CPUPROFILE=FILE
// writes a CPU profile of its whole life (go tool pprof FILE).
func dnsServerChild() error {
	addr, err := netip.ParseAddrPort(os.Getenv("NETSPAWN_BENCH_DNS_ADDR"))
	if err != nil {
		return fmt.Errorf("NETSPAWN_BENCH_DNS_ADDR: %w", err)
	}
	readers, _ := strconv.Atoi(os.Getenv("DNSBENCH_READERS"))
	opts := nsdns.Options{Source: dnsBenchZone(), NoForward: true, UDPReaders: readers}
	if up := os.Getenv("NETSPAWN_BENCH_DNS_UPSTREAM"); up != "" {
		u, err := netip.ParseAddrPort(up)
		if err != nil {
			return fmt.Errorf("NETSPAWN_BENCH_DNS_UPSTREAM: %w", err)
		}
		opts.NoForward, opts.Upstreams = false, []netip.AddrPort{u}
	}
	if path := os.Getenv("DNSBENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	srv, err := nsdns.NewServer(opts)
	if err != nil {
		return err
	}
	defer srv.Close()
	if _, err := srv.Listen(addr); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	fmt.Println("ready")
	<-ctx.Done()
	return nil
}
