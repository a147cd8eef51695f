package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/netspawn/netspawn/internal/netconf"
	"github.com/netspawn/netspawn/netctl/links"
	"github.com/netspawn/netspawn/test/harness"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The cni-kernel benchmark asks what the kernel alone makes of a host
// with many attachments: the netlink requests netspawnd makes for one
// CNI ADD (veth with its peer created in the container's namespace, the
// host side's sysctls, IPv4 and IPv6 gateway addresses and up, the
// container side's addresses, up and default routes, through netspawnd's
// own links package), timed with 1 and with 500 attachments live, with
// no netspawnd, plugin or other process beside. It gives the floor under
// the cni benchmark's flatness figure.
//
// Variants, each in a fresh namespace playing the host:
//   - netspawnd: the host side as netspawnd makes it (the kernel's IPv6
//     link-local address, the gateway's /64 with its prefix route: 7
//     IPv6 routes per link), each attachment deleted before the next;
//   - the same, "deleting beside": each attachment deleted while the
//     next is made, as netspawnd's background deleter does;
//   - lean-v6: the same addresses with fewer IPv6 routes (5 per link): no
//     kernel-made link-local (addrgenmode none) but fe80::/128 set by
//     hand, both addresses without prefix routes (so no subnet-router
//     anycast), the /64 and fe80::/64 routes added by hand;
//   - ipv4-only: IPv6 off on the host side, as netspawnd --no-ipv6 makes
//     it (a bound: what IPv6 costs).

func init() {
	register("cni-kernel", benchCNIKernel)
	registerChild("cni-kernel", cniKernelChild)
}

type cniKernelJob struct {
	Variant string   `json:"variant"`
	Pool    []string `json:"pool"` // container namespaces for the timed pairs
	Live    []string `json:"live"` // container namespaces left attached
	Rounds  int      `json:"rounds"`
	// BackgroundDelete deletes each timed attachment while the next is
	// made, as netspawnd's deleter does, rather than before.
	BackgroundDelete bool `json:"background_delete"`
}

type cniKernelTimes struct {
	At1, At500 []kernelSample
	Routes6    int // IPv6 routes of the host namespace with every attachment live
}

// kernelSample is one attachment's times: all its requests (Add) and
// their parts (the veth made, the host side configured, the container
// side configured), and its deletion's (when not in the background).
type kernelSample struct {
	Add, Veth, Host, Inside, Del time.Duration
}

// kernelMedian is the median of one field of samples.
func kernelMedian(xs []kernelSample, f func(kernelSample) time.Duration) time.Duration {
	d := make([]time.Duration, len(xs))
	for i, x := range xs {
		d[i] = f(x)
	}
	return median(d)
}

func benchCNIKernel(ctx context.Context, b *B) error {
	const (
		live   = 500
		per    = 25
		rounds = 4
	)
	b.Logf("binding %d container namespaces", per+live)
	bound, pool, liveNS, err := newBoundNS("netspawn-bench-cnikernel-", per, live)
	if err != nil {
		return err
	}
	defer bound.close()
	b.Logf("netspawnd's requests for one ADD, timed; each attachment deleted before the next; %d rounds of %d", rounds, per)
	for _, vr := range []struct {
		name, variant string
		bg            bool
	}{
		{"netspawnd", "netspawnd", false},
		{"netspawnd, deleting beside", "netspawnd", true},
		{"lean-v6", "lean-v6", false},
		{"lean-v6, deleting beside", "lean-v6", true},
		{"ipv4-only", "ipv4-only", false},
		{"ipv4-only, deleting beside", "ipv4-only", true},
	} {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		v := vr.name
		ns, err := harness.OpenNetNS()
		if err != nil {
			return err
		}
		j, _ := json.Marshal(cniKernelJob{Variant: vr.variant, Pool: pool, Live: liveNS, Rounds: rounds, BackgroundDelete: vr.bg})
		cmd := ns.CommandContext(ctx, os.Args[0])
		cmd.Env = append(os.Environ(), "NETSPAWN_BENCH_CHILD=cni-kernel", "NETSPAWN_BENCH_CNIKERNEL="+string(j))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		ns.Close()
		if err != nil {
			return fmt.Errorf("%s: %v: %s", v, err, stderr.String())
		}
		var t cniKernelTimes
		if err := json.Unmarshal(out, &t); err != nil {
			return fmt.Errorf("%s: %v", v, err)
		}
		m := func(xs []kernelSample, f func(kernelSample) time.Duration) float64 { return ms(kernelMedian(xs, f)) }
		add := func(x kernelSample) time.Duration { return x.Add }
		a1, a500 := m(t.At1, add), m(t.At500, add)
		b.Result(v+": requests of one ADD, 1 live", a1, "ms")
		b.Result(fmt.Sprintf("%s: requests of one ADD, %d live", v, live), a500, "ms")
		b.Result(v+": growth", a500-a1, "ms")
		b.Logf("%s: 1 / %d live, medians: veth %.2f / %.2f ms, host side %.2f / %.2f ms, container side %.2f / %.2f ms", v, live,
			m(t.At1, func(x kernelSample) time.Duration { return x.Veth }), m(t.At500, func(x kernelSample) time.Duration { return x.Veth }),
			m(t.At1, func(x kernelSample) time.Duration { return x.Host }), m(t.At500, func(x kernelSample) time.Duration { return x.Host }),
			m(t.At1, func(x kernelSample) time.Duration { return x.Inside }), m(t.At500, func(x kernelSample) time.Duration { return x.Inside }))
		if !vr.bg {
			del := func(x kernelSample) time.Duration { return x.Del }
			b.Logf("%s: deleting one (RTM_DELLINK), median: %.1f ms with 1 live, %.1f ms with %d", v, m(t.At1, del), m(t.At500, del), live)
		}
		b.Logf("%s: %d IPv6 routes in the host namespace with %d attachments", v, t.Routes6, live)
	}
	return nil
}

