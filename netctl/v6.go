package netctl

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/netspawn/netspawn/netctl/api"
	"github.com/netspawn/netspawn/netctl/loproxy"
	"github.com/netspawn/netspawn/netctl/nft"
	"github.com/netspawn/netspawn/netctl/store"
	"github.com/netspawn/netspawn/netctl/ula"
	"github.com/netspawn/netspawn/spawn/config"
)

// IPv6 settings of the controller (Config.IPv6).
type IPv6Config struct {
	Disable bool
	// Prefix to carve link /64s from; default: a random ULA /48 chosen once
	// and kept in the state dir (ula-prefix). A global prefix routed to this
	// host is delegated as is (no masquerade, see Masquerade).
	Prefix netip.Prefix
	// Masquerade is "auto" (masquerade ULA prefixes only), "yes" or "no".
	Masquerade string
	// LoopbackProxyAddr is where forwards are proxied for the host's IPv6
	// loopback (default ::1).
	LoopbackProxyAddr netip.Addr
}

type v6State struct {
	base   netip.Prefix
	masq   bool
	allocs map[string]netip.Prefix // owner -> /64
	proxy  *loproxy.Proxy
}

func (c *Controller) ipam6Dir() string { return filepath.Join(c.cfg.StateDir, "ipam6.d") }

// initV6 loads (or picks) the base prefix and the saved /64s.
func (c *Controller) initV6() error {
	if c.cfg.IPv6.Disable {
		return nil
	}
	base, err := ula.LoadOrCreate(filepath.Join(c.cfg.StateDir, "ula-prefix"), c.cfg.IPv6.Prefix)
	if err != nil {
		return fmt.Errorf("IPv6 prefix: %w", err)
	}
	st := &v6State{base: base, allocs: map[string]netip.Prefix{}}
	switch m := strings.ToLower(c.cfg.IPv6.Masquerade); m {
	case "", "auto":
		st.masq = ula.IsULA(base)
	default:
		b, err := config.ParseBool(m)
		if err != nil {
			return fmt.Errorf("IPv6 masquerade %q: want auto, yes or no", c.cfg.IPv6.Masquerade)
		}
		st.masq = b
	}
	if err := os.MkdirAll(c.ipam6Dir(), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", c.ipam6Dir(), err)
	}
	saved, err := loadDir[netip.Prefix](c.ipam6Dir())
	if err != nil {
		return err
	}
	for o, p := range saved {
		if base.Contains(p.Addr()) && p.Bits() == ula.LinkBits {
			st.allocs[o] = p
		}
	}
	st.proxy = loproxy.New(c.cfg.IPv6.LoopbackProxyAddr, c.log.With("part", "loopback-proxy"))
	c.v6 = st
	c.log.Info("IPv6 for container links", "prefix", base, "masquerade", st.masq)
	return nil
}

func (c *Controller) closeV6() {
	if c.v6 != nil && c.v6.proxy != nil {
		c.v6.proxy.Close()
	}
}

// alloc6 returns owner's /64: the saved one unless the host routes it
// now, else a free one. A new one is saved durably at once when durable
// (a zone's, like its IPv4 subnet), else in the syncer's next batch.
func (c *Controller) alloc6(owner string, durable bool) (netip.Prefix, error) {
	skip := func(idx int) bool { return c.managed[idx] || c.del.deleting(idx) }
	var inUse []netip.Prefix
	var ok bool
	if c.pfx != nil {
		inUse, ok = c.pfx.InUse6(skip)
	}
	if !ok {
		var err error
		if inUse, err = c.links.InUse6(skip); err != nil {
			return netip.Prefix{}, err
		}
	}
	if p, ok := c.v6.allocs[owner]; ok && !ula.Overlaps(p, inUse) {
		return p, nil
	}
	taken := func(p netip.Prefix) bool {
		for o, q := range c.v6.allocs {
			if o != owner && q == p {
				return true
			}
		}
		return ula.Overlaps(p, inUse)
	}
	p, ok := ula.Subnet(c.v6.base, owner, taken)
	if !ok {
		return p, fmt.Errorf("no free /64 left in %s", c.v6.base)
	}
	path := filepath.Join(c.ipam6Dir(), owner+".json")
	if durable {
		if err := store.WriteJSON(path, p); err != nil {
			return p, err
		}
	} else {
		// Like a machine's ipam.d file: atomic without fsync (a killed
		// netspawnd loses nothing, the page cache keeps it), durable with
		// the syncer's next syncfs (ipam6.d is beside ipam.d in the state
		// dir). A running machine's /64 is also in its runtime record,
		// from which reconcile restores it (restoreV6).
		if err := store.WriteJSONNoSync(path, p); err != nil {
			return p, err
		}
		c.requestSync()
	}
	c.v6.allocs[owner] = p
	return p, nil
}

