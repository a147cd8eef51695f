package dns

import (
	"context"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/netspawn/netspawn/internal/testutil"
)

// answer builds an upstream reply to req with the given records.
func answer(t *testing.T, req *dns.Msg, rcode int, records ...string) *dns.Msg {
	t.Helper()
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.RecursionAvailable = true
	resp.Rcode = rcode
	for _, s := range records {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		if rr.Header().Rrtype == dns.TypeSOA {
			resp.Ns = append(resp.Ns, rr)
		} else {
			resp.Answer = append(resp.Answer, rr)
		}
	}
	return resp
}

// fakeClock is a cache clock the test moves.
type fakeClock struct{ t atomic.Int64 }

func newFakeClock(c *Cache) *fakeClock {
	fc := &fakeClock{}
	fc.t.Store(time.Unix(1000, 0).UnixNano())
	c.now = fc.now
	return fc
}
func (fc *fakeClock) now() time.Time      { return time.Unix(0, fc.t.Load()) }
func (fc *fakeClock) add(d time.Duration) { fc.t.Add(int64(d)) }
func ttlsOf(m *dns.Msg) (ttls []uint32) {
	for _, sec := range [][]dns.RR{m.Answer, m.Ns} {
		for _, rr := range sec {
			ttls = append(ttls, rr.Header().Ttl)
		}
	}
	return ttls
}

func TestCacheStaleWindow(t *testing.T) {
	c := NewStaleCache(100, time.Hour)
	clock := newFakeClock(c)
	req := query("Stale.Test.", dns.TypeA)
	c.Put(req, answer(t, req, dns.RcodeSuccess, "stale.test. 60 IN A 10.0.0.1", "stale.test. 90 IN A 10.0.0.2"))
	nx := query("nx.test.", dns.TypeA)
	c.Put(nx, answer(t, nx, dns.RcodeNameError, "test. 300 IN SOA ns.test. h.test. 1 2 3 4 20"))

	// Fresh: Get and Stale both count TTLs down.
	clock.add(25 * time.Second)
	for _, get := range []func(*dns.Msg) (*dns.Msg, bool){c.Get, c.Stale} {
		resp, ok := get(req)
		if !ok || resp.Id != req.Id || resp.Question[0].Name != "Stale.Test." {
			t.Fatalf("fresh: %v %v", resp, ok)
		}
		if got := ttlsOf(resp); got[0] != 35 || got[1] != 65 {
			t.Fatalf("fresh TTLs %v, want [35 65]", got)
		}
	}
	if c.StaleServed() != 0 {
		t.Fatalf("stale served %d for fresh answers", c.StaleServed())
	}
	// Expired (the smallest TTL decides): Get misses, Stale answers
	// with StaleTTL on every record; the negative answer too.
	clock.add(36 * time.Second)
	if _, ok := c.Get(req); ok {
		t.Fatal("Get returned an expired answer")
	}
	for _, r := range []*dns.Msg{req, nx} {
		resp, ok := c.Stale(r)
		if !ok {
			t.Fatalf("%s: no stale answer within the window", r.Question[0].Name)
		}
		for _, ttl := range ttlsOf(resp) {
			if ttl != StaleTTL {
				t.Fatalf("%s: stale TTLs %v, want all %d", r.Question[0].Name, ttlsOf(resp), StaleTTL)
			}
		}
	}
	if resp, _ := c.Stale(nx); resp.Rcode != dns.RcodeNameError {
		t.Fatalf("stale NXDOMAIN came back as %s", dns.RcodeToString[resp.Rcode])
	}
	if c.StaleServed() != 3 {
		t.Fatalf("stale served %d, want 3", c.StaleServed())
	}
	// Past the window: gone.
	clock.add(time.Hour)
	if _, ok := c.Stale(req); ok {
		t.Fatal("stale answer past max stale")
	}
	if _, ok := c.Stale(nx); ok {
		t.Fatal("stale negative answer past max stale")
	}
	if c.Len() != 0 {
		t.Fatalf("%d entries past the stale window kept", c.Len())
	}
}

