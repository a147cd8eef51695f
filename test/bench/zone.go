package main

// Zone benchmark: DHCP on a zone bridge. netspawnd serves vz-bench (made
// by a container started with --network-zone=bench); a client namespace
// whose veth joins the bridge runs perfdhcp with 200 simulated clients.
// The peer is dnsmasq serving an equal bridge (same name, subnet and
// range, --no-ping) in a second host namespace. For each, the highest rate
// of which at least 99% of exchanges end with an ACK.

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/netspawn/netspawn/test/harness"
)

func init() { register("zone", benchZone) }

// zoneSide is one bridge with its DHCP server and a perfdhcp client
// namespace on it.
type zoneSide struct {
	host, cli *harness.NetNS
}

func (z *zoneSide) close() {
	for _, ns := range []*harness.NetNS{z.cli, z.host} {
		if ns != nil {
			ns.KillAll()
			ns.Close()
		}
	}
}

func nsSh(ns *harness.NetNS, script string) error {
	out, err := ns.Command("sh", "-c", script).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", script, err, out)
	}
	return nil
}

// joinBridge adds a client namespace on bridge vz-bench with address addr.
func (z *zoneSide) joinBridge(addr netip.Prefix) error {
	cli, err := harness.OpenNetNS()
	if err != nil {
		return err
	}
	z.cli = cli
	if err := harness.Veth(z.host, cli, "vp-perf", "host0", "", addr.String()); err != nil {
		return err
	}
	return nsSh(z.host, "ip link set vp-perf master vz-bench")
}

// perf runs perfdhcp in the client namespace (nice -10, as the servers).
func (z *zoneSide) perf(ctx context.Context, rate, secs int) (perfResult, error) {
	cmd := z.cli.CommandContext(ctx, "nice", "-n", "-10", "perfdhcp", "-4", "-l", "host0", "-R", "200", "-r", strconv.Itoa(rate), "-p", strconv.Itoa(secs))
	out, err := cmd.CombinedOutput()
	var r perfResult
	ms := perfStat.FindAllStringSubmatch(string(out), -1)
	if len(ms) < 2 {
		return r, fmt.Errorf("perfdhcp: %v: %s", err, out)
	}
	for _, m := range ms {
		s, _ := strconv.Atoi(m[2])
		g, _ := strconv.Atoi(m[3])
		if m[1] == "DISCOVER-OFFER" {
			r.discSent, r.offers = s, g
		} else {
			r.reqSent, r.acks = s, g
		}
	}
	return r, nil
}

// zoneMaxRate raises the rate until fewer than 99% of exchanges are
// answered (two tries per rate) and returns the best ACK rate.
func zoneMaxRate(ctx context.Context, b *B, z *zoneSide, name string, rates []int, secs int) (float64, error) {
	best := 0.0
	for _, rate := range rates {
		var r perfResult
		var err error
		for try := 0; try < 2; try++ {
			if ctx.Err() != nil {
				return best, ctx.Err()
			}
			if r, err = z.perf(ctx, rate, secs); err != nil {
				return best, err
			}
			b.Logf("%-9s -r %5d: %6d DISCOVER, %6d OFFER, %6d ACK (%.2f%% answered, %.0f ACK/s)", name, rate, r.discSent, r.offers, r.acks,
				100*r.answered(), float64(r.acks)/float64(secs))
			if r.answered() >= 0.99 {
				break
			}
		}
		if r.answered() < 0.99 {
			break
		}
		if got := float64(r.acks) / float64(secs); got > best {
			best = got
		}
	}
	return best, nil
}

