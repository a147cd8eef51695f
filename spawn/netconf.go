package spawn

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// configureNetwork brings up lo and configures the interfaces the
// controller created, inside the container's network namespace, so the
// payload has a working network at its first instruction. h is a netlink
// handle in that namespace: the zero Handle in the container's first
// process, or one opened in it from the parent (the fast path).
func configureNetwork(h *netlink.Handle, ns *NetworkSetup) error {
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("finding loopback in the container: %w", err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("bringing up loopback in the container: %w", err)
	}
	for _, ifc := range ns.Interfaces {
		link, err := h.LinkByName(ifc.Name)
		if err != nil {
			return fmt.Errorf("finding %s in the container: %w", ifc.Name, err)
		}
		if ifc.MTU > 0 {
			if err := h.LinkSetMTU(link, ifc.MTU); err != nil {
				return fmt.Errorf("setting MTU of %s: %w", ifc.Name, err)
			}
		}
		for _, a := range ifc.Addresses {
			addr, err := netlink.ParseAddr(a)
			if err != nil {
				return fmt.Errorf("bad address %q for %s: %w", a, ifc.Name, err)
			}
			if addr.IP.To4() == nil {
				// The controller numbers the link itself: skip duplicate address detection.
				addr.Flags |= unix.IFA_F_NODAD
			}
			if err := h.AddrReplace(link, addr); err != nil {
				return fmt.Errorf("adding %s to %s: %w", a, ifc.Name, err)
			}
		}
		if err := h.LinkSetUp(link); err != nil {
			return fmt.Errorf("bringing up %s: %w", ifc.Name, err)
		}
		for _, gw := range []string{ifc.Gateway4, ifc.Gateway6} {
			if gw == "" {
				continue
			}
			ip := net.ParseIP(gw)
			if ip == nil {
				return fmt.Errorf("bad gateway %q for %s", gw, ifc.Name)
			}
			r := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: ip}
			if err := h.RouteReplace(r); err != nil {
				return fmt.Errorf("adding default route via %s on %s: %w", gw, ifc.Name, err)
			}
		}
	}
	return nil
}
