// Command netspawnd is netspawn's network controller: the machine registry,
// address pools, container links, nftables NAT and port forwards, served on
// a Unix socket. netspawn and netspawnctl start it on demand; see
// docs/netspawnd.md.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/netspawn/netspawn/internal/journald"
	"github.com/netspawn/netspawn/netctl/hostsd"
	"github.com/netspawn/netspawn/netctl/supervisor"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/netspawn/netspawn/nss"

	"github.com/netspawn/netspawn/dhcp"
	"github.com/netspawn/netspawn/dns"
	"github.com/netspawn/netspawn/netctl"
	"github.com/netspawn/netspawn/netctl/cluster"
	"github.com/netspawn/netspawn/netctl/daemonflags"
	"github.com/netspawn/netspawn/netctl/ipam"
	"github.com/netspawn/netspawn/netctl/metrics"
	"github.com/spf13/pflag"
)

// The main goroutine keeps the main thread to itself. Work that enters a
// container's namespaces runs on locked threads that end with their
// goroutine; were one of them the main thread, the runtime could not end it
// and would park it inside the container, and /proc/PID/ns/* (which show the
// main thread) would name the container's namespaces.
func init() { runtime.LockOSThread() }

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "netspawnd:", err)
		os.Exit(1)
	}
}

// applyConfigFile sets flags from KEY=VALUE lines (keys are long flag
// names); flags given on the command line win.
func applyConfigFile(fl *pflag.FlagSet, path string, must bool) error {
	f, err := os.Open(path)
	if err != nil {
		if !must && errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.Trim(strings.TrimSpace(v), `"`)
		if !ok || k == "config" {
			return fmt.Errorf("%s:%d: expected KEY=VALUE", path, n)
		}
		fg := fl.Lookup(k)
		if fg == nil {
			return fmt.Errorf("%s:%d: unknown key %q", path, n, k)
		}
		if fg.Changed {
			continue
		}
		if err := fl.Set(k, v); err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
	}
	return sc.Err()
}

