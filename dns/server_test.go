package dns

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/netspawn/netspawn/internal/testutil"
)

func TestServerListenUDPTCP(t *testing.T) {
	u := startUpstream(t)
	z := testZone()
	s, err := NewServer(Options{Source: z, Upstreams: []netip.AddrPort{u.addr}, UDPReaders: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	if _, err := s.Listen(netip.MustParseAddrPort("0.0.0.0:0")); err == nil {
		t.Fatal("wildcard listen accepted")
	}
	addr, err := s.Listen(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Listen(addr); err == nil {
		t.Fatal("duplicate listen accepted")
	}
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
	resp, _, err := c.Exchange(query("web.netspawn.internal.", dns.TypeA), addr.String())
	if err != nil || len(resp.Answer) != 1 {
		t.Fatalf("udp: %v %v", resp, err)
	}
	// Forwarded over UDP (asynchronous path).
	resp, _, err = c.Exchange(query("example.test.", dns.TypeA), addr.String())
	if err != nil || len(resp.Answer) != 1 || resp.Answer[0].(*dns.A).A.String() != "10.1.2.3" {
		t.Fatalf("udp forward: %v %v", resp, err)
	}
	// A big answer truncates over UDP and comes whole over TCP.
	resp, _, err = c.Exchange(query("big.netspawn.internal.", dns.TypeA), addr.String())
	if err != nil || !resp.Truncated {
		t.Fatalf("udp big: tc=%v err=%v", resp != nil && resp.Truncated, err)
	}
	// Several queries on one TCP connection.
	tc := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
	conn, err := tc.Dial(addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []*dns.Msg{
		query("big.netspawn.internal.", dns.TypeA),
		query("web.", dns.TypeAAAA),
		query("example.test.", dns.TypeA),
		query("nope.netspawn.internal.", dns.TypeA),
	} {
		resp, _, err := tc.ExchangeWithConn(q, conn)
		if err != nil {
			t.Fatalf("tcp %s: %v", q.Question[0].Name, err)
		}
		if resp.Truncated || resp.Id != q.Id {
			t.Fatalf("tcp %s: %v", q.Question[0].Name, resp)
		}
	}
	// Changes are visible at once.
	z.Set("late", addrs("192.168.9.9"), "")
	resp, _, err = c.Exchange(query("late.", dns.TypeA), addr.String())
	if err != nil || len(resp.Answer) != 1 {
		t.Fatalf("late: %v %v", resp, err)
	}
	// We never forward to ourselves.
	s2, _ := NewServer(Options{Source: z, Upstreams: []netip.AddrPort{addr}})
	if ups, _ := s2.h.Forwarder.Upstreams(); len(ups) != 1 {
		t.Fatal("other server should use addr")
	}
	if ups, _ := s.h.Forwarder.Upstreams(); len(ups) != 1 {
		t.Fatalf("upstreams %v", ups)
	}
	if err := s.Unlisten(addr); err != nil {
		t.Fatal(err)
	}
	if err := s.Unlisten(addr); err == nil {
		t.Fatal("second Unlisten succeeded")
	}
}

func TestServerSelfUpstream(t *testing.T) {
	z := testZone()
	s, err := NewServer(Options{Source: z, Upstreams: []netip.AddrPort{}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var self atomic.Pointer[netip.AddrPort]
	s.h.Forwarder.opts.Upstreams = func() ([]netip.AddrPort, error) {
		if a := self.Load(); a != nil {
			return []netip.AddrPort{*a}, nil
		}
		return nil, nil
	}
	addr, err := s.Listen(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	self.Store(&addr)
	if ups, _ := s.h.Forwarder.Upstreams(); len(ups) != 0 {
		t.Fatalf("forwarding to ourselves: %v", ups)
	}
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
	resp, _, err := c.Exchange(query("example.test.", dns.TypeA), addr.String())
	if err != nil || resp.Rcode != dns.RcodeServerFailure {
		t.Fatalf("self: %v %v", resp, err)
	}
}

func TestServerCoalescedUDPAnswers(t *testing.T) {
	u := startUpstream(t)
	s, err := NewServer(Options{Source: NewZone(), Upstreams: []netip.AddrPort{u.addr}, UpstreamTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addr, err := s.Listen(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	plain := query("slow.test.", dns.TypeA)
	edns := query("SLOW.Test.", dns.TypeA)
	edns.SetEdns0(4096, false)
	type result struct {
		req, resp *dns.Msg
		err       error
	}
	results := make(chan result, 2)
	ask := func(req *dns.Msg) {
		resp, _, err := (&dns.Client{Timeout: time.Minute}).Exchange(req, addr.String())
		results <- result{req, resp, err}
	}
	go ask(plain)
	<-u.arrived
	go ask(edns)
	f := s.h.Forwarder
	if !testutil.Eventually(10*time.Second, func() bool { return f.joined.Load() == 1 }) {
		t.Fatal("the second query did not join the exchange in flight")
	}
	close(u.release)
	for i := 0; i < 2; i++ {
		r := <-results
		if r.err != nil || r.resp.Id != r.req.Id || len(r.resp.Answer) != 1 ||
			r.resp.Question[0].Name != r.req.Question[0].Name || (r.resp.IsEdns0() != nil) != (r.req.IsEdns0() != nil) {
			t.Fatalf("answer to %s: %v %v", r.req.Question[0].Name, r.resp, r.err)
		}
	}
	if q := u.queries.Load(); q != 1 {
		t.Fatalf("upstream saw %d queries, want 1", q)
	}
}
