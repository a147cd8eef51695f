package links

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// VXLAN describes a zone's VXLAN port.
type VXLAN struct {
	Name   string
	VNI    uint32
	Local  netip.Addr // this host's underlay address
	Port   int
	MTU    int    // of the VXLAN device (underlay MTU - overhead)
	Bridge string // the zone bridge it joins
}

// EnsureVXLAN creates the VXLAN device unless one with the same VNI, local
// address and port exists, makes it a port of the bridge, and sets it up.
// Learning stays on (remote MACs are learnt from the frames that arrive),
// flooding goes to the peers SetFloodPeers programs (head-end
// replication: no multicast in the underlay).
func (h *Handle) EnsureVXLAN(v VXLAN) (int, error) {
	if l, err := h.h.LinkByName(v.Name); err == nil {
		vx, ok := l.(*netlink.Vxlan)
		if ok && vx.VxlanId == int(v.VNI) && vx.SrcAddr.Equal(v.Local.AsSlice()) && vx.Port == v.Port {
			if err := h.setMTU(l, v.MTU); err != nil {
				return 0, err
			}
			return l.Attrs().Index, h.Enslave(v.Name, v.Bridge)
		}
		if !marked(l.Attrs()) {
			return 0, fmt.Errorf("a link named %s exists and netspawnd did not make it: rename or delete it", v.Name)
		}
		if err := h.h.LinkDel(l); err != nil {
			return 0, fmt.Errorf("delete outdated %s: %w", v.Name, err)
		}
	}
	la := netlink.NewLinkAttrs()
	la.Name = tempName()
	if v.MTU > 0 {
		la.MTU = v.MTU
	}
	vx := &netlink.Vxlan{LinkAttrs: la, VxlanId: int(v.VNI), SrcAddr: v.Local.AsSlice(), Port: v.Port, Learning: true}
	if err := h.h.LinkAdd(vx); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return 0, fmt.Errorf("create VXLAN %s (VNI %d, port %d): another VXLAN device already uses that VNI and port on this host: %w", v.Name, v.VNI, v.Port, err)
		}
		return 0, fmt.Errorf("create VXLAN %s (VNI %d, local %s): %w", v.Name, v.VNI, v.Local, err)
	}
	l, err := h.markAndName(la.Name, v.Name)
	if err != nil {
		return 0, err
	}
	// The zone's own traffic, never the host's: no addresses, no RA.
	_ = writeSysctl("/proc/sys/net/ipv6/conf/"+v.Name+"/disable_ipv6", "1")
	if err := h.Enslave(v.Name, v.Bridge); err != nil {
		_ = h.h.LinkDel(l)
		return 0, err
	}
	return l.Attrs().Index, nil
}

func (h *Handle) setMTU(l netlink.Link, mtu int) error {
	if mtu <= 0 || l.Attrs().MTU == mtu {
		return nil
	}
	if err := h.h.LinkSetMTU(l, mtu); err != nil {
		return fmt.Errorf("set MTU %d on %s: %w", mtu, l.Attrs().Name, err)
	}
	return nil
}

// SetMTU sets a link's MTU.
func (h *Handle) SetMTU(name string, mtu int) error {
	l, err := h.h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("look up %s: %w", name, err)
	}
	return h.setMTU(l, mtu)
}

// SetMAC sets a link's MAC address.
func (h *Handle) SetMAC(name string, mac net.HardwareAddr) error {
	l, err := h.h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("look up %s: %w", name, err)
	}
	if l.Attrs().HardwareAddr.String() == mac.String() {
		return nil
	}
	if err := h.h.LinkSetHardwareAddr(l, mac); err != nil {
		return fmt.Errorf("set MAC %s on %s: %w", mac, name, err)
	}
	return nil
}

var zeroMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}

