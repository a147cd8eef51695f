package main

import (
	"encoding/hex"
	"time"

	"context"
	"errors"
	"fmt"
	"github.com/netspawn/netspawn/netctl/api"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/netspawn/netspawn/dhcp"
	"github.com/netspawn/netspawn/dns"
	"github.com/netspawn/netspawn/netctl"
	"github.com/netspawn/netspawn/nss"
)

// services are the servers netspawnd runs beside the controller: DHCP on
// every managed link, DNS for machine names on every gateway address (and
// a loopback address for the host), and the NSS module's socket. They
// implement the controller's DHCPServer and NameSink hooks.
type services struct {
	log  *slog.Logger
	dhcp *dhcp.Server
	dns  *dns.Server
	zone *dns.Zone
	nssL net.Listener
	// domain is the machines' DNS domain (NAME.<domain> resolves like NAME).
	domain string

	mu       sync.Mutex
	gateways map[string]netip.Addr // link -> gateway the DNS server listens on

	// viewOf maps a client address to its zone (set once the controller
	// exists; nil until then).
	viewOf atomic.Pointer[func(netip.Addr) (string, bool)]
}

type serviceOptions struct {
	runtimeDir, stateDir string
	domain               string
	hostDNS              string // loopback address:port for the host, "" for none
	resolvConf           string // upstream resolvers
	noDNS                bool
}

func newServices(o serviceOptions, log *slog.Logger) (*services, error) {
	s := &services{log: log, zone: dns.NewZone(), gateways: map[string]netip.Addr{}, domain: o.domain}
	if s.domain == "" {
		s.domain = dns.DefaultDomain
	}
	d, err := dhcp.New(dhcp.Options{StateDir: filepath.Join(o.stateDir, "dhcp"), Logger: log.With("server", "dhcp")})
	if err != nil {
		return nil, fmt.Errorf("dhcp: %w", err)
	}
	s.dhcp = d
	if !o.noDNS {
		srv, err := dns.NewServer(dns.Options{Source: s.zone, ViewOf: s.dnsView, Domain: o.domain, ResolvConf: o.resolvConf, Logger: log.With("server", "dns")})
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("dns: %w", err)
		}
		s.dns = srv
		if o.hostDNS != "" {
			ap, err := netip.ParseAddrPort(o.hostDNS)
			if err != nil {
				d.Close()
				srv.Close()
				return nil, fmt.Errorf("--host-dns: %w", err)
			}
			if _, err := srv.Listen(ap); err != nil {
				log.Warn("DNS for the host not available", "addr", ap, "err", err)
			}
		}
	}
	l, err := nss.Listen(filepath.Join(o.runtimeDir, "nss.sock"))
	if err != nil {
		log.Warn("NSS socket not available: the host cannot resolve machine names through libnss_netspawn", "err", err)
	} else {
		s.nssL = l
	}
	return s, nil
}

// run serves until ctx ends.
func (s *services) run(ctx context.Context) {
	go func() {
		if err := s.dhcp.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			s.log.Error("dhcp server", "err", err)
		}
	}()
	if s.dns != nil {
		go func() {
			if err := s.dns.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				s.log.Error("dns server", "err", err)
			}
		}()
	}
	if s.nssL != nil {
		go func() {
			srv := &nss.Server{Source: s.zone, Domain: s.domain, Logger: s.log.With("server", "nss")}
			if err := srv.Serve(ctx, s.nssL); err != nil && !errors.Is(err, context.Canceled) {
				s.log.Error("nss server", "err", err)
			}
		}()
	}
}

func (s *services) close() {
	s.dhcp.Close()
	if s.dns != nil {
		s.dns.Close()
	}
	if s.nssL != nil {
		s.nssL.Close()
	}
}

// AddLink serves DHCP on a managed link and DNS on its gateway address.
func (s *services) AddLink(l netctl.DHCPLink) error {
	cfg := dhcp.LinkConfig{Name: l.Name, Index: l.Index, Subnet: l.Subnet, ServerIP: l.Gateway,
		Routers: []netip.Addr{l.Gateway}, DNS: l.DNS, Domain: l.Domain, MTU: l.MTU, LeaseTime: l.LeaseTime,
		PoolStart: l.PoolStart, PoolEnd: l.PoolEnd}
	if l.Domain != "" {
		cfg.Search = []string{l.Domain}
	}
	err := s.dhcp.AddLink(cfg)
	if err != nil && s.dhcp.UpdateLink(cfg) == nil {
		err = nil // the link was known already (a restart's reconcile)
	}
	if s.dns != nil {
		s.mu.Lock()
		if _, ok := s.gateways[l.Name]; !ok {
			if _, derr := s.dns.Listen(netip.AddrPortFrom(l.Gateway, 53)); derr != nil {
				s.log.Warn("DNS on gateway", "link", l.Name, "addr", l.Gateway, "err", derr)
			} else {
				s.gateways[l.Name] = l.Gateway
			}
		}
		s.mu.Unlock()
	}
	return err
}

// RemoveLink stops serving a link.
func (s *services) RemoveLink(name string) error {
	if s.dns != nil {
		s.mu.Lock()
		if gw, ok := s.gateways[name]; ok {
			_ = s.dns.Unlisten(netip.AddrPortFrom(gw, 53))
			delete(s.gateways, name)
		}
		s.mu.Unlock()
	}
	return s.dhcp.RemoveLink(name)
}

// Reserve gives a machine's MAC its address.
func (s *services) Reserve(link string, mac net.HardwareAddr, ip netip.Addr, hostname string) error {
	return s.dhcp.Reserve(link, mac, ip, hostname)
}

// SetMachine publishes a machine's name.
func (s *services) SetMachine(name string, addrs []netip.Addr) {
	s.zone.Set(name, addrs, "")
}

// RemoveMachine withdraws a machine's name.
func (s *services) RemoveMachine(name string) { s.zone.Delete(name) }

// APILeases lists the DHCP leases of a link ("" for all) for the API.
func (s *services) APILeases(link string) []api.Lease {
	var out []api.Lease
	for _, l := range s.dhcp.Leases(link) {
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

// dnsView puts clients of a zone's subnet in the zone's view: they resolve
// their zone's members only. Everybody else sees every name.
func (s *services) dnsView(client netip.Addr) dns.View {
	if f := s.viewOf.Load(); f != nil {
		if z, ok := (*f)(client); ok {
			return dns.View{Name: z}
		}
	}
	return dns.View{All: true}
}

// SetMachineView publishes a zone member's name in its zone's view.
func (s *services) SetMachineView(name string, addrs []netip.Addr, view string) {
	s.zone.Set(name, addrs, view)
}