func TestCacheNoStale(t *testing.T) {
	c := NewStaleCache(100, 0)
	clock := newFakeClock(c)
	req := query("a.test.", dns.TypeA)
	c.Put(req, answer(t, req, dns.RcodeSuccess, "a.test. 60 IN A 10.0.0.1"))
	clock.add(60 * time.Second)
	if _, ok := c.Stale(req); ok {
		t.Fatal("stale answer with serve-stale off")
	}
	if c.Len() != 0 {
		t.Fatal("expired entry kept with serve-stale off")
	}
}

func TestCacheEvictsStaleFirst(t *testing.T) {
	const size = 16 // evicts 2 at a time
	c := NewStaleCache(size, time.Hour)
	clock := newFakeClock(c)
	put := func(name string, ttl int) *dns.Msg {
		req := query(name, dns.TypeA)
		c.Put(req, answer(t, req, dns.RcodeSuccess, name+" "+itoa(ttl)+" IN A 10.0.0.1"))
		return req
	}
	var long, short []*dns.Msg
	for i := 0; i < size/2; i++ {
		long = append(long, put("long"+itoa(i)+".test.", 3600))
		short = append(short, put("short"+itoa(i)+".test.", 10))
	}
	clock.add(20 * time.Second) // the short ones are stale now
	for i := 0; i < size/2; i++ {
		put("new"+itoa(i)+".test.", 3600)
		if c.Len() > size {
			t.Fatalf("cache grew to %d", c.Len())
		}
	}
	for _, req := range long {
		if _, ok := c.Get(req); !ok {
			t.Fatalf("fresh %s evicted while stale entries were there", req.Question[0].Name)
		}
	}
	stale := 0
	for _, req := range short {
		if _, ok := c.Stale(req); ok {
			stale++
		}
	}
	if stale != 0 {
		t.Fatalf("%d stale entries kept, fresh ones needed the room", stale)
	}
	// Past the stale window entries go first of all.
	clock.add(2 * time.Hour)
	put("last.test.", 60)
	if c.Len() != 1 {
		t.Fatalf("%d entries after eviction, want only the new one", c.Len())
	}
}

// switchable returns an upstream list the test can change.
func switchable(ups ...netip.AddrPort) (func() ([]netip.AddrPort, error), func(...netip.AddrPort)) {
	var cur atomic.Pointer[[]netip.AddrPort]
	cur.Store(&ups)
	return func() ([]netip.AddrPort, error) { return *cur.Load(), nil },
		func(u ...netip.AddrPort) { cur.Store(&u) }
}

func TestForwarderServesStaleOnFailure(t *testing.T) {
	u := startUpstream(t)
	dead := blackhole(t)
	cache := NewStaleCache(100, time.Hour)
	clock := newFakeClock(cache)
	ups, set := switchable(u.addr)
	f := NewForwarder(ForwarderOptions{Upstreams: ups, Cache: cache, Timeout: 50 * time.Millisecond, StaleAfter: -1})
	ctx := context.Background()
	if _, err := f.Forward(ctx, query("example.test.", dns.TypeA)); err != nil {
		t.Fatal(err)
	}
	clock.add(61 * time.Second)
	check := func(how string) {
		t.Helper()
		req := query("Example.test.", dns.TypeA)
		resp, err := f.Forward(ctx, req)
		if err != nil {
			t.Fatalf("%s: %v", how, err)
		}
		if resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 1 || resp.Answer[0].Header().Ttl != StaleTTL ||
			resp.Id != req.Id || resp.Question[0].Name != "Example.test." {
			t.Fatalf("%s: %v, want the stale answer with TTL %d", how, resp, StaleTTL)
		}
	}
	set(dead)
	check("upstream silent")
	// The failure recheck timer: the stale answer again, without asking.
	set(u.addr)
	u.rcode.Store(dns.RcodeServerFailure)
	before := u.queries.Load()
	check("within the recheck time")
	if u.queries.Load() != before {
		t.Fatal("asked upstream within the failure recheck time")
	}
	clock.add(StaleRecheck)
	check("upstream SERVFAIL")
	if u.queries.Load() != before+1 {
		t.Fatal("did not ask upstream after the failure recheck time")
	}
	clock.add(StaleRecheck)
	u.rcode.Store(dns.RcodeRefused)
	check("upstream REFUSED")
	clock.add(StaleRecheck)
	// Without a stale answer the failure is passed on.
	if resp, err := f.Forward(ctx, query("other.test.", dns.TypeA)); err != nil || resp.Rcode != dns.RcodeRefused {
		t.Fatalf("no stale answer: %v %v, want REFUSED passed on", resp, err)
	}
	// The upstream back: a fresh answer refreshes the cache.
	u.rcode.Store(0)
	resp, err := f.Forward(ctx, query("example.test.", dns.TypeA))
	if err != nil || resp.Answer[0].Header().Ttl != 60 {
		t.Fatalf("after recovery: %v %v", resp, err)
	}
	if _, ok := f.Cached(query("example.test.", dns.TypeA)); !ok {
		t.Fatal("fresh answer not cached after recovery")
	}
}