// kernelAttach is one attachment's host and container sides.
type kernelAttach struct {
	host    string
	ns      string
	i       int
	variant string
}

func (a kernelAttach) v4() (gw, addr netip.Prefix) {
	base := netip.MustParseAddr("10.64.0.0").As4()
	n := uint32(a.i) * 4
	base[1] += byte(n >> 16)
	base[2] += byte(n >> 8)
	base[3] += byte(n)
	sub := netip.AddrFrom4(base)
	return netip.PrefixFrom(sub.Next(), 30), netip.PrefixFrom(sub.Next().Next(), 30)
}

func (a kernelAttach) v6() (gw, addr netip.Prefix) {
	b := netip.MustParseAddr("fd42:1::").As16()
	b[6], b[7] = byte(a.i>>8), byte(a.i)
	b[15] = 1
	gw = netip.PrefixFrom(netip.AddrFrom16(b), 64)
	b[15] = 2
	return gw, netip.PrefixFrom(netip.AddrFrom16(b), 64)
}

func (a kernelAttach) macs() (host, peer net.HardwareAddr) {
	return net.HardwareAddr{0x02, 0x6e, 0x73, 0x00, byte(a.i >> 8), byte(a.i)},
		net.HardwareAddr{0x02, 0x6e, 0x73, 0x01, byte(a.i >> 8), byte(a.i)}
}

