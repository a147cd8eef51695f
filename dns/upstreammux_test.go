package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/netspawn/netspawn/internal/testutil"
)

func TestSameQuestion(t *testing.T) {
	q := query("Www.Example.test.", dns.TypeA)
	qb, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	end, _ := skipName(qb, hdrLen)
	question := qb[hdrLen : end+4]
	reply := func(name string, qtype uint16, mod func(*dns.Msg)) []byte {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		m.Response = true
		if mod != nil {
			mod(m)
		}
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, c := range []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"same", reply("Www.Example.test.", dns.TypeA, nil), true},
		{"other case", reply("www.EXAMPLE.TEST.", dns.TypeA, nil), true},
		{"other name", reply("www.example.tesu.", dns.TypeA, nil), false},
		{"shorter name", reply("example.test.", dns.TypeA, nil), false},
		{"other type", reply("www.example.test.", dns.TypeAAAA, nil), false},
		{"other class", reply("www.example.test.", dns.TypeA, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }), false},
		{"no question", reply("www.example.test.", dns.TypeA, func(m *dns.Msg) { m.Question = nil }), false},
		{"two questions", reply("www.example.test.", dns.TypeA, func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }), false},
		{"header only", reply("www.example.test.", dns.TypeA, nil)[:hdrLen], false},
	} {
		if got := sameQuestion(c.pkt, question); got != c.want {
			t.Errorf("%s: sameQuestion = %v, want %v", c.name, got, c.want)
		}
	}
	// Non-letters are never folded: '@' (0x40) is not '`' (0x60).
	if equalFoldASCII("a@b", "a`b") || !equalFoldASCII([]byte("A-b"), []byte("a-B")) {
		t.Error("equalFoldASCII folds more than ASCII letters")
	}
}

// forgingUpstream answers every query over UDP, but first sends a reply
// with the right ID and another question, and one with another ID.
func forgingUpstream(t *testing.T) (netip.AddrPort, *int64) {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	var mu sync.Mutex
	var forged int64
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			req := new(dns.Msg)
			if req.Unpack(buf[:n]) != nil {
				continue
			}
			send := func(m *dns.Msg) {
				b, _ := m.Pack()
				_, _ = pc.WriteTo(b, from)
			}
			bad := new(dns.Msg)
			bad.SetReply(req)
			bad.Question[0].Name = "evil.test."
			rr, _ := dns.NewRR(req.Question[0].Name + " 60 IN A 6.6.6.6")
			bad.Answer = []dns.RR{rr}
			send(bad)
			bad2 := bad.Copy()
			bad2.Question = req.Question
			bad2.Id = req.Id + 1
			send(bad2)
			mu.Lock()
			forged += 2
			mu.Unlock()
			good := new(dns.Msg)
			good.SetReply(req)
			rr, _ = dns.NewRR(req.Question[0].Name + " 60 IN A 10.1.1.1")
			good.Answer = []dns.RR{rr}
			send(good)
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).AddrPort(), &forged
}

func TestForwarderDropsMismatchedReplies(t *testing.T) {
	up, _ := forgingUpstream(t)
	f := NewForwarder(ForwarderOptions{Upstreams: fixed(up), Timeout: 10 * time.Second})
	defer f.Close()
	for i := 0; i < 20; i++ {
		resp, err := f.Forward(context.Background(), query(fmt.Sprintf("n%d.test.", i), dns.TypeA))
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Answer) != 1 || resp.Answer[0].(*dns.A).A.String() != "10.1.1.1" {
			t.Fatalf("answer %v, want the genuine one", resp.Answer)
		}
	}
}

func TestForwarderRotatesSockets(t *testing.T) {
	u := startUpstream(t)
	f := NewForwarder(ForwarderOptions{Upstreams: fixed(u.addr)})
	defer f.Close()
	f.udp.setLimits(3, time.Hour)
	for i := 0; i < 9; i++ {
		if _, err := f.Forward(context.Background(), query(fmt.Sprintf("n%d.test.", i), dns.TypeA)); err != nil {
			t.Fatal(err)
		}
	}
	if _, opened := f.udp.sockets(); opened != 3 {
		t.Fatalf("9 queries from %d sockets, want 3 (3 queries each)", opened)
	}
	// The retired sockets are closed once their replies are in.
	if !testutil.Eventually(10*time.Second, func() bool { open, _ := f.udp.sockets(); return open == 1 }) {
		open, _ := f.udp.sockets()
		t.Fatalf("%d sockets open, want 1", open)
	}
	// By age too.
	f.udp.setLimits(1000, time.Nanosecond)
	if _, err := f.Forward(context.Background(), query("aged.test.", dns.TypeA)); err != nil {
		t.Fatal(err)
	}
	if _, opened := f.udp.sockets(); opened != 4 {
		t.Fatalf("%d sockets opened after the socket's age ran out, want 4", opened)
	}
}