func TestForwarderClientResponseTimer(t *testing.T) {
	u := startUpstream(t)
	cache := NewStaleCache(100, time.Hour)
	clock := newFakeClock(cache)
	f := NewForwarder(ForwarderOptions{Upstreams: fixed(u.addr), Cache: cache, Timeout: time.Minute, StaleAfter: 20 * time.Millisecond})
	req := query("slow.test.", dns.TypeA)
	cache.Put(req, answer(t, req, dns.RcodeSuccess, "slow.test. 10 IN A 10.9.9.9"))
	clock.add(11 * time.Second)

	// The upstream holds the answer: the query gets the stale one after
	// StaleAfter, and so do identical queries arriving meanwhile; the
	// upstream sees one query.
	resp, err := f.Forward(context.Background(), query("slow.test.", dns.TypeA))
	if err != nil || resp.Answer[0].(*dns.A).A.String() != "10.9.9.9" || resp.Answer[0].Header().Ttl != StaleTTL {
		t.Fatalf("stale answer: %v %v", resp, err)
	}
	<-u.arrived
	resp, err = f.Forward(context.Background(), query("slow.test.", dns.TypeA))
	if err != nil || resp.Answer[0].Header().Ttl != StaleTTL {
		t.Fatalf("second stale answer: %v %v", resp, err)
	}
	if q := u.queries.Load(); q != 1 {
		t.Fatalf("upstream saw %d queries, want 1", q)
	}
	// The refresh goes on and lands in the cache.
	close(u.release)
	if !testutil.Eventually(10*time.Second, func() bool {
		resp, ok := f.Cached(query("slow.test.", dns.TypeA))
		return ok && resp.Answer[0].(*dns.A).A.String() == "10.1.2.4"
	}) {
		t.Fatal("the refresh did not reach the cache")
	}
}

func TestForwarderWaitBounded(t *testing.T) {
	// No stale answer and a silent upstream: Forward returns when its
	// context is done, not when the upstream gives up.
	dead := blackhole(t)
	f := NewForwarder(ForwarderOptions{Upstreams: fixed(dead), Timeout: time.Minute, Cache: NewCache(10)})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := f.Forward(ctx, query("x.test.", dns.TypeA)); err == nil {
		t.Fatal("an answer from a silent upstream")
	}
}

