package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	nsdns "github.com/netspawn/netspawn/dns"
)

// The dns benchmark serves the same 1,000 machine names from netspawn's
// DNS server and from dnsmasq on loopback inside a private network
// namespace, loads both with dnsperf (same query file, same duration),
// then measures glibc lookups per second through libnss_netspawn against
// the same names in an /etc/hosts-style file (see nss.go's half in
// dnsNSSBench).
func init() { register("dns", benchDNS) }

const (
	dnsBenchNames    = 1000
	dnsBenchSeconds  = 5
	dnsBenchRounds   = 3
	dnsBenchClients  = 10
	dnsBenchPort     = 5353
	dnsBenchOurAddr  = "127.0.0.1"
	dnsBenchPeerAddr = "127.0.0.2"
)

// Knobs for experiments: DNSBENCH_READERS (UDP readers of our server),
// DNSBENCH_CPUPROFILE (a CPU profile of our side, pprof format).

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

	zone := nsdns.NewZone()
	var queries, hosts bytes.Buffer
	for i := 0; i < dnsBenchNames; i++ {
		name := fmt.Sprintf("m%04d", i)
		a := dnsBenchAddr(i)
		zone.Set(name, []netip.Addr{a}, "")
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

	readers, _ := strconv.Atoi(os.Getenv("DNSBENCH_READERS"))
	srv, err := nsdns.NewServer(nsdns.Options{Source: zone, NoForward: true, UDPReaders: readers})
	if err != nil {
		return err
	}
	defer srv.Close()
	if err := dnsListenIn(nsPath, srv, netip.AddrPortFrom(netip.MustParseAddr(dnsBenchOurAddr), dnsBenchPort)); err != nil {
		return err
	}

	dm := exec.CommandContext(ctx, "nsenter", "--net="+nsPath, "dnsmasq", "--keep-in-foreground", "--no-daemon",
		"--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--addn-hosts="+hfile,
		"-p", strconv.Itoa(dnsBenchPort), "--listen-address="+dnsBenchPeerAddr, "--bind-interfaces",
		"--pid-file=", "--user=root", "--log-facility=/dev/null")
	if err := dm.Start(); err != nil {
		return fmt.Errorf("dnsmasq: %w", err)
	}
	defer func() { _ = dm.Process.Signal(syscall.SIGTERM); _ = dm.Wait() }()

	run := func(addr string, serverPID int) (qps, lat float64, err error) {
		// Warm up and wait for the server to answer.
		for i := 0; i < 50; i++ {
			out, _ := exec.CommandContext(ctx, "nsenter", "--net="+nsPath, "dig", "+short", "+tries=1", "+time=1",
				"-p", strconv.Itoa(dnsBenchPort), "@"+addr, "m0001."+nsdns.DefaultDomain).Output()
			if strings.TrimSpace(string(out)) == dnsBenchAddr(1).String() {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		before := dnsProcCPU(serverPID)
		perf := exec.CommandContext(ctx, "nsenter", "--net="+nsPath, "dnsperf", "-s", addr,
			"-p", strconv.Itoa(dnsBenchPort), "-d", qfile, "-l", strconv.Itoa(dnsBenchSeconds),
			"-c", strconv.Itoa(dnsBenchClients), "-q", "200")
		out, err := perf.CombinedOutput()
		if err != nil {
			return 0, 0, fmt.Errorf("dnsperf %s: %w\n%s", addr, err, out)
		}
		server := dnsProcCPU(serverPID) - before
		qps, lat, err = dnsperfResult(out)
		if err == nil {
			b.Logf("%s: server used %s CPU (%.2f µs/query), dnsperf %s", addr, server.Round(time.Millisecond),
				float64(server.Microseconds())/(qps*dnsBenchSeconds),
				(perf.ProcessState.UserTime() + perf.ProcessState.SystemTime()).Round(time.Millisecond))
		}
		return qps, lat, err
	}
	if p := os.Getenv("DNSBENCH_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		if err == nil {
			_ = pprof.StartCPUProfile(f)
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
	}
	// Alternate short runs so that load from elsewhere on the machine
	// falls on both servers alike; report the means.
	b.Logf("dnsperf -l %d -c %d -q 200, %d rounds each alternating, %d names, loopback in a private netns",
		dnsBenchSeconds, dnsBenchClients, dnsBenchRounds, dnsBenchNames)
	var peerQPS, peerLat, ourQPS, ourLat float64
	for round := 0; round < dnsBenchRounds; round++ {
		q, l, err := run(dnsBenchPeerAddr, dm.Process.Pid)
		if err != nil {
			return err
		}
		peerQPS, peerLat = peerQPS+q/dnsBenchRounds, peerLat+l/dnsBenchRounds
		q, l, err = run(dnsBenchOurAddr, os.Getpid())
		if err != nil {
			return err
		}
		ourQPS, ourLat = ourQPS+q/dnsBenchRounds, ourLat+l/dnsBenchRounds
	}
	b.Result("dnsmasq queries/s", peerQPS, "qps")
	b.Result("dnsmasq average latency", peerLat*1000, "ms")
	b.Result("netspawn queries/s", ourQPS, "qps")
	b.Result("netspawn average latency", ourLat*1000, "ms")
	b.Result("netspawn/dnsmasq rate ratio (target >= 1.5)", ourQPS/peerQPS, "x")
	b.Result("dnsmasq/netspawn latency ratio (target > 1)", peerLat/ourLat, "x")

	return dnsNSSBench(ctx, b, dir, zone, hfile)
}

// dnsProcCPU returns the user+system CPU time a process has used.
func dnsProcCPU(pid int) time.Duration {
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

// dnsListenIn opens the server's sockets inside the namespace at nsPath:
// on a locked thread that is discarded afterwards.
func dnsListenIn(nsPath string, srv *nsdns.Server, addr netip.AddrPort) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		_, err = srv.Listen(addr)
		errc <- err
	}()
	return <-errc
}
