package links

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// AddAddr6 puts an IPv6 address on a host link without duplicate address
// detection (the controller numbers the link itself), and turns off
// accepting router advertisements there (the host is the router). It is
// idempotent.
func (h *Handle) AddAddr6(name string, p netip.Prefix) error {
	_ = writeSysctl("/proc/sys/net/ipv6/conf/"+name+"/accept_ra", "0")
	_ = writeSysctl("/proc/sys/net/ipv6/conf/"+name+"/disable_ipv6", "0")
	l, err := h.h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("look up %s: %w", name, err)
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 128)}, Flags: unix.IFA_F_NODAD}
	if err := h.h.AddrReplace(l, a); err != nil {
		return fmt.Errorf("add %s to %s: %w", p, name, err)
	}
	return nil
}

// DisableIPv6 turns IPv6 off on a host link (netspawnd without IPv6):
// no link-local address, no routes and no multicast memberships of its
// own, which the kernel would otherwise make for every link and walk on
// every later link event. A kernel without IPv6 has nothing to turn off.
func (h *Handle) DisableIPv6(name string) error {
	err := writeSysctl("/proc/sys/net/ipv6/conf/"+name+"/disable_ipv6", "1")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// InUse6 returns the IPv6 prefixes of every global or unique local address
// and route on the host, except on links (by index) for which skip
// returns true.
func (h *Handle) InUse6(skip func(index int) bool) ([]netip.Prefix, error) {
	var out []netip.Prefix
	addrs, err := retry(func() ([]netlink.Addr, error) { return h.h.AddrList(nil, unix.AF_INET6) })
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if skip != nil && skip(a.LinkIndex) {
			continue
		}
		if p, ok := prefixOf(a.IPNet); ok && usable6(p) {
			out = append(out, p.Masked())
		}
	}
	routes, err := retry(func() ([]netlink.Route, error) {
		return h.h.RouteListFiltered(unix.AF_INET6, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if skip != nil && skip(r.LinkIndex) {
			continue
		}
		if p, ok := routePrefix6(r); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// usable6 reports whether an IPv6 prefix can block a ULA subnet: not the
// default, loopback, link-local or multicast.
func usable6(p netip.Prefix) bool {
	a := p.Addr()
	return a.Is6() && p.Bits() > 0 && !a.IsLoopback() && !a.IsLinkLocalUnicast() && !a.IsMulticast()
}

// routePrefix6 returns the destination of an IPv6 route that blocks a
// subnet (host routes of the local table excepted).
func routePrefix6(r netlink.Route) (netip.Prefix, bool) {
	if r.Dst == nil {
		return netip.Prefix{}, false
	}
	p, ok := prefixOf(r.Dst)
	if !ok || !usable6(p) || p.Bits() >= 128 {
		return netip.Prefix{}, false
	}
	return p.Masked(), true
}