func TestFastCachedMatchesGeneral(t *testing.T) {
	a := NewAuthority("", testZone(), 0)
	c := NewCache(100)
	clock := newFakeClock(c)
	store := func(req *dns.Msg, rcode int, rrs ...string) {
		resp := answer(t, req, rcode, rrs...)
		resp.SetEdns0(1232, false) // upstream's OPT: never passed on
		c.Put(req, resp)
	}
	store(query("www.example.com.", dns.TypeA), dns.RcodeSuccess,
		"www.example.com. 300 IN CNAME web.example.com.", "web.example.com. 120 IN A 192.0.2.1", "web.example.com. 120 IN A 192.0.2.2")
	store(query("nx.example.com.", dns.TypeAAAA), dns.RcodeNameError, "example.com. 600 IN SOA ns.example.com. h.example.com. 1 2 3 4 60")
	edns := query("WWW.Example.com.", dns.TypeA)
	edns.SetEdns0(4096, false)
	edns.Id = 4242
	edns.RecursionDesired = false
	do := query("www.example.com.", dns.TypeA)
	do.SetEdns0(4096, true)
	clock.add(7 * time.Second)
	for _, tc := range []struct {
		req  *dns.Msg
		fast bool
	}{
		{query("www.example.com.", dns.TypeA), true},
		{edns, true},
		{query("nx.Example.com.", dns.TypeAAAA), true},
		{do, false}, // DO is part of the key: not cached
		{query("www.example.com.", dns.TypeAAAA), false}, // not cached
		{query("web.netspawn.internal.", dns.TypeA), false},
		{query("localhost.", dns.TypeA), false},
	} {
		pkt, err := tc.req.Pack()
		if err != nil {
			t.Fatal(err)
		}
		var q wireQuery
		if !parseQuery(pkt, &q) {
			t.Fatalf("%s: not parsed", tc.req.Question[0].Name)
		}
		var fast []byte
		ok := !a.claims(&q)
		if ok {
			fast, ok = c.fastGet(nil, pkt, &q)
		}
		if ok != tc.fast {
			t.Fatalf("%s: fast path %v, want %v", tc.req.Question[0].String(), ok, tc.fast)
		}
		if !ok {
			continue
		}
		general, found := c.Get(tc.req)
		if !found {
			t.Fatalf("%s: fast but not in the cache", tc.req.Question[0].Name)
		}
		Finish(tc.req, general, true)
		got := new(dns.Msg)
		if err := got.Unpack(fast); err != nil {
			t.Fatalf("%s: fast reply does not parse: %v", tc.req.Question[0].Name, err)
		}
		// Names compressed against the question take the client's
		// spelling in the fast path (names are case-insensitive).
		if !strings.EqualFold(got.String(), general.String()) || got.Question[0].Name != tc.req.Question[0].Name {
			t.Fatalf("fast path:\n%v\ngeneral path:\n%v", got, general)
		}
		if got.Answer != nil && got.Answer[0].Header().Ttl != 293 && got.Ns == nil {
			t.Fatalf("TTL not counted down: %v", got)
		}
	}
	// Expired: the fast path steps aside.
	clock.add(time.Hour)
	pkt, _ := query("www.example.com.", dns.TypeA).Pack()
	var q wireQuery
	if !parseQuery(pkt, &q) {
		t.Fatal("not parsed")
	}
	if _, ok := c.fastGet(nil, pkt, &q); ok {
		t.Fatal("fast path answered an expired entry")
	}
}

func TestForwarderUpstreamDownServesStaleAtOnce(t *testing.T) {
	u := startUpstream(t)
	dead := blackhole(t)
	cache := NewStaleCache(100, time.Hour)
	clock := newFakeClock(cache)
	ups, set := switchable(u.addr)
	f := NewForwarder(ForwarderOptions{Upstreams: ups, Cache: cache, Timeout: 50 * time.Millisecond, StaleAfter: -1})
	for _, name := range []string{"a.test.", "b.test."} {
		req := query(name, dns.TypeA)
		cache.Put(req, answer(t, req, dns.RcodeSuccess, name+" 10 IN A 10.0.0.1"))
	}
	clock.add(11 * time.Second)
	set(dead)
	// The first stale name waits for the upstream to fail.
	if resp, err := f.Forward(context.Background(), query("a.test.", dns.TypeA)); err != nil || resp.Answer[0].Header().Ttl != StaleTTL {
		t.Fatalf("a: %v %v", resp, err)
	}
	// Now the upstream is known down: another stale name is answered
	// before ForwardAsync returns, and a refresh goes out.
	var got *dns.Msg
	if err := f.ForwardAsync(query("b.test.", dns.TypeA), func(m *dns.Msg, _ error) { got = m }); err != nil {
		t.Fatal(err)
	}
	if got == nil || got.Answer[0].Header().Ttl != StaleTTL {
		t.Fatalf("b not answered stale at once: %v", got)
	}
	// The upstream back: the background refresh of b fails (it went to
	// the dead one), the next exchange succeeds and ends the down state.
	if !testutil.Eventually(10*time.Second, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.inflight) == 0
	}) {
		t.Fatal("the refresh did not end")
	}
	set(u.addr)
	if resp, err := f.Forward(context.Background(), query("example.test.", dns.TypeA)); err != nil || len(resp.Answer) != 1 {
		t.Fatalf("after recovery: %v %v", resp, err)
	}
	if f.downUntil.Load() != 0 {
		t.Fatal("still down after an upstream answered")
	}
}