func TestForwarderManyInFlight(t *testing.T) {
	// Many exchanges share the sockets; those to a silent upstream all
	// time out (one deadline sweep) and move to the next upstream.
	u := startUpstream(t)
	dead := blackhole(t)
	f := NewForwarder(ForwarderOptions{Upstreams: fixed(dead, u.addr), Timeout: 100 * time.Millisecond})
	defer f.Close()
	const n = 100
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		req := query(fmt.Sprintf("m%d.test.", i), dns.TypeA)
		if err := f.ForwardAsync(req, func(resp *dns.Msg, err error) {
			if err == nil && (resp.Id != req.Id || resp.Rcode != dns.RcodeSuccess) {
				err = fmt.Errorf("bad answer %v", resp)
			}
			errs <- err
		}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if q := u.queries.Load(); q != n {
		t.Fatalf("second upstream saw %d queries, want %d", q, n)
	}
}

func TestForwarderRefusedPortFailsFast(t *testing.T) {
	// A closed port: the ICMP error ends the exchange long before the
	// upstream timeout.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	pc.Close()
	f := NewForwarder(ForwarderOptions{Upstreams: fixed(closed), Timeout: time.Hour})
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = f.Forward(ctx, query("x.test.", dns.TypeA))
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the refused upstream's error", err)
	}
}

func TestForwarderCloseEndsExchanges(t *testing.T) {
	dead := blackhole(t)
	f := NewForwarder(ForwarderOptions{Upstreams: fixed(dead), Timeout: time.Hour})
	done := make(chan error, 1)
	if err := f.ForwardAsync(query("x.test.", dns.TypeA), func(_ *dns.Msg, err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := <-done; err == nil {
		t.Fatal("no error after Close")
	}
	if n, _ := f.udp.sockets(); n != 0 {
		t.Fatalf("%d sockets open after Close", n)
	}
	if f.downUntil.Load() != 0 {
		t.Fatal("Close counted as the upstreams failing")
	}
	if _, err := f.Forward(context.Background(), query("y.test.", dns.TypeA)); err == nil {
		t.Fatal("a forward after Close succeeded")
	}
}

func TestWireFromReplyMatchesWireOf(t *testing.T) {
	req := query("www.example.test.", dns.TypeA)
	mk := func(rcode int, opt bool, records ...string) *dns.Msg {
		m := answer(t, req, rcode, records...)
		m.Question[0].Name = "WWW.example.test."
		if opt {
			m.SetEdns0(1232, true)
		}
		return m
	}
	for _, c := range []struct {
		name string
		m    *dns.Msg
		raw  func([]byte) []byte
		ok   bool
	}{
		{"two A, OPT", mk(dns.RcodeSuccess, true, "www.example.test. 60 IN A 10.0.0.1", "www.example.test. 90 IN A 10.0.0.2"), nil, true},
		{"no OPT", mk(dns.RcodeSuccess, false, "www.example.test. 60 IN A 10.0.0.1"), nil, true},
		{"CNAME chain", mk(dns.RcodeSuccess, true, "www.example.test. 60 IN CNAME web.example.test.", "web.example.test. 30 IN A 10.0.0.3"), nil, true},
		{"NXDOMAIN", mk(dns.RcodeNameError, true, "example.test. 60 IN SOA ns.example.test. h.example.test. 1 2 3 4 30"), nil, true},
		{"trailing byte", mk(dns.RcodeSuccess, true, "www.example.test. 60 IN A 10.0.0.1"), func(b []byte) []byte { return append(b, 0) }, false},
		{"cut short", mk(dns.RcodeSuccess, true, "www.example.test. 60 IN A 10.0.0.1"), func(b []byte) []byte { return b[:len(b)-3] }, false},
	} {
		raw, err := c.m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		if c.raw != nil {
			raw = c.raw(raw)
		}
		keep := append([]byte(nil), raw...)
		wire, ttls, qend, ok := wireFromReply(raw)
		if ok != c.ok {
			t.Fatalf("%s: ok = %v, want %v", c.name, ok, c.ok)
		}
		if string(raw) != string(keep) {
			t.Fatalf("%s: raw changed", c.name)
		}
		if !ok {
			continue
		}
		want, wantTTLs, wantQend := wireOf(c.m)
		var a, b dns.Msg
		if err := a.Unpack(wire); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if err := b.Unpack(want); err != nil {
			t.Fatal(err)
		}
		if a.String() != b.String() || qend != wantQend || len(ttls) != len(wantTTLs) {
			t.Fatalf("%s: from the reply\n%v (qend %d, %d TTLs)\npacked\n%v (qend %d, %d TTLs)", c.name, &a, qend, len(ttls), &b, wantQend, len(wantTTLs))
		}
		for i := range ttls {
			if ttls[i].ttl != wantTTLs[i].ttl || binary.BigEndian.Uint32(wire[ttls[i].off:]) != ttls[i].ttl {
				t.Fatalf("%s: TTL field %d: %+v, want TTL %d", c.name, i, ttls[i], wantTTLs[i].ttl)
			}
		}
	}
	// OPT anywhere but last: left to wireOf.
	m := mk(dns.RcodeSuccess, true, "www.example.test. 60 IN A 10.0.0.1")
	rr, _ := dns.NewRR("x.example.test. 60 IN A 10.0.0.9")
	m.Extra = append(m.Extra, rr)
	raw, _ := m.Pack()
	if _, _, _, ok := wireFromReply(raw); ok {
		t.Fatal("OPT before another record taken")
	}
}
