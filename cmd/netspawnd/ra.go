package main

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/netspawn/netspawn/dns"
	"github.com/netspawn/netspawn/netctl"
	"github.com/netspawn/netspawn/ra"
)

// raHook sends router advertisements on every managed link with an IPv6
// prefix, and serves DNS on the link's IPv6 gateway, which the
// advertisements name as resolver (RDNSS). The IPv4 steering of DNS
// queries to one socket has no IPv6 counterpart (no DNAT across
// families), so the DNS server listens on each IPv6 gateway instead.
type raHook struct {
	ra  *ra.Server
	dns *dns.Server // nil without a DNS server
	log *slog.Logger

	mu  sync.Mutex
	gw6 map[string]netip.Addr
}

func newRAHook(d *dns.Server, log *slog.Logger) *raHook {
	return &raHook{ra: ra.New(ra.Options{Logger: log.With("server", "ra")}), dns: d, log: log, gw6: map[string]netip.Addr{}}
}

func (h *raHook) AddLink(l netctl.DHCPLink) error {
	if !l.Prefix6.IsValid() || !l.Gateway6.IsValid() {
		return nil
	}
	rl := ra.Link{Name: l.Name, Prefix: l.Prefix6, MTU: l.MTU}
	if l.Domain != "" {
		rl.Domains = []string{l.Domain}
	}
	if h.dns != nil {
		h.mu.Lock()
		if _, ok := h.gw6[l.Name]; !ok {
			if _, err := h.dns.Listen(netip.AddrPortFrom(l.Gateway6, 53)); err != nil {
				h.log.Warn("DNS on IPv6 gateway", "link", l.Name, "addr", l.Gateway6, "err", err)
			} else {
				h.gw6[l.Name] = l.Gateway6
			}
		}
		if _, ok := h.gw6[l.Name]; ok {
			rl.DNS = []netip.Addr{l.Gateway6}
		}
		h.mu.Unlock()
	} else {
		rl.DNS = l.DNS
	}
	return h.ra.AddLink(rl)
}

func (h *raHook) RemoveLink(name string) error {
	start := time.Now()
	defer func() { h.log.Debug("ra hook: link removed", "link", name, "took", time.Since(start)) }()
	h.mu.Lock()
	if gw, ok := h.gw6[name]; ok {
		_ = h.dns.Unlisten(netip.AddrPortFrom(gw, 53))
		delete(h.gw6, name)
	}
	h.mu.Unlock()
	h.ra.RemoveLink(name)
	return nil
}

func (h *raHook) Reserve(string, net.HardwareAddr, netip.Addr, string) error { return nil }