func benchZone(ctx context.Context, b *B) error {
	for _, tool := range []string{"perfdhcp", "dnsmasq", "nsenter", "ip", "nice"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not installed (apt-get install kea-admin dnsmasq-base iproute2)", tool)
		}
	}
	netspawn, err := filepath.Abs("bin/netspawn")
	if err != nil {
		return err
	}
	if _, err := os.Stat(netspawn); err != nil {
		return fmt.Errorf("bin/netspawn missing: run make build first: %w", err)
	}
	tree, err := harness.CachedBusyboxTree(harness.CacheDir())
	if err != nil {
		return err
	}
	cleanup, err := privateDirs()
	if err != nil {
		return err
	}
	defer cleanup()
	b.Logf("load average at start: %s", loadavg())
	defer func() { b.Logf("load average at end: %s", loadavg()) }()

	// netspawnd's zone: one member creates it.
	ours := &zoneSide{}
	defer ours.close()
	if ours.host, err = harness.OpenNetNS(); err != nil {
		return err
	}
	if err := nsSh(ours.host, "ip link set lo up"); err != nil {
		return err
	}
	member := ours.host.Command("nice", "-n", "-10", netspawn, "-q", "-D", tree, "-M", "zbench", "--network-zone=bench", "sleep", "100000")
	if err := member.Start(); err != nil {
		return err
	}
	defer func() { _ = member.Process.Signal(os.Interrupt); _ = member.Wait() }()
	var gw netip.Prefix
	for i := 0; i < 200 && !gw.IsValid(); i++ {
		out, _ := ours.host.Command("ip", "-o", "-4", "addr", "show", "dev", "vz-bench").Output()
		if f := strings.Fields(string(out)); len(f) >= 4 {
			gw, _ = netip.ParsePrefix(f[3])
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !gw.IsValid() {
		return fmt.Errorf("the zone bridge vz-bench did not appear")
	}
	a4 := gw.Masked().Addr().As4()
	at := func(i byte) netip.Addr { x := a4; x[3] = i; return netip.AddrFrom4(x) }
	// perfdhcp relays from this address: the top of the range, which 200
	// clients do not reach on either server.
	client := netip.PrefixFrom(at(254), 24)
	if err := ours.joinBridge(client); err != nil {
		return err
	}

	// dnsmasq on an equal bridge in its own host namespace.
	theirs := &zoneSide{}
	defer theirs.close()
	if theirs.host, err = harness.OpenNetNS(); err != nil {
		return err
	}
	if err := nsSh(theirs.host, "ip link set lo up && ip link add vz-bench type bridge && ip addr add "+gw.String()+" dev vz-bench && ip link set vz-bench up"); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "netspawn-bench-zone-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	dm := theirs.host.Command("nice", "-n", "-10", "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
		"--bind-interfaces", "--interface=vz-bench", "--except-interface=lo", "--no-ping", "--dhcp-authoritative",
		"--dhcp-range="+at(2).String()+","+at(253).String()+",255.255.255.0,1h", "--dhcp-lease-max=1000",
		"--dhcp-leasefile="+filepath.Join(dir, "leases"), "--pid-file=", "--no-resolv", "--no-hosts", "--user=root", "--group=root",
		"--log-facility="+filepath.Join(dir, "log"))
	if err := dm.Start(); err != nil {
		return err
	}
	defer func() { _ = dm.Process.Kill(); _ = dm.Wait() }()
	if err := theirs.joinBridge(client); err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond)

	const secs = 5
	rates := []int{100, 250, 500, 1000, 1500, 2000, 2500, 3000, 4000, 5000, 6000, 8000, 10000}
	o, err := zoneMaxRate(ctx, b, ours, "netspawnd", rates, secs)
	if err != nil {
		return err
	}
	t, err := zoneMaxRate(ctx, b, theirs, "dnsmasq", rates, secs)
	if err != nil {
		return err
	}
	b.Logf("zone %s, perfdhcp -R 200 (relay from %s), %d s per rate, >= 99%% of exchanges answered", gw.Masked(), client.Addr(), secs)
	b.Result("netspawnd on vz-bench: ACK/s", o, "ACK/s")
	b.Result("dnsmasq --no-ping on an equal bridge: ACK/s", t, "ACK/s")
	if t > 0 {
		b.Result("ratio netspawnd/dnsmasq", o/t, "x")
	}
	return nil
}
