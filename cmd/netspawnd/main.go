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
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/netspawn/netspawn/netctl"
	"github.com/netspawn/netspawn/netctl/ipam"
	"github.com/spf13/pflag"
)

const defaultConfig = "/etc/netspawn/netspawnd.conf"

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
	fl := pflag.NewFlagSet("netspawnd", pflag.ContinueOnError)
	runtimeDir := fl.String("runtime-dir", netctl.DefaultRuntimeDir(), "runtime state and the API socket ($NETSPAWN_RUNTIME_DIR)")
	stateDir := fl.String("state-dir", netctl.DefaultStateDir(), "persistent state: address allocations ($NETSPAWN_STATE_DIR)")
	pools := fl.String("pools", "192.168.0.0/16,172.16.0.0/12,10.0.0.0/8", "IPv4 pools for container subnets, tried in order")
	dns := fl.String("dns", "", "resolvers handed to containers (comma-separated; default: the host's non-loopback ones)")
	domain := fl.String("domain", "netspawn.internal", "the machines' DNS domain, handed to containers as search domain")
	noDNS := fl.Bool("no-dns-server", false, "do not serve DNS for machine names (containers get the host's resolvers)")
	resolvConf := fl.String("resolv-conf", envOr("NETSPAWN_RESOLV_CONF", "/etc/resolv.conf"), "where the upstream resolvers for names outside the machines' domain are listed ($NETSPAWN_RESOLV_CONF); followed when it changes")
	hostDNS := fl.String("host-dns", "127.0.0.153:53", "loopback address where the host may query machine names by DNS (\"\" for none)")
	zoneIsolation := fl.Bool("zone-isolation", true, "drop routed traffic between a zone and other zones or ve- containers (--zone-isolation=false lets them reach each other)")
	logLevel := fl.String("log-level", "info", "debug, info, warn or error")
	machineID := fl.String("machine-id", "/etc/machine-id", "file with the host's machine id (seeds stable MACs)")
	config := fl.String("config", defaultConfig, "configuration file of KEY=VALUE lines named as the long options")
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
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	slog.SetDefault(log)
	pl, err := ipam.ParsePools(*pools)
	if err != nil {
		return fmt.Errorf("--pools: %w", err)
	}
	cfg := netctl.Config{RuntimeDir: *runtimeDir, StateDir: *stateDir, Pools: pl, MachineIDPath: *machineID, Domain: *domain, Logger: log,
		DNSOnGateway: !*noDNS && *dns == "", NoZoneIsolation: !*zoneIsolation}
	if *dns != "" {
		cfg.DNS = []netip.Addr{}
		for _, s := range strings.Split(*dns, ",") {
			a, err := netip.ParseAddr(strings.TrimSpace(s))
			if err != nil {
				return fmt.Errorf("--dns: %w", err)
			}
			cfg.DNS = append(cfg.DNS, a)
		}
	}
	// Make sure the runtime dir's env reaches anything we spawn later.
	os.Setenv("NETSPAWN_RUNTIME_DIR", *runtimeDir)
	os.Setenv("NETSPAWN_STATE_DIR", *stateDir)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	lock, err := netctl.LockRuntimeDir(*runtimeDir)
	if err != nil {
		return err
	}
	// The servers start once this is the only netspawnd for the runtime dir.
	svc, err := newServices(serviceOptions{runtimeDir: *runtimeDir, stateDir: *stateDir, domain: *domain, hostDNS: *hostDNS, noDNS: *noDNS, resolvConf: *resolvConf}, log)
	if err != nil {
		lock.Close()
		return err
	}
	defer svc.close()
	svc.run(ctx)
	cfg.DHCP, cfg.Names = svc, svc
	c, err := netctl.New(cfg)
	if err != nil {
		lock.Close()
		return err
	}
	viewOf := c.ViewOf
	svc.viewOf.Store(&viewOf)
	defer c.Close()
	srv, err := netctl.Listen(c, lock)
	if err != nil {
		lock.Close()
		return err
	}
	defer srv.Close()
	log.Info("netspawnd ready", "pid", os.Getpid(), "socket", *runtimeDir+"/netspawnd.sock", "state", *stateDir, "pools", *pools)
	err = srv.Serve(ctx)
	log.Info("netspawnd stopping; container networking stays in place")
	return err
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
