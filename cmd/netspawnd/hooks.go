package main

import (
	"net"
	"net/netip"
	"strings"

	"github.com/netspawn/netspawn/dhcp"
	"github.com/netspawn/netspawn/dns"
	"github.com/netspawn/netspawn/netctl"
)

// dhcpHook serves DHCP on every managed link with the machine's address
// reserved for its host0 MAC.
type dhcpHook struct{ s *dhcp.Server }

func (h dhcpHook) AddLink(l netctl.DHCPLink) error {
	cfg := dhcp.LinkConfig{Name: l.Name, Index: l.Index, Subnet: l.Subnet, ServerIP: l.Gateway,
		Routers: []netip.Addr{l.Gateway}, DNS: l.DNS, Domain: l.Domain, MTU: l.MTU, LeaseTime: l.LeaseTime}
	if l.Domain != "" {
		cfg.Search = []string{l.Domain}
	}
	err := h.s.AddLink(cfg)
	if err != nil && strings.Contains(err.Error(), "already served") {
		return h.s.UpdateLink(cfg)
	}
	return err
}

func (h dhcpHook) RemoveLink(name string) error { return h.s.RemoveLink(name) }

func (h dhcpHook) Reserve(link string, mac net.HardwareAddr, ip netip.Addr, hostname string) error {
	return h.s.Reserve(link, mac, ip, hostname)
}

// zoneNames keeps the machines' names in the zone the DNS server answers
// from. The server has one socket; nftables steers the containers' queries
// to their gateway there.
type zoneNames struct{ zone *dns.Zone }

func (z zoneNames) SetMachine(name string, addrs []netip.Addr) { z.zone.Set(name, addrs, "") }
func (z zoneNames) RemoveMachine(name string)                  { z.zone.Delete(name) }
