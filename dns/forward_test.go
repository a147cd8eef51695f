package dns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/netspawn/netspawn/internal/testutil"
)

// testUpstream is a miekg server on 127.0.0.1 (random port, UDP and TCP).
type testUpstream struct {
	release chan struct{} // slow.test. waits for it
	arrived chan struct{} // signalled when slow.test. arrives
	addr    netip.AddrPort
	queries atomic.Int64
	tcp     atomic.Int64
	rcode   atomic.Int32 // when set, every answer is this error
	ports   sync.Map     // client addresses seen
}

func startUpstream(t *testing.T) *testUpstream {
	t.Helper()
	u := &testUpstream{release: make(chan struct{}), arrived: make(chan struct{}, 16)}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		u.queries.Add(1)
		u.ports.Store(w.RemoteAddr().String(), true)
		_, isTCP := w.RemoteAddr().(*net.TCPAddr)
		if isTCP {
			u.tcp.Add(1)
		}
		m := new(dns.Msg)
		m.SetReply(r)
		if rc := u.rcode.Load(); rc != 0 {
			m.Rcode = int(rc)
			_ = w.WriteMsg(m)
			return
		}
		q := r.Question[0]
		soa, _ := dns.NewRR("test. 60 IN SOA ns.test. h.test. 1 2 3 4 30")
		switch strings.ToLower(q.Name) {
		case "example.test.":
			rr, _ := dns.NewRR("example.test. 60 IN A 10.1.2.3")
			m.Answer = append(m.Answer, rr)
		case "big.test.":
			if !isTCP {
				m.Truncated = true
				break
			}
			for i := 0; i < 200; i++ {
				rr, _ := dns.NewRR("big.test. 60 IN A 10.9." + string(rune('0'+i/100)) + "." + itoa(i%100))
				m.Answer = append(m.Answer, rr)
			}
		case "nx.test.":
			m.Rcode = dns.RcodeNameError
			m.Ns = append(m.Ns, soa)
		case "slow.test.":
			u.arrived <- struct{}{}
			<-u.release
			rr, _ := dns.NewRR("slow.test. 60 IN A 10.1.2.4")
			m.Answer = append(m.Answer, rr)
		case "fail.test.":
			m.Rcode = dns.RcodeServerFailure
		}
		_ = w.WriteMsg(m)
	})
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	l, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", itoa(port)))
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	us := &dns.Server{PacketConn: pc, Handler: handler}
	ts := &dns.Server{Listener: l, Handler: handler}
	go func() { _ = us.ActivateAndServe() }()
	go func() { _ = ts.ActivateAndServe() }()
	t.Cleanup(func() { _ = us.Shutdown(); _ = ts.Shutdown() })
	u.addr = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	return u
}

func itoa(i int) string {
	return string(appendInt(nil, i))
}

func appendInt(b []byte, i int) []byte {
	if i >= 10 {
		b = appendInt(b, i/10)
	}
	return append(b, byte('0'+i%10))
}

