// Package netconf configures interfaces inside a container's network
// namespace from what the controller decided: loopback up, each
// interface's MTU, addresses and default routes. netspawn's first process
// applies it from inside; netspawnd applies it from outside, through a
// netlink handle opened in the namespace, for callers with no process
// there (CNI runtimes).
package netconf

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Interface is one interface inside the namespace and how to configure it.
type Interface struct {
	Name      string
	Addresses []string // CIDR
	Gateway4  string
	Gateway6  string
	MTU       int
}

// Apply brings up lo and configures ifs through h (a zero Handle works in
// the caller's own namespace). It is idempotent: addresses and routes are
// replaced, not added twice.
func Apply(h *netlink.Handle, ifs []Interface) error {
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("finding loopback in the container: %w", err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("bringing up loopback in the container: %w", err)
	}
	for _, ifc := range ifs {
		link, err := h.LinkByName(ifc.Name)
		if err != nil {
			return fmt.Errorf("finding %s in the container: %w", ifc.Name, err)
		}
		if ifc.MTU > 0 && link.Attrs().MTU != ifc.MTU {
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