// restoreV6 keeps a running machine's /64 (from its runtime record) as
// its allocation, should ipam6.d have lost it (a crash of the host before
// the batched sync; the record is then gone too, unless the runtime dir
// outlives the host's crash).
func (c *Controller) restoreV6(owner string, p netip.Prefix) {
	if c.v6 == nil || !p.IsValid() || !c.v6.base.Contains(p.Addr()) || p.Bits() != ula.LinkBits {
		return
	}
	if _, ok := c.v6.allocs[owner]; ok {
		return
	}
	c.v6.allocs[owner] = p
	if err := store.WriteJSONNoSync(filepath.Join(c.ipam6Dir(), owner+".json"), p); err != nil {
		c.log.Warn("restore IPv6 allocation", "owner", owner, "err", err)
		return
	}
	c.requestSync()
}

// setupV6 numbers link i of m (a ve- link already configured for IPv4):
// gateway ::1 on the host side, the container's EUI-64 address and the
// gateway in ifc, masquerade and IPv6 copies of the link's forwards.
func (c *Controller) setupV6(m *machine, i int, ifc *api.Interface) error {
	if c.v6 == nil {
		return nil
	}
	l := &m.Links[i]
	p, err := c.alloc6(m.Req.Name, false)
	if err != nil {
		return err
	}
	addr, err := l.eui64(p)
	if err != nil {
		return err
	}
	if err := c.links.AddAddr6(l.Host, netip.PrefixFrom(ula.Gateway(p), p.Bits())); err != nil {
		return err
	}
	ifc.Addresses = append(ifc.Addresses, netip.PrefixFrom(addr, p.Bits()).String())
	ifc.Gateway6 = ula.Gateway(p).String()
	if c.v6.masq {
		m.Elements.Subnets = append(m.Elements.Subnets, p)
	}
	var v6 []nft.Forward
	for _, f := range m.Elements.Forwards {
		if l.Alloc != nil && f.Addr == l.Alloc.Address {
			f.Addr = addr
			v6 = append(v6, f)
		}
	}
	m.Elements.Forwards = append(m.Elements.Forwards, v6...)
	return nil
}

// hostIPv6 turns IPv6 off on the host side of a machine's link when
// netspawnd runs without it (--no-ipv6), before the link comes up; with
// IPv6, setupV6 (AddAddr6) turns it on.
func (c *Controller) hostIPv6(link string) error {
	if c.v6 != nil {
		return nil
	}
	if err := c.links.DisableIPv6(link); err != nil {
		return fmt.Errorf("turn IPv6 off on %s: %w", link, err)
	}
	return nil
}

// repairV6 puts a running machine's IPv6 gateway back on its link.
func (c *Controller) repairV6(l linkState) error {
	if c.v6 == nil || !l.Prefix6.IsValid() {
		return nil
	}
	return c.links.AddAddr6(l.Host, netip.PrefixFrom(ula.Gateway(l.Prefix6), l.Prefix6.Bits()))
}

// publishV6 proxies m's TCP and UDP forwards on the host's IPv6 loopback.
func (c *Controller) publishV6(m *machine) {
	if c.v6 == nil {
		return
	}
	var ts []loproxy.Target
	for _, f := range m.Elements.Forwards {
		if (f.Proto == "tcp" || f.Proto == "udp") && f.Addr.Is6() {
			ts = append(ts, loproxy.Target{Proto: f.Proto, HostPort: f.HostPort, Addr: f.Addr, Port: f.Port})
		}
	}
	if len(ts) == 0 {
		return
	}
	if err := c.v6.proxy.Set(m.Req.Name, ts); err != nil {
		c.log.Warn("forwards on [::1] not available", "machine", m.Req.Name, "err", err)
	}
}

func (c *Controller) unpublishV6(name string) {
	if c.v6 != nil {
		c.v6.proxy.Remove(name)
	}
}

// gateway6 returns the IPv6 gateway of a link ("" when it has none).
func (l linkState) gateway6() netip.Addr {
	if !l.Prefix6.IsValid() {
		return netip.Addr{}
	}
	return ula.Gateway(l.Prefix6)
}