// blackhole is a UDP socket that never answers.
func blackhole(t *testing.T) netip.AddrPort {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

func fixed(ups ...netip.AddrPort) func() ([]netip.AddrPort, error) {
	return func() ([]netip.AddrPort, error) { return ups, nil }
}

func TestForwarderCache(t *testing.T) {
	u := startUpstream(t)
	cache := NewCache(100)
	now := time.Unix(1000, 0)
	cache.now = func() time.Time { return now }
	f := NewForwarder(ForwarderOptions{Upstreams: fixed(u.addr), Cache: cache})
	ctx := context.Background()

	req := query("Example.Test.", dns.TypeA)
	resp, err := f.Forward(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Id != req.Id || len(resp.Answer) != 1 || resp.Question[0].Name != "Example.Test." {
		t.Fatalf("resp = %v", resp)
	}
	now = now.Add(20 * time.Second)
	req2 := query("example.test.", dns.TypeA)
	resp, err = f.Forward(ctx, req2)
	if err != nil {
		t.Fatal(err)
	}
	if u.queries.Load() != 1 {
		t.Fatalf("upstream saw %d queries, want 1 (cache hit)", u.queries.Load())
	}
	if resp.Id != req2.Id || resp.Answer[0].Header().Ttl != 40 {
		t.Fatalf("cached resp id=%d ttl=%d", resp.Id, resp.Answer[0].Header().Ttl)
	}
	// Expired: asks again.
	now = now.Add(41 * time.Second)
	if _, err := f.Forward(ctx, req2); err != nil {
		t.Fatal(err)
	}
	if u.queries.Load() != 2 {
		t.Fatalf("upstream saw %d queries, want 2 after expiry", u.queries.Load())
	}

	// Negative answers are cached for the SOA minimum.
	nx := query("nx.test.", dns.TypeA)
	resp, err = f.Forward(ctx, nx)
	if err != nil || resp.Rcode != dns.RcodeNameError {
		t.Fatalf("nx: %v %v", resp, err)
	}
	if _, ok := f.Cached(nx); !ok {
		t.Fatal("NXDOMAIN not cached")
	}
	now = now.Add(31 * time.Second)
	if _, ok := f.Cached(nx); ok {
		t.Fatal("NXDOMAIN cached past the SOA minimum")
	}

	// SERVFAIL is passed on but not cached.
	sf := query("fail.test.", dns.TypeA)
	resp, err = f.Forward(ctx, sf)
	if err != nil || resp.Rcode != dns.RcodeServerFailure {
		t.Fatalf("fail: %v %v", resp, err)
	}
	if _, ok := f.Cached(sf); ok {
		t.Fatal("SERVFAIL cached")
	}
}

func TestForwarderCoalesces(t *testing.T) {
	u := startUpstream(t)
	f := NewForwarder(ForwarderOptions{Upstreams: fixed(u.addr), Timeout: time.Minute})
	const n = 5
	results := make(chan *dns.Msg, n)
	ask := func() {
		req := query("slow.test.", dns.TypeA)
		resp, err := f.Forward(context.Background(), req)
		if err != nil || resp.Id != req.Id || len(resp.Answer) != 1 {
			t.Errorf("coalesced answer: %v %v", resp, err)
		}
		results <- resp
	}
	go ask()
	<-u.arrived
	for i := 1; i < n; i++ {
		go ask()
	}
	if !testutil.Eventually(10*time.Second, func() bool { return f.joined.Load() == n-1 }) {
		t.Fatalf("%d of %d forwards joined the one in flight", f.joined.Load(), n-1)
	}
	close(u.release)
	for i := 0; i < n; i++ {
		<-results
	}
	if q := u.queries.Load(); q != 1 {
		t.Fatalf("upstream saw %d queries for %d identical forwards", q, n)
	}
}

func TestForwarderTCPFallback(t *testing.T) {
	u := startUpstream(t)
	f := NewForwarder(ForwarderOptions{Upstreams: fixed(u.addr)})
	resp, err := f.Forward(context.Background(), query("big.test.", dns.TypeA))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Truncated || len(resp.Answer) != 200 || u.tcp.Load() != 1 {
		t.Fatalf("tc=%v answers=%d tcp=%d", resp.Truncated, len(resp.Answer), u.tcp.Load())
	}
	// The handler truncates it again for a plain UDP client.
	req := query("big.test.", dns.TypeA)
	Finish(req, resp, true)
	b, err := resp.Pack()
	if err != nil || len(b) > 512 || !resp.Truncated {
		t.Fatalf("finish: %d bytes tc=%v err=%v", len(b), resp.Truncated, err)
	}
}

func TestForwarderFailover(t *testing.T) {
	u := startUpstream(t)
	dead := blackhole(t)
	self := netip.MustParseAddrPort("127.0.0.1:1")
	f := NewForwarder(ForwarderOptions{
		Upstreams: fixed(self, dead, u.addr, netip.MustParseAddrPort("127.0.0.1:2")),
		Self:      func(a netip.AddrPort) bool { return a == self },
		Timeout:   100 * time.Millisecond,
	})
	ups, _ := f.Upstreams()
	if want := []netip.AddrPort{dead, u.addr, netip.MustParseAddrPort("127.0.0.1:2")}; !slices.Equal(ups, want) {
		t.Fatalf("upstreams %v, want %v", ups, want)
	}
	resp, err := f.Forward(context.Background(), query("example.test.", dns.TypeA))
	if err != nil || len(resp.Answer) != 1 {
		t.Fatalf("failover: %v %v", resp, err)
	}
	// All dead: an error.
	f = NewForwarder(ForwarderOptions{Upstreams: fixed(dead), Timeout: 50 * time.Millisecond})
	if _, err := f.Forward(context.Background(), query("example.test.", dns.TypeA)); err == nil {
		t.Fatal("no error with a dead upstream")
	}
	f = NewForwarder(ForwarderOptions{})
	if _, err := f.Forward(context.Background(), query("example.test.", dns.TypeA)); !errors.Is(err, ErrNoUpstream) {
		t.Fatalf("err = %v, want ErrNoUpstream", err)
	}
}

func TestForwarderBusy(t *testing.T) {
	dead := blackhole(t)
	ctx, cancel := context.WithCancel(context.Background())
	f := NewForwarder(ForwarderOptions{Upstreams: fixed(dead), Timeout: time.Minute, MaxConcurrent: 1, Context: ctx})
	done := make(chan struct{})
	if err := f.ForwardAsync(query("a.test.", dns.TypeA), func(*dns.Msg, error) { close(done) }); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Forward(ctx, query("b.test.", dns.TypeA)); !errors.Is(err, ErrBusy) {
		t.Fatalf("err = %v, want ErrBusy", err)
	}
	if err := f.ForwardAsync(query("b.test.", dns.TypeA), func(*dns.Msg, error) {}); !errors.Is(err, ErrBusy) {
		t.Fatalf("async err = %v, want ErrBusy", err)
	}
	cancel()
	<-done
}

func TestUpstreamFileReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(path, []byte("nameserver 10.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	u := &upstreamFile{path: path}
	now := time.Unix(1000, 0)
	got, err := u.get(now)
	if err != nil || !slices.Equal(got, []netip.AddrPort{netip.MustParseAddrPort("10.0.0.1:53")}) {
		t.Fatalf("first read: %v %v", got, err)
	}
	if err := os.WriteFile(path, []byte("nameserver 10.0.0.2\nnameserver 10.0.0.3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Within a second the old list is kept (cheap checks).
	if got, _ := u.get(now.Add(100 * time.Millisecond)); len(got) != 1 {
		t.Fatalf("re-read too early: %v", got)
	}
	got, err = u.get(now.Add(2 * time.Second))
	if err != nil || len(got) != 2 || got[0] != netip.MustParseAddrPort("10.0.0.2:53") {
		t.Fatalf("after change: %v %v", got, err)
	}
	os.Remove(path)
	if _, err := u.get(now.Add(4 * time.Second)); err == nil {
		t.Fatal("no error for a missing resolv.conf")
	}
}

func TestCacheEviction(t *testing.T) {
	c := NewCache(16)
	for i := 0; i < 100; i++ {
		name := "n" + itoa(i) + ".test."
		req := query(name, dns.TypeA)
		resp := new(dns.Msg)
		resp.SetReply(req)
		rr, _ := dns.NewRR(name + " 60 IN A 10.0.0.1")
		resp.Answer = append(resp.Answer, rr)
		c.Put(req, resp)
		if c.Len() > 16 {
			t.Fatalf("cache grew to %d", c.Len())
		}
	}
	// Zero TTL and truncated answers are not cached.
	req := query("z.test.", dns.TypeA)
	resp := new(dns.Msg)
	resp.SetReply(req)
	rr, _ := dns.NewRR("z.test. 0 IN A 10.0.0.1")
	resp.Answer = append(resp.Answer, rr)
	c.Put(req, resp)
	if _, ok := c.Get(req); ok {
		t.Fatal("TTL 0 cached")
	}
}

func TestForwarderReusesSockets(t *testing.T) {
	u := startUpstream(t)
	f := NewForwarder(ForwarderOptions{Upstreams: fixed(u.addr)})
	defer f.Close()
	for _, name := range []string{"example.test.", "nx.test.", "fail.test.", "example.test."} {
		if _, err := f.Forward(context.Background(), query(name, dns.TypeA)); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	u.ports.Range(func(any, any) bool { n++; return true })
	if u.queries.Load() != 4 || n != 1 {
		t.Fatalf("%d queries from %d sockets, want 4 from one", u.queries.Load(), n)
	}
}
