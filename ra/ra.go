// Package ra sends IPv6 router advertisements on container links
// (messages built and parsed with github.com/mdlayher/ndp): the link's
// /64 for SLAAC (on-link, autonomous), the host as default router, and RDNSS/DNSSL pointing at a
// DNS server. It answers router solicitations and repeats unsolicited
// advertisements periodically, one goroutine per link, each with its own
// raw ICMPv6 socket bound to the link's link-local address and addressed
// by the link's index (conn.go). It knows nothing of netctl.
package ra

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Link is one link to advertise on.
type Link struct {
	Name    string
	Prefix  netip.Prefix // a /64
	DNS     []netip.Addr // RDNSS (IPv6 addresses only)
	Domains []string     // DNSSL
	MTU     int          // 0: no MTU option
}

// Lifetimes of what an advertisement announces (RFC 4861 defaults for a
// router advertising every few minutes).
const (
	RouterLifetime    = 30 * time.Minute
	ValidLifetime     = 2 * time.Hour
	PreferredLifetime = time.Hour
	DNSLifetime       = 30 * time.Minute
)

// Advertisement builds the router advertisement for l from a router with
// the link-layer address mac (pure).
func Advertisement(l Link, mac net.HardwareAddr) (*ndp.RouterAdvertisement, error) {
	if !l.Prefix.Addr().Is6() || l.Prefix.Bits() != 64 {
		return nil, fmt.Errorf("link %s: prefix %s is not an IPv6 /64", l.Name, l.Prefix)
	}
	m := &ndp.RouterAdvertisement{
		CurrentHopLimit: 64,
		RouterLifetime:  RouterLifetime,
		Options: []ndp.Option{
			&ndp.PrefixInformation{PrefixLength: 64, OnLink: true, AutonomousAddressConfiguration: true,
				ValidLifetime: ValidLifetime, PreferredLifetime: PreferredLifetime, Prefix: l.Prefix.Masked().Addr()},
		},
	}
	if len(mac) == 6 {
		m.Options = append(m.Options, &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac})
	}
	if l.MTU > 0 {
		m.Options = append(m.Options, ndp.NewMTU(uint32(l.MTU)))
	}
	var dns []netip.Addr
	for _, a := range l.DNS {
		if a.Is6() && !a.Is4In6() {
			dns = append(dns, a)
		}
	}
	if len(dns) > 0 {
		m.Options = append(m.Options, &ndp.RecursiveDNSServer{Lifetime: DNSLifetime, Servers: dns})
	}
	if len(l.Domains) > 0 {
		m.Options = append(m.Options, &ndp.DNSSearchList{Lifetime: DNSLifetime, DomainNames: l.Domains})
	}
	return m, nil
}

// Options configure a Server.
type Options struct {
	Logger *slog.Logger
	// Interval between unsolicited advertisements (default 3 minutes; the
	// first few after a link appears come every few seconds).
	Interval time.Duration
	// Poll is how often a link is checked for its link-local address
	// before the socket can be opened (default 200ms).
	Poll time.Duration
}

// Server advertises on links added with AddLink, while Run runs.
type Server struct {
	o Options

	mu    sync.Mutex
	ctx   context.Context
	links map[string]*linkRun
	watch *addrWatch // nil: links poll for their address
}

type linkRun struct {
	l      Link
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a server; call Run.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Interval <= 0 {
		o.Interval = 3 * time.Minute
	}
	if o.Poll <= 0 {
		o.Poll = 200 * time.Millisecond
	}
	return &Server{o: o, links: map[string]*linkRun{}}
}

// Run serves until ctx ends; links added before Run start then.
func (s *Server) Run(ctx context.Context) error {
	w, err := newAddrWatch()
	if err != nil {
		s.o.Logger.Warn("ra: no address notifications; links without carrier are polled", "err", err)
	} else {
		defer w.close()
	}
	s.mu.Lock()
	s.ctx = ctx
	s.watch = w
	for _, r := range s.links {
		s.start(r)
	}
	s.mu.Unlock()
	<-ctx.Done()
	s.mu.Lock()
	runs := make([]*linkRun, 0, len(s.links))
	for _, r := range s.links {
		runs = append(runs, r)
	}
	s.mu.Unlock()
	for _, r := range runs {
		if r.cancel != nil {
			r.cancel()
			<-r.done
		}
	}
	return ctx.Err()
}

// AddLink starts advertising on l (replacing an earlier config of it).
func (s *Server) AddLink(l Link) error {
	if _, err := Advertisement(l, nil); err != nil {
		return err
	}
	s.RemoveLink(l.Name)
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &linkRun{l: l}
	s.links[l.Name] = r
	if s.ctx != nil {
		s.start(r)
	}
	return nil
}