// ensureForwarding6 turns on IPv6 forwarding. Forwarding makes the kernel
// ignore router advertisements on interfaces with accept_ra=1, which would
// drop the host's own RA-learned default route (systemd #37029); those
// interfaces are switched to accept_ra=2 first.
func (c *Controller) ensureForwarding6() {
	if c.v6 == nil || c.fwd6On {
		return
	}
	const all = "/proc/sys/net/ipv6/conf/all/forwarding"
	if b, err := os.ReadFile(all); err == nil && strings.TrimSpace(string(b)) == "1" {
		c.fwd6On = true
		return
	}
	ents, _ := os.ReadDir("/proc/sys/net/ipv6/conf")
	for _, e := range ents {
		if e.Name() == "all" || e.Name() == "lo" || strings.HasPrefix(e.Name(), "ve-") || strings.HasPrefix(e.Name(), "vz-") {
			continue
		}
		p := filepath.Join("/proc/sys/net/ipv6/conf", e.Name(), "accept_ra")
		if b, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(b)) == "1" {
			if err := os.WriteFile(p, []byte("2\n"), 0o644); err == nil && e.Name() != "default" {
				c.log.Info("kept accepting router advertisements while forwarding", "link", e.Name(), "sysctl", "accept_ra=2")
			}
		}
	}
	if err := os.WriteFile(all, []byte("1\n"), 0o644); err != nil {
		c.log.Warn("cannot enable IPv6 forwarding", "err", err)
		return
	}
	c.log.Info("enabled IPv6 forwarding (net.ipv6.conf.all.forwarding=1)")
	c.fwd6On = true
}

// setupZoneV6 gives a zone bridge its /64 (gateway ::1), kept with the
// zone's owner name like a machine's.
func (c *Controller) setupZoneV6(z *zoneState) error {
	if c.v6 == nil {
		return nil
	}
	p, err := c.alloc6(zoneOwner(z.Name), true)
	if err != nil {
		return err
	}
	return c.links.AddAddr6(z.Bridge, netip.PrefixFrom(ula.Gateway(p), p.Bits()))
}

// zonePrefix6 returns a zone's /64 and gateway (invalid without IPv6).
func (c *Controller) zonePrefix6(z *zoneState) (netip.Prefix, netip.Addr) {
	if c.v6 == nil {
		return netip.Prefix{}, netip.Addr{}
	}
	if z.Cluster != nil {
		if p := z.Cluster.Prefix6; p.IsValid() {
			return p, ula.Gateway(p)
		}
		return netip.Prefix{}, netip.Addr{}
	}
	p, ok := c.v6.allocs[zoneOwner(z.Name)]
	if !ok {
		return netip.Prefix{}, netip.Addr{}
	}
	return p, ula.Gateway(p)
}

// zoneElements6 are a zone's elements with its masqueraded /64.
func (c *Controller) zoneElements6(z *zoneState) nft.Elements {
	e := zoneElements(z)
	if p, _ := c.zonePrefix6(z); p.IsValid() && c.v6.masq {
		e.Subnets = append(e.Subnets, p)
	}
	return e
}

// zoneMemberV6 numbers a zone member's host0 in the zone's /64 (EUI-64 of
// its MAC, which SLAAC from the zone's advertisements forms too).
func (c *Controller) zoneMemberV6(m *machine, z *zoneState, ifc *api.Interface) error {
	p, gw := c.zonePrefix6(z)
	if !p.IsValid() {
		return nil
	}
	l := &m.Links[len(m.Links)-1]
	addr, err := l.eui64(p)
	if err != nil {
		return err
	}
	ifc.Addresses = append(ifc.Addresses, netip.PrefixFrom(addr, p.Bits()).String())
	ifc.Gateway6 = gw.String()
	var v6 []nft.Forward
	for _, f := range m.Elements.Forwards {
		if l.Alloc != nil && f.Addr == l.Alloc.Address {
			f.Addr = addr
			v6 = append(v6, f)
		}
	}
	m.Elements.Forwards = append(m.Elements.Forwards, v6...)
	return nil
}

// eui64 gives the link its IPv6 address in prefix p, from the container
// side's MAC (what SLAAC inside picks too), and returns it.
func (l *linkState) eui64(p netip.Prefix) (netip.Addr, error) {
	mac, err := net.ParseMAC(l.MAC)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("container MAC %q: %w", l.MAC, err)
	}
	addr, err := ula.EUI64(p, mac)
	if err != nil {
		return netip.Addr{}, err
	}
	l.Prefix6, l.Addr6 = p, addr
	return addr, nil
}