func run(args []string) error {
	fl, f := daemonflags.New()
	runtimeDir, stateDir, pools, dnsList, domain, logLevel := f.RuntimeDir, f.StateDir, f.Pools, f.DNS, f.Domain, f.LogLevel
	withDHCP, withDNS, dnsAddr, dnsListen, dnsCache, dnsMaxStale := f.DHCP, f.DNSServer, f.DNSAddress, f.DNSListen, f.DNSCacheSize, f.DNSMaxStale
	resolvConf, zoneIsolation, machineID, noIPv6, ipv6Prefix, ipv6Masq := f.ResolvConf, f.ZoneIsolation, f.MachineID, f.NoIPv6, f.IPv6Prefix, f.IPv6Masquerade
	networkdOff, withResolved := f.NetworkdUnmanaged, f.Resolved
	clEtcd, clCA, clCert, clKey, clNode, clAddr, clPools, clTTL := f.ClusterEtcd, f.ClusterCA, f.ClusterCert, f.ClusterKey, f.ClusterNode, f.ClusterAddress, f.ClusterPools, f.ClusterTTL
	metricsListen, metricsPublic := f.MetricsListen, f.MetricsPublic
	sweepEvery := f.CgroupSweepInterval
	config := f.Config
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return err
	}
	if err := applyConfigFile(fl, *config, fl.Changed("config")); err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log, closeLog := newLogger(lvl)
	defer closeLog()
	slog.SetDefault(log)
	var met *metrics.Metrics
	var metricsEP metrics.Endpoint
	if *metricsListen != "" {
		ep, err := metrics.ParseEndpoint(*metricsListen, *metricsPublic)
		if err != nil {
			return fmt.Errorf("--metrics-listen: %w", err)
		}
		metricsEP, met = ep, metrics.New()
	} else if *metricsPublic {
		return errors.New("--metrics-public needs --metrics-listen")
	}
	pl, err := ipam.ParsePools(*pools)
	if err != nil {
		return fmt.Errorf("--pools: %w", err)
	}
	cfg := netctl.Config{RuntimeDir: *runtimeDir, StateDir: *stateDir, Pools: pl, MachineIDPath: *machineID, Domain: *domain, Logger: log,
		NoZoneIsolation: !*zoneIsolation}
	cfg.IPv6 = netctl.IPv6Config{Disable: *noIPv6, Masquerade: *ipv6Masq}
	if *sweepEvery < 0 {
		return fmt.Errorf("--cgroup-sweep-interval %v: cannot be negative (0 turns the sweep off)", *sweepEvery)
	}
	cfg.CgroupSweep = *sweepEvery
	if *ipv6Prefix != "" {
		p, err := netip.ParsePrefix(*ipv6Prefix)
		if err != nil {
			return fmt.Errorf("--ipv6-prefix: %w", err)
		}
		cfg.IPv6.Prefix = p
	}
	if *clEtcd != "" {
		cc, err := clusterConfig(*clEtcd, *clCA, *clCert, *clKey, *clNode, *clAddr, *clPools, *clTTL)
		if err != nil {
			return err
		}
		cc.Logger = log
		cfg.Cluster = cc
	} else if fl.Changed("cluster-node") || fl.Changed("cluster-address") || *clCA != "" || *clCert != "" || *clKey != "" {
		return errors.New("--cluster-node, --cluster-address and the etcd TLS files need --cluster-etcd")
	}
	views := &zoneViews{}
	if *dnsList != "" {
		cfg.DNS = []netip.Addr{}
		for _, s := range strings.Split(*dnsList, ",") {
			a, err := netip.ParseAddr(strings.TrimSpace(s))
			if err != nil {
				return fmt.Errorf("--dns: %w", err)
			}
			cfg.DNS = append(cfg.DNS, a)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// One daemon per runtime dir: take the lock before opening any state.
	lock, err := netctl.LockRuntimeDir(*runtimeDir)
	if err != nil {
		return err
	}
	nsLock, err := netctl.LockNetNS()
	if err != nil {
		return err
	}
	defer nsLock.Close()
	var servers []func(context.Context) error
	var dhcpSrv *dhcp.Server
	if *withDHCP {
		dopts := dhcp.Options{StateDir: filepath.Join(*stateDir, "dhcp"), Logger: log}
		if met != nil {
			dopts.Observer = met.DHCP()
		}
		ds, err := dhcp.New(dopts)
		if err != nil {
			return err
		}
		cfg.DHCP = dhcpHook{ds}
		dhcpSrv = ds
		servers = append(servers, ds.Run)
	}
	var dnsSrv *dns.Server
	if *withDNS {
		if cfg.Domain == "" {
			cfg.Domain = dns.DefaultDomain
		}
		zone := dns.NewZone()
		if *dnsCache < 0 || *dnsMaxStale < 0 {
			return fmt.Errorf("--dns-cache-size and --dns-max-stale cannot be negative")
		}
		cacheSize, maxStale := *dnsCache, *dnsMaxStale
		if cacheSize == 0 {
			cacheSize = -1 // no cache
		}
		if maxStale == 0 {
			maxStale = -1 // no serve-stale
		}
		dopts := dns.Options{Source: zone, ViewOf: views.view, Domain: cfg.Domain, ResolvConf: *resolvConf, Logger: log,
			CacheSize: cacheSize, MaxStale: maxStale}
		if met != nil {
			dopts.Observer = met.DNS()
		}
		ns, err := dns.NewServer(dopts)
		if err != nil {
			return err
		}
		dnsSrv = ns
		steer, err := netip.ParseAddrPort(*dnsAddr)
		if err != nil || !steer.Addr().Is4() {
			return fmt.Errorf("--dns-address %q: need an IPv4 address and port", *dnsAddr)
		}
		if _, err := ns.Listen(steer); err != nil {
			return err
		}
		for _, a := range strings.Split(*dnsListen, ",") {
			if a = strings.TrimSpace(a); a == "" {
				continue
			}
			ap, err := netip.ParseAddrPort(a)
			if err != nil {
				return fmt.Errorf("--dns-listen: %w", err)
			}
			if _, err := ns.Listen(ap); err != nil {
				return err
			}
		}
		cfg.Names = zoneNames{zone}
		// The NSS module asks here: the host resolves machine names.
		if l, err := nss.Listen(filepath.Join(*runtimeDir, "nss.sock")); err != nil {
			log.Warn("NSS socket not available: libnss_netspawn cannot resolve machine names", "err", err)
		} else {
			nsrv := &nss.Server{Source: zone, Domain: cfg.Domain, Logger: log.With("server", "nss")}
			servers = append(servers, func(ctx context.Context) error { defer l.Close(); return nsrv.Serve(ctx, l) })
		}
		cfg.DNSOnGateway = true
		cfg.DNSSteer = steer
		servers = append(servers, ns.Run)
		if *withResolved && hostsd.SystemdRunning() {
			rs := hostsd.NewResolved(log)
			defer rs.Close()
			cfg.LinkHooks = append(cfg.LinkHooks, resolvedHook{rs, steer})
		}
	}
	if *networkdOff && hostsd.SystemdRunning() {
		// Before any link exists: networkd matches a link once udev has seen it.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		did, err := hostsd.KeepNetworkdAway(ctx, hostsd.NetworkdDir)
		cancel()
		if err != nil {
			log.Warn("systemd-networkd may manage netspawn's links", "err", err)
		} else {
			log.Info("systemd-networkd leaves netspawn's links alone", "how", did)
		}
	}
	if !*noIPv6 {
		rh := newRAHook(dnsSrv, log)
		cfg.LinkHooks = append(cfg.LinkHooks, rh)
		servers = append(servers, rh.ra.Run)
	}
	// Make sure the runtime dir's env reaches anything we spawn later.
	os.Setenv("NETSPAWN_RUNTIME_DIR", *runtimeDir)
	os.Setenv("NETSPAWN_STATE_DIR", *stateDir)

	sup := &supervisor.Supervisor{StateDir: *stateDir, Log: log}
	cfg.Supervisor = sup
	if met != nil {
		cfg.Observer = met
	}
	c, err := netctl.New(cfg)
	if err != nil {
		lock.Close()
		return err
	}
	defer c.Close()
	if met != nil {
		src := metrics.Sources{
			Machines: func() map[string]int { return c.Census().Machines },
			Links:    func() map[string]int { return c.Census().Links },
		}
		if dhcpSrv != nil {
			src.Leases = func() []dhcp.Lease { return dhcpSrv.Leases("") }
		}
		met.SetSources(src)
		ln, err := metrics.Listen(metricsEP)
		if err != nil {
			lock.Close()
			return fmt.Errorf("--metrics-listen: %w", err)
		}
		servers = append(servers, func(ctx context.Context) error { return met.Serve(ctx, ln, log) })
		log.Info("serving metrics", "at", *metricsListen)
	}
	servers = append(servers, func(ctx context.Context) error { return watchNeighTables(ctx, log) })
	viewOf := c.ViewOf
	views.of.Store(&viewOf)
	srv, err := netctl.Listen(c, lock)
	if err != nil {
		lock.Close()
		return err
	}
	defer srv.Close()
	var wg sync.WaitGroup
	for _, run := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil && ctx.Err() == nil {
				log.Error("server stopped", "err", err)
			}
		}()
	}
	defer func() { stop(); wg.Wait() }()
	sup.Running = c.Registered
	go sup.StartEnabled()
	log.Info("netspawnd ready", "pid", os.Getpid(), "socket", *runtimeDir+"/netspawnd.sock", "state", *stateDir, "pools", *pools)
	// Under systemd (Type=notify): the socket answers from now on.
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Warn("telling the service manager netspawnd is ready", "err", err)
	}
	err = srv.Serve(ctx)
	log.Info("netspawnd stopping; container networking stays in place")
	return err
}

