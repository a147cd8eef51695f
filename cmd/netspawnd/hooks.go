package main

import (
	"encoding/hex"
	"errors"
	"time"

	"github.com/netspawn/netspawn/netctl/hostsd"

	"net"
	"net/netip"
	"sync/atomic"

	"github.com/netspawn/netspawn/netctl/api"

	"github.com/netspawn/netspawn/dhcp"
	"github.com/netspawn/netspawn/dns"
	"github.com/netspawn/netspawn/netctl"
)

// resolvedHook tells systemd-resolved that each managed link's DNS server
// (netspawnd's, at server) answers for the machines' domain.
type resolvedHook struct {
	r      *hostsd.Resolved
	server netip.AddrPort
}

func (h resolvedHook) AddLink(l netctl.DHCPLink) error {
	h.r.Add(hostsd.ResolvedLink{Index: l.Index, Name: l.Name, DNS: []netip.AddrPort{h.server}, Domain: l.Domain})
	return nil
}
func (h resolvedHook) RemoveLink(string) error                                    { return nil }
func (h resolvedHook) Reserve(string, net.HardwareAddr, netip.Addr, string) error { return nil }

// dhcpHook serves DHCP on every managed link with the machine's address
// reserved for its host0 MAC.
type dhcpHook struct{ s *dhcp.Server }

func (h dhcpHook) AddLink(l netctl.DHCPLink) error {
	cfg := dhcp.LinkConfig{Name: l.Name, Index: l.Index, Subnet: l.Subnet, ServerIP: l.Gateway,
		Routers: []netip.Addr{l.Gateway}, DNS: l.DNS, Domain: l.Domain, MTU: l.MTU, LeaseTime: l.LeaseTime,
		PoolStart: l.PoolStart, PoolEnd: l.PoolEnd}
	if l.Domain != "" {
		cfg.Search = []string{l.Domain}
	}
	err := h.s.AddLink(cfg)
	if errors.Is(err, dhcp.ErrLinkServed) {
		return h.s.UpdateLink(cfg)
	}
	return err
}

func (h dhcpHook) RemoveLink(name string) error { return h.s.RemoveLink(name) }

// APILeases lists the leases of a link ("" for all) for netspawnctl leases.
func (h dhcpHook) APILeases(link string) []api.Lease {
	var out []api.Lease
	for _, l := range h.s.Leases(link) {
		al := api.Lease{Link: l.Link, Address: l.IP.String(), Hostname: l.Hostname, State: l.State.String()}
		if len(l.MAC) > 0 {
			al.MAC = l.MAC.String()
		}
		if len(l.ClientID) > 0 {
			al.ClientID = hex.EncodeToString(l.ClientID)
		}
		if !l.Expiry.IsZero() {
			al.Expiry = l.Expiry.UTC().Format(time.RFC3339)
		}
		out = append(out, al)
	}
	return out
}

func (h dhcpHook) Reserve(link string, mac net.HardwareAddr, ip netip.Addr, hostname string) error {
	return h.s.Reserve(link, mac, ip, hostname)
}

// zoneNames keeps the machines' names in the zone the DNS server answers
// from. The server has one socket; nftables steers the containers' queries
// to their gateway there.
type zoneNames struct{ zone *dns.Zone }

func (z zoneNames) SetMachine(name string, addrs []netip.Addr) { z.zone.Set(name, addrs, "") }
func (z zoneNames) RemoveMachine(name string)                  { z.zone.Delete(name) }

// SetMachineView publishes a zone member's name in its zone's view.
func (z zoneNames) SetMachineView(name string, addrs []netip.Addr, view string) {
	z.zone.Set(name, addrs, view)
}

// zoneViews puts DNS clients of a zone's subnet in the zone's view: they
// resolve their zone's members only; everybody else sees every name. The
// controller, which knows the zones, is plugged in once it exists.
type zoneViews struct {
	of atomic.Pointer[func(netip.Addr) (string, bool)]
}

func (v *zoneViews) view(client netip.Addr) dns.View {
	if f := v.of.Load(); f != nil {
		if z, ok := (*f)(client); ok {
			return dns.View{Name: z}
		}
	}
	return dns.View{All: true}
}
