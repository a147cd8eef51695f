package spawn

import (
	"github.com/netspawn/netspawn/internal/netconf"

	"github.com/vishvananda/netlink"
)

// configureNetwork brings up lo and configures the interfaces the
// controller created, inside the container's network namespace, so the
// payload has a working network at its first instruction. h is a netlink
// handle in that namespace: the zero Handle in the container's first
// process, or one opened in it from the parent (the fast path).
func configureNetwork(h *netlink.Handle, ns *NetworkSetup) error {
	ifs := make([]netconf.Interface, 0, len(ns.Interfaces))
	for _, ifc := range ns.Interfaces {
		ifs = append(ifs, netconf.Interface{Name: ifc.Name, Addresses: ifc.Addresses, Gateway4: ifc.Gateway4, Gateway6: ifc.Gateway6, MTU: ifc.MTU})
	}
	return netconf.Apply(h, ifs)
}