// FloodPeers returns the remote VTEPs the VXLAN device floods to.
func (h *Handle) FloodPeers(name string) ([]netip.Addr, error) {
	l, err := h.h.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", name, err)
	}
	ns, err := retry(func() ([]netlink.Neigh, error) { return h.h.NeighList(l.Attrs().Index, unix.AF_BRIDGE) })
	if err != nil {
		return nil, fmt.Errorf("forwarding entries of %s: %w", name, err)
	}
	var out []netip.Addr
	for _, n := range ns {
		if n.HardwareAddr.String() != zeroMAC.String() || n.IP == nil {
			continue
		}
		if a, ok := netip.AddrFromSlice(n.IP); ok {
			out = append(out, a.Unmap())
		}
	}
	return out, nil
}

// SetFloodPeers makes the all-zeros forwarding entries of the VXLAN device
// exactly peers: broadcast, unknown unicast and multicast frames go to each.
func (h *Handle) SetFloodPeers(name string, peers []netip.Addr) error {
	l, err := h.h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("look up %s: %w", name, err)
	}
	have, err := h.FloodPeers(name)
	if err != nil {
		return err
	}
	want := map[netip.Addr]bool{}
	for _, p := range peers {
		want[p] = true
	}
	entry := func(a netip.Addr) *netlink.Neigh {
		return &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
			State: netlink.NUD_PERMANENT | netlink.NUD_NOARP, HardwareAddr: zeroMAC, IP: a.AsSlice()}
	}
	var errs []error
	gone := map[netip.Addr]bool{}
	for _, a := range have {
		if !want[a] {
			gone[a] = true
			if err := h.h.NeighDel(entry(a)); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("remove VTEP %s from %s: %w", a, name, err))
			}
		}
		delete(want, a)
	}
	if len(gone) > 0 {
		// MACs learnt behind a host that left would otherwise stay for
		// the bridge's ageing time (300 s).
		ns, _ := h.h.NeighList(l.Attrs().Index, unix.AF_BRIDGE)
		for _, n := range ns {
			if a, ok := netip.AddrFromSlice(n.IP); ok && gone[a.Unmap()] && n.HardwareAddr.String() != zeroMAC.String() {
				_ = h.h.NeighDel(&n)
			}
		}
	}
	for a := range want {
		if err := h.h.NeighAppend(entry(a)); err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("add VTEP %s to %s: %w", a, name, err))
		}
	}
	return errors.Join(errs...)
}

// UnderlayMTU returns the MTU of the link that holds addr.
func (h *Handle) UnderlayMTU(a netip.Addr) (int, error) {
	addrs, err := retry(func() ([]netlink.Addr, error) { return h.h.AddrList(nil, unix.AF_INET) })
	if err != nil {
		return 0, fmt.Errorf("list addresses: %w", err)
	}
	for _, ad := range addrs {
		if ip, ok := netip.AddrFromSlice(ad.IP); ok && ip.Unmap() == a {
			l, err := h.h.LinkByIndex(ad.LinkIndex)
			if err != nil {
				return 0, fmt.Errorf("link of %s: %w", a, err)
			}
			return l.Attrs().MTU, nil
		}
	}
	return 0, fmt.Errorf("no interface of this host has the cluster address %s (--cluster-address)", a)
}

// DefaultRouteAddr returns the first IPv4 address of the interface the
// IPv4 default route leaves through.
func (h *Handle) DefaultRouteAddr() (netip.Addr, error) {
	rs, err := retry(func() ([]netlink.Route, error) { return h.h.RouteList(nil, unix.AF_INET) })
	if err != nil {
		return netip.Addr{}, fmt.Errorf("list routes: %w", err)
	}
	for _, r := range rs {
		if r.Dst != nil && r.Dst.String() != "0.0.0.0/0" {
			continue
		}
		l, err := h.h.LinkByIndex(r.LinkIndex)
		if err != nil {
			continue
		}
		addrs, err := h.h.AddrList(l, unix.AF_INET)
		if err != nil || len(addrs) == 0 {
			continue
		}
		if a, ok := netip.AddrFromSlice(addrs[0].IP); ok {
			return a.Unmap(), nil
		}
	}
	return netip.Addr{}, errors.New("no IPv4 default route to take the cluster address from: give --cluster-address")
}
