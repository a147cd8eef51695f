// Command dhcptestd runs the dhcp package's server on one link, for the
// end-to-end tests and the benchmark (run it inside a test network
// namespace). It prints "ready" on stdout once the link is served.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/netspawn/netspawn/dhcp"
	"github.com/netspawn/netspawn/dhcp/lease"
	"github.com/netspawn/netspawn/dhcp/leasestore"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "dhcptestd:", err)
		os.Exit(1)
	}
}

func addrs(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, f := range strings.Split(s, ",") {
		if f == "" {
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

func run() error {
	var (
		state    = flag.String("state", "", "lease store directory")
		link     = flag.String("link", "", "interface to serve")
		subnet   = flag.String("subnet", "", "subnet prefix")
		server   = flag.String("server", "", "server address on the link")
		pool     = flag.String("pool", "", "START-END dynamic range")
		routers  = flag.String("router", "", "routers, comma separated")
		dns      = flag.String("dns", "", "DNS servers, comma separated")
		domain   = flag.String("domain", "", "domain name")
		search   = flag.String("search", "", "search domains, comma separated")
		mtu      = flag.Int("mtu", 0, "interface MTU option")
		leaseDur = flag.Duration("lease-time", time.Hour, "lease time")
		prefill  = flag.Int("prefill", 0, "write this many bound leases into the store before starting (benchmark)")
		verbose  = flag.Bool("v", false, "log every lease")
		debug    = flag.Bool("debug", false, "log every packet")
		cpuprof  = flag.String("cpuprofile", "", "write a CPU profile here")
		workers  = flag.Int("workers", 0, "goroutines reading the link (0: the server's default)")
		reserves multi
	)
	flag.Var(&reserves, "reserve", "MAC=IP[=HOSTNAME], repeatable")
	flag.Parse()
	cfg := dhcp.LinkConfig{Name: *link, Domain: *domain, MTU: *mtu, LeaseTime: *leaseDur}
	var err error
	if cfg.Subnet, err = netip.ParsePrefix(*subnet); err != nil {
		return err
	}
	if cfg.ServerIP, err = netip.ParseAddr(*server); err != nil {
		return err
	}
	if *pool != "" {
		a, b, ok := strings.Cut(*pool, "-")
		if !ok {
			return fmt.Errorf("bad -pool %q", *pool)
		}
		if cfg.PoolStart, err = netip.ParseAddr(a); err != nil {
			return err
		}
		if cfg.PoolEnd, err = netip.ParseAddr(b); err != nil {
			return err
		}
	}
	if cfg.Routers, err = addrs(*routers); err != nil {
		return err
	}
	if cfg.DNS, err = addrs(*dns); err != nil {
		return err
	}
	if *search != "" {
		cfg.Search = strings.Split(*search, ",")
	}
	if *prefill > 0 {
		if err := prefillStore(*state, cfg, *prefill, *leaseDur); err != nil {
			return err
		}
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	heap0 := heapInuse()
	opts := dhcp.Options{StateDir: *state, Logger: log, Workers: *workers}
	if *verbose {
		opts.OnLease = func(l dhcp.Lease) {
			log.Info("lease", "ip", l.IP, "mac", l.MAC.String(), "state", l.State, "host", l.Hostname)
		}
	}
	s, err := dhcp.New(opts)
	if err != nil {
		return err
	}
	if err := s.AddLink(cfg); err != nil {
		s.Close()
		return err
	}
	for _, r := range reserves {
		f := strings.SplitN(r, "=", 3)
		if len(f) < 2 {
			return fmt.Errorf("bad -reserve %q", r)
		}
		mac, err := net.ParseMAC(f[0])
		if err != nil {
			return err
		}
		ip, err := netip.ParseAddr(f[1])
		if err != nil {
			return err
		}
		host := ""
		if len(f) == 3 {
			host = f[2]
		}
		if err := s.Reserve(cfg.Name, mac, ip, host); err != nil {
			return err
		}
	}
	if *prefill > 0 {
		// What the leases cost in memory: the lease table and the store's
		// live set, both loaded from the log by New and AddLink.
		d := int64(heapInuse()) - int64(heap0)
		fmt.Printf("leases %d heap %d bytes %.0f bytes/lease\n", *prefill, d, float64(d)/float64(*prefill))
	}
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	g0 := readGC()
	fmt.Println("ready")
	err = s.Run(ctx)
	printStats(s.Stats(), readGC().since(g0))
	return err
}

// printStats writes the server's counters and what the garbage collector
// did while serving, on one line the benchmark reads.
func printStats(st dhcp.Stats, gc gcStats) {
	fmt.Printf("stats batches %d packets %d replies %d batch_max %v log_writes %d log_write_max %v log_syncs %d log_sync_max %v compactions %d compact_max %v gc_cycles %d gc_pause_max %v gc_cpu %v user_cpu %v\n",
		st.Batches, st.Packets, st.Replies, st.BatchMax.Round(time.Microsecond),
		st.Log.Writes, st.Log.WriteMax.Round(time.Microsecond), st.Log.Syncs, st.Log.SyncMax.Round(time.Microsecond),
		st.Log.Compactions, st.Log.CompactMax.Round(time.Microsecond),
		gc.cycles, gc.pauseMax.Round(time.Microsecond), gc.cpu.Round(time.Millisecond), gc.user.Round(time.Millisecond))
}

// gcStats is what the runtime reports of its collector: cycles, the
// stop-the-world pauses (a histogram's bucket counts), the collector's CPU
// time and that of the Go code (the runtime's estimates).
type gcStats struct {
	cycles    uint64
	pauses    []uint64
	buckets   []float64
	pauseMax  time.Duration
	cpu, user time.Duration
}

func readGC() gcStats {
	ms := []metrics.Sample{
		{Name: "/gc/cycles/total:gc-cycles"},
		{Name: "/sched/pauses/total/gc:seconds"},
		{Name: "/cpu/classes/gc/total:cpu-seconds"},
		{Name: "/cpu/classes/user:cpu-seconds"},
	}
	metrics.Read(ms)
	var g gcStats
	if ms[0].Value.Kind() == metrics.KindUint64 {
		g.cycles = ms[0].Value.Uint64()
	}
	if ms[1].Value.Kind() == metrics.KindFloat64Histogram {
		h := ms[1].Value.Float64Histogram()
		g.pauses, g.buckets = append([]uint64(nil), h.Counts...), h.Buckets
	}
	if ms[2].Value.Kind() == metrics.KindFloat64 {
		g.cpu = time.Duration(ms[2].Value.Float64() * float64(time.Second))
	}
	if ms[3].Value.Kind() == metrics.KindFloat64 {
		g.user = time.Duration(ms[3].Value.Float64() * float64(time.Second))
	}
	return g
}

// since is what happened between g0 and g; pauseMax is the upper bound of
// the highest pause bucket that gained a count.
func (g gcStats) since(g0 gcStats) gcStats {
	d := gcStats{cycles: g.cycles - g0.cycles, cpu: g.cpu - g0.cpu, user: g.user - g0.user}
	for i := len(g.pauses) - 1; i >= 0; i-- {
		if i < len(g0.pauses) && g.pauses[i] > g0.pauses[i] && i+1 < len(g.buckets) {
			d.pauseMax = time.Duration(g.buckets[i+1] * float64(time.Second))
			break
		}
	}
	return d
}

// heapInuse is the heap in use after a full collection.
func heapInuse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// prefillStore writes n bound leases for made-up clients at the top of the
// pool, as if that many clients were already served.
func prefillStore(dir string, cfg dhcp.LinkConfig, n int, d time.Duration) error {
	st, err := leasestore.Open(dir, leasestore.Options{})
	if err != nil {
		return err
	}
	b := cfg.PoolEnd.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	exp := time.Now().Add(d)
	var ch []lease.Change
	for i := 0; i < n; i++ {
		a := v - uint32(i)
		ip := netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)})
		mac := net.HardwareAddr{0x0a, 0xfe, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
		ch = append(ch, lease.Change{Lease: lease.Lease{Link: cfg.Name, IP: ip, MAC: mac, Expiry: exp, State: lease.Bound}})
		if len(ch) == 1000 {
			if err := st.Apply(ch); err != nil {
				return err
			}
			ch = ch[:0]
		}
	}
	if err := st.Apply(ch); err != nil {
		return err
	}
	return st.Close()
}