// RemoveLink stops advertising on a link.
func (s *Server) RemoveLink(name string) {
	s.mu.Lock()
	r, ok := s.links[name]
	delete(s.links, name)
	s.mu.Unlock()
	if ok && r.cancel != nil {
		r.cancel()
		<-r.done
	}
}

// start runs r (s.mu held).
func (s *Server) start(r *linkRun) {
	ctx, cancel := context.WithCancel(s.ctx)
	r.cancel, r.done = cancel, make(chan struct{})
	go func() {
		defer close(r.done)
		if err := s.serveLink(ctx, r.l); err != nil && !errors.Is(err, context.Canceled) {
			s.o.Logger.Warn("router advertisements stopped", "link", r.l.Name, "err", err)
		}
	}()
}

// waitLinkLocal waits until the link has a usable link-local address (the
// kernel adds it once the link has carrier, i.e. the peer is up).
//
// It looks when the server's address watch reports an IPv6 address event
// on the link (and at most every few seconds in case one was missed);
// without the watch, every Poll, backing off to a few seconds: each look
// dumps the host's links and addresses.
func (s *Server) waitLinkLocal(ctx context.Context, name string) (*net.Interface, netip.Addr, error) {
	s.mu.Lock()
	w := s.watch
	s.mu.Unlock()
	var wake chan struct{}
	delay := s.o.Poll
	for {
		ifi, err := interfaceByName(name)
		if err == nil && w != nil && wake == nil {
			// Registered before the look below: no event falls between.
			var cancel func()
			wake, cancel = w.wait(ifi.Index)
			defer cancel()
		}
		if err == nil {
			if ll, ok, err := linkLocal(ifi.Index); err == nil && ok {
				return ifi, ll, nil
			}
		}
		if wake != nil {
			delay = maxPoll
		}
		select {
		case <-ctx.Done():
			return nil, netip.Addr{}, ctx.Err()
		case <-wake:
		case <-time.After(delay):
			delay = min(2*delay, maxPoll)
		}
	}
}

// interfaceByName asks the kernel for one link (net.InterfaceByName dumps
// them all, and with many veths whose peers live in other namespaces a
// dump costs the kernel a walk of the namespace ids per link).
func interfaceByName(name string) (*net.Interface, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, err
	}
	a := l.Attrs()
	return &net.Interface{Index: a.Index, MTU: a.MTU, Name: a.Name, HardwareAddr: a.HardwareAddr, Flags: a.Flags}, nil
}

// maxPoll bounds the wait between two looks at a link's addresses.
const maxPoll = 5 * time.Second

var allNodes = netip.MustParseAddr("ff02::1")
var allRouters = netip.MustParseAddr("ff02::2")

func (s *Server) serveLink(ctx context.Context, l Link) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		ifi *net.Interface
		ll  netip.Addr
		c   *conn
	)
	for {
		var err error
		if ifi, ll, err = s.waitLinkLocal(ctx, l.Name); err != nil {
			return err
		}
		if c, err = listenICMPv6(ifi.Index, ll); err == nil {
			break
		}
		// The link-local address may still be tentative for a moment
		// (or gone, replaced by another: look again).
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("%s: %w", l.Name, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(s.o.Poll):
		}
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	ra, err := Advertisement(l, ifi.HardwareAddr)
	if err != nil {
		return err
	}
	log := s.o.Logger.With("link", l.Name)
	log.Info("sending router advertisements", "prefix", l.Prefix, "dns", l.DNS)
	msg, err := ndp.MarshalMessage(ra)
	if err != nil {
		return err
	}
	var wmu sync.Mutex
	send := func(dst netip.Addr) {
		wmu.Lock()
		defer wmu.Unlock()
		if err := c.writeTo(msg, dst); err != nil && ctx.Err() == nil {
			log.Debug("send router advertisement", "to", dst, "err", err)
		}
	}
	go func() {
		// RFC 4861 6.2.4: the first few unsolicited ones come quickly.
		delays := []time.Duration{0, 2 * time.Second, 4 * time.Second, 8 * time.Second}
		for i := 0; ; i++ {
			d := s.o.Interval
			if i < len(delays) {
				d = delays[i]
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
			send(allNodes)
		}
	}()
	buf := make([]byte, 1500)
	for {
		n, from, err := c.readFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read on %s: %w", l.Name, err)
		}
		if from == ll {
			continue // our own
		}
		m, err := ndp.ParseMessage(buf[:n])
		if err != nil {
			continue
		}
		if _, ok := m.(*ndp.RouterSolicitation); !ok {
			continue
		}
		// A solicitation from an address we can reach gets a unicast
		// answer; one from :: (no address yet) the multicast one.
		dst := allNodes
		if from.IsLinkLocalUnicast() {
			dst = from
		}
		log.Debug("router solicitation", "from", from)
		send(dst)
	}
}