// newLogger logs to the journal with structured fields when stderr is
// connected to it (netspawnd run by systemd), else as slog text on
// stderr, which also takes what the journal refuses.
func newLogger(lvl slog.Level) (*slog.Logger, func()) {
	text := slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})
	if !journald.UnderJournal() {
		return slog.New(text), func() {}
	}
	h, err := journald.New(journald.Options{Identifier: "netspawnd", Level: lvl, Fallback: text})
	if err != nil {
		l := slog.New(text)
		l.Warn("stderr is the journal's, but its socket is not usable: logging text", "err", err)
		return l, func() {}
	}
	return slog.New(h), func() { h.Close() }
}

// clusterConfig checks the cluster options.
func clusterConfig(endpoints, ca, cert, key, node, address, pools string, ttl time.Duration) (*cluster.Config, error) {
	cc := &cluster.Config{CA: ca, Cert: cert, Key: key, Node: node, TTL: ttl}
	if (cert == "") != (key == "") {
		return nil, errors.New("--cluster-etcd-cert and --cluster-etcd-key go together: give both or neither")
	}
	for _, e := range strings.Split(endpoints, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("--cluster-etcd: %q is not an etcd URL (want http://HOST:2379 or https://HOST:2379)", e)
		}
		cc.Endpoints = append(cc.Endpoints, e)
	}
	if len(cc.Endpoints) == 0 {
		return nil, errors.New("--cluster-etcd: no endpoint given")
	}
	if cc.Node == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("--cluster-node not given and the hostname is unknown: %w", err)
		}
		cc.Node = h
	}
	if err := cluster.ValidNode(cc.Node); err != nil {
		return nil, fmt.Errorf("--cluster-node: %w", err)
	}
	if address != "" {
		a, err := netip.ParseAddr(address)
		if err != nil || !a.Is4() {
			return nil, fmt.Errorf("--cluster-address %q: want this host's IPv4 underlay address", address)
		}
		cc.Underlay = a
	}
	pl, err := ipam.ParsePools(pools)
	if err != nil {
		return nil, fmt.Errorf("--cluster-pools: %w", err)
	}
	cc.Pools = pl
	if ttl < 2*time.Second || ttl > 10*time.Minute {
		return nil, fmt.Errorf("--cluster-ttl %s: want 2s to 10m", ttl)
	}
	return cc, nil
}
