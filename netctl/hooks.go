package netctl

import (
	"net"
	"net/netip"
	"time"

	"github.com/netspawn/netspawn/netctl/api"
)

// DHCPLink describes a managed link to a DHCP server.
type DHCPLink struct {
	Name      string
	Index     int
	Subnet    netip.Prefix
	Gateway   netip.Addr
	Prefix6   netip.Prefix // the link's IPv6 /64 (invalid: no IPv6)
	Gateway6  netip.Addr   // the host side's address in it (router advertisements, DNS)
	DNS       []netip.Addr
	Domain    string
	MTU       int
	LeaseTime time.Duration
	// PoolStart..PoolEnd is a dynamic range for clients without a
	// reservation (zone bridges); unset: reservations only.
	PoolStart, PoolEnd netip.Addr
}

// LinkHook is told about managed links and the machines' addresses on them:
// a DHCP server (package dhcp, through a small adapter in cmd/netspawnd), a
// DNS server listening on each gateway. Calls happen under the controller's
// lock and must not block for long. AddLink may be called again for a link
// already added (after a restart of the controller).
type LinkHook interface {
	AddLink(DHCPLink) error
	RemoveLink(name string) error
	Reserve(link string, mac net.HardwareAddr, ip netip.Addr, hostname string) error
}

// DHCPServer is the LinkHook of a DHCP server.
type DHCPServer = LinkHook

// NameSink receives machine names and their addresses as they come and go
// (a DNS server, the NSS answer file).
type NameSink interface {
	SetMachine(name string, addrs []netip.Addr)
	RemoveMachine(name string)
}

// NameSource answers lookups of machine names from the registry; the
// controller implements it for the DNS server.
type NameSource interface {
	LookupMachine(name string) ([]netip.Addr, bool)
	LookupMachineAddr(addr netip.Addr) (string, bool)
	MachineAddrs() map[string][]netip.Addr
}

// LeaseLister is implemented by a DHCP server that can list its leases.
type LeaseLister interface {
	APILeases(link string) []api.Lease
}