func cniKernelChild() error {
	var job cniKernelJob
	if err := json.Unmarshal([]byte(os.Getenv("NETSPAWN_BENCH_CNIKERNEL")), &job); err != nil {
		return err
	}
	// As netspawnd: forwarding on in the namespace playing the host.
	for _, s := range []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"} {
		if err := os.WriteFile(s, []byte("1\n"), 0o644); err != nil {
			return err
		}
	}
	h, err := links.New()
	if err != nil {
		return err
	}
	defer h.Close()
	raw, err := netlink.NewHandle()
	if err != nil {
		return err
	}
	defer raw.Close()
	var tVeth, tHost time.Duration // of the last attach
	attach := func(a kernelAttach) error {
		t0 := time.Now()
		f, err := os.Open(a.ns)
		if err != nil {
			return err
		}
		defer f.Close()
		hm, pm := a.macs()
		if _, err := h.AddVeth(links.Veth{HostName: a.host, HostMAC: hm, PeerName: "eth0", PeerMAC: pm, PeerNetNS: int(f.Fd()), Marked: true}); err != nil {
			return err
		}
		tVeth = time.Since(t0)
		gw4, addr4 := a.v4()
		gw6, addr6 := a.v6()
		inside := netconf.Interface{Name: "eth0", Addresses: []string{addr4.String()}, Gateway4: gw4.Addr().String()}
		switch a.variant {
		case "ipv4-only":
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+a.host+"/disable_ipv6", []byte("1\n"), 0o644); err != nil {
				return err
			}
			if err := h.Configure(a.host, gw4); err != nil {
				return err
			}
		case "lean-v6":
			if err := leanV6Mode(raw, a.host); err != nil {
				return err
			}
			if err := h.Configure(a.host, gw4); err != nil {
				return err
			}
			if err := leanV6(raw, a.host, hm, gw6); err != nil {
				return err
			}
			inside.Addresses = append(inside.Addresses, addr6.String())
			inside.Gateway6 = gw6.Addr().String()
		default:
			if err := h.Configure(a.host, gw4); err != nil {
				return err
			}
			if err := h.AddAddr6(a.host, gw6); err != nil {
				return err
			}
			inside.Addresses = append(inside.Addresses, addr6.String())
			inside.Gateway6 = gw6.Addr().String()
		}
		tHost = time.Since(t0) - tVeth
		c, err := links.NewAt(int(f.Fd()))
		if err != nil {
			return err
		}
		defer c.Close()
		return c.ApplyInside([]netconf.Interface{inside})
	}
	// With deletions in the background (as netspawnd's deleter does them),
	// one goroutine with a netlink socket of its own deletes while the
	// next attachment is made.
	type delJob struct {
		name string
		done chan struct{}
	}
	var bg chan delJob
	var bgDone chan error
	pending := map[string]chan struct{}{}
	if job.BackgroundDelete {
		bg, bgDone = make(chan delJob, 1024), make(chan error, 1)
		go func() {
			dh, err := links.New()
			if err == nil {
				defer dh.Close()
			}
			for j := range bg {
				if err == nil {
					err = dh.Delete(j.name)
				}
				close(j.done)
			}
			bgDone <- err
		}()
	}
	// pair makes one attachment and deletes it (or hands it to the
	// background deleter), timing both.
	pair := func(a kernelAttach) (kernelSample, error) {
		if done, ok := pending[a.host]; ok {
			<-done // the pool's namespaces come round again
			delete(pending, a.host)
		}
		start := time.Now()
		if err := attach(a); err != nil {
			return kernelSample{}, err
		}
		x := kernelSample{Add: time.Since(start), Veth: tVeth, Host: tHost}
		x.Inside = x.Add - x.Veth - x.Host
		if bg != nil {
			j := delJob{a.host, make(chan struct{})}
			pending[a.host] = j.done
			bg <- j
			return x, nil
		}
		t0 := time.Now()
		err := h.Delete(a.host)
		x.Del = time.Since(t0)
		return x, err
	}
	var t cniKernelTimes
	// timed runs the pool's pairs Rounds times after a round to warm up.
	timed := func() ([]kernelSample, error) {
		var out []kernelSample
		for r := range job.Rounds + 1 {
			for k, p := range job.Pool {
				x, err := pair(kernelAttach{host: fmt.Sprintf("vkp%d", k), ns: p, i: 60000 + k, variant: job.Variant})
				if err != nil {
					return nil, err
				}
				if r > 0 {
					out = append(out, x)
				}
			}
		}
		return out, nil
	}
	if t.At1, err = timed(); err != nil {
		return err
	}
	for i, p := range job.Live {
		if err := attach(kernelAttach{host: fmt.Sprintf("vkl%d", i), ns: p, i: i, variant: job.Variant}); err != nil {
			return err
		}
	}
	if t.At500, err = timed(); err != nil {
		return err
	}
	if bg != nil {
		close(bg)
		if err := <-bgDone; err != nil {
			return err
		}
	}
	if rs, err := raw.RouteListFiltered(unix.AF_INET6, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE); err == nil {
		t.Routes6 = len(rs)
	}
	// The live attachments go with the namespace playing the host.
	return json.NewEncoder(os.Stdout).Encode(t)
}

// leanV6Mode keeps the kernel from making a link-local address on a host
// link (before it has carrier).
func leanV6Mode(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return err
	}
	_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+name+"/accept_ra", []byte("0\n"), 0o644)
	if err := h.LinkSetIP6AddrGenMode(l, 1); err != nil { // IN6_ADDR_GEN_MODE_NONE
		return fmt.Errorf("addrgenmode none on %s: %w", name, err)
	}
	return nil
}

// leanV6 gives a host link that is up its IPv6 gateway and link-local
// addresses without prefix routes or anycast addresses, and the routes.
func leanV6(h *netlink.Handle, name string, mac net.HardwareAddr, gw netip.Prefix) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return err
	}
	ll := netip.AddrFrom16([16]byte{0xfe, 0x80, 8: mac[0] ^ 2, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]})
	for _, p := range []netip.Prefix{netip.PrefixFrom(ll, 128), netip.PrefixFrom(gw.Addr(), 128)} {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(128, 128)}, Flags: unix.IFA_F_NODAD | unix.IFA_F_NOPREFIXROUTE}
		if err := h.AddrAdd(l, a); err != nil {
			return fmt.Errorf("add %s to %s: %w", p, name, err)
		}
	}
	for _, p := range []netip.Prefix{netip.MustParsePrefix("fe80::/64"), gw.Masked()} {
		r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 128)}}
		// Not NLM_F_EXCL (RouteAdd): every link has its fe80::/64, at
		// the same metric, as the kernel's own prefix routes do.
		if err := h.RouteAppend(r); err != nil {
			return fmt.Errorf("route %s dev %s: %w", p, name, err)
		}
	}
	return nil
}
