package dns

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// countObserver records what the server reports.
type countObserver struct {
	mu        sync.Mutex
	queries   map[[2]int]int // {qtype, rcode}
	upstreams map[int]int    // rcode (-1: error)
	took      time.Duration
}

func newCountObserver() *countObserver {
	return &countObserver{queries: map[[2]int]int{}, upstreams: map[int]int{}}
}

func (o *countObserver) Query(qtype uint16, rcode int) {
	o.mu.Lock()
	o.queries[[2]int{int(qtype), rcode}]++
	o.mu.Unlock()
}

func (o *countObserver) Upstream(took time.Duration, rcode int, err error) {
	o.mu.Lock()
	if err != nil {
		rcode = -1
	}
	o.upstreams[rcode]++
	o.took += took
	o.mu.Unlock()
}

func (o *countObserver) query(qtype uint16, rcode int) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.queries[[2]int{int(qtype), rcode}]
}

// Every path a query can take reports it once: the wire fast path, the
// cache's fast path, the general path, a forward, TCP.
func TestObserverCountsEveryPath(t *testing.T) {
	u := startUpstream(t)
	obs := newCountObserver()
	s, err := NewServer(Options{Source: testZone(), Upstreams: []netip.AddrPort{u.addr}, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	addr, err := s.Listen(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
	ask := func(c *dns.Client, name string, qtype uint16, want int) {
		t.Helper()
		resp, _, err := c.Exchange(query(name, qtype), addr.String())
		if err != nil || resp.Rcode != want {
			t.Fatalf("%s %s: %v %v", name, dns.TypeToString[qtype], resp, err)
		}
	}
	ask(c, "web.netspawn.internal.", dns.TypeA, dns.RcodeSuccess)      // wire fast path
	ask(c, "nobody.netspawn.internal.", dns.TypeA, dns.RcodeNameError) // general path
	ask(c, "example.test.", dns.TypeA, dns.RcodeSuccess)               // forwarded
	ask(c, "example.test.", dns.TypeA, dns.RcodeSuccess)               // from the cache
	ask(c, "nx.test.", dns.TypeAAAA, dns.RcodeNameError)               // forwarded, NXDOMAIN
	ask(&dns.Client{Net: "tcp", Timeout: 5 * time.Second}, "web.", dns.TypeAAAA, dns.RcodeSuccess)
	if n := obs.query(dns.TypeA, dns.RcodeSuccess); n != 3 {
		t.Errorf("A NOERROR counted %d times, want 3 (fast path, forward, cache)", n)
	}
	if n := obs.query(dns.TypeA, dns.RcodeNameError); n != 1 {
		t.Errorf("A NXDOMAIN counted %d times, want 1", n)
	}
	if n := obs.query(dns.TypeAAAA, dns.RcodeNameError); n != 1 {
		t.Errorf("forwarded AAAA NXDOMAIN counted %d times, want 1", n)
	}
	if n := obs.query(dns.TypeAAAA, dns.RcodeSuccess); n != 1 {
		t.Errorf("TCP AAAA NOERROR counted %d times, want 1", n)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.upstreams[dns.RcodeSuccess] != 1 || obs.upstreams[dns.RcodeNameError] != 1 || obs.took <= 0 {
		t.Errorf("upstream exchanges %v (took %s), want one NOERROR and one NXDOMAIN", obs.upstreams, obs.took)
	}
}

// A query without a readable question is counted with type 0.
func TestWireQType(t *testing.T) {
	m := query("web.", dns.TypeAAAA)
	b, _ := m.Pack()
	if got := wireQType(b); got != dns.TypeAAAA {
		t.Errorf("wireQType = %d, want AAAA", got)
	}
	m.Question = nil
	b, _ = m.Pack()
	if got := wireQType(b); got != 0 {
		t.Errorf("wireQType without a question = %d, want 0", got)
	}
	if got := wireQType(b[:5]); got != 0 {
		t.Errorf("wireQType of a short packet = %d", got)
	}
}
