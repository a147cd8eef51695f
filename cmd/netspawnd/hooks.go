package main

import (
	"net"
	"net/netip"
	"strings"
	"sync"

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

// dnsHook listens on each managed link's gateway address and keeps the
// machines' names in the zone the DNS server answers from.
type dnsHook struct {
	s    *dns.Server
	zone *dns.Zone
	mu   sync.Mutex
	addr map[string]netip.AddrPort // link -> listener
}

func newDNSHook(s *dns.Server, zone *dns.Zone) *dnsHook {
	return &dnsHook{s: s, zone: zone, addr: map[string]netip.AddrPort{}}
}

func (h *dnsHook) AddLink(l netctl.DHCPLink) error {
	ap := netip.AddrPortFrom(l.Gateway, 53)
	h.mu.Lock()
	defer h.mu.Unlock()
	if old, ok := h.addr[l.Name]; ok {
		if old == ap {
			return nil
		}
		_ = h.s.Unlisten(old)
	}
	if _, err := h.s.Listen(ap); err != nil && !strings.Contains(err.Error(), "already listening") {
		return err
	}
	h.addr[l.Name] = ap
	return nil
}

func (h *dnsHook) RemoveLink(name string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	ap, ok := h.addr[name]
	if !ok {
		return nil
	}
	delete(h.addr, name)
	return h.s.Unlisten(ap)
}

func (h *dnsHook) Reserve(string, net.HardwareAddr, netip.Addr, string) error { return nil }

func (h *dnsHook) SetMachine(name string, addrs []netip.Addr) { h.zone.Set(name, addrs, "") }
func (h *dnsHook) RemoveMachine(name string)                  { h.zone.Delete(name) }
