package dns

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/miekg/dns"
)

// FuzzHandler feeds arbitrary datagrams to the UDP path and checks that
// it never panics, that every reply packs and fits the client's buffer,
// and that the wire-format fast path agrees with the general path.
func FuzzHandler(f *testing.F) {
	seed := func(m *dns.Msg) {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(0))
	}
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"web.netspawn.internal.", dns.TypeA},
		{"WEB.", dns.TypeAAAA},
		{"v4only.netspawn.internal.", dns.TypeAAAA},
		{"big.netspawn.internal.", dns.TypeA},
		{"nope.netspawn.internal.", dns.TypeA},
		{"netspawn.internal.", dns.TypeSOA},
		{"2.0.168.192.in-addr.arpa.", dns.TypePTR},
		{"zoned.", dns.TypeA},
		{"example.com.", dns.TypeMX},
	} {
		m := query(q.name, q.qtype)
		seed(m)
		m.SetEdns0(4096, true)
		seed(m)
	}
	h := testHandler(testZone())
	clients := []netip.Addr{
		netip.MustParseAddr("127.0.0.1"),
		netip.MustParseAddr("10.1.0.9"),
		netip.MustParseAddr("192.168.0.9"),
		netip.MustParseAddr("::1"),
	}
	f.Fuzz(func(t *testing.T, pkt []byte, who uint8) {
		client := clients[int(who)%len(clients)]
		resp, req, forward := h.packet(pkt, client)
		if forward {
			if req == nil || len(req.Question) != 1 {
				t.Fatal("forward without a single question")
			}
		}
		limit := dns.MinMsgSize
		if req != nil {
			if opt := req.IsEdns0(); opt != nil && int(opt.UDPSize()) > limit {
				limit = int(opt.UDPSize())
			}
		}
		var slow []byte
		if resp != nil {
			b, err := resp.Pack()
			if err != nil {
				t.Fatalf("reply does not pack: %v\n%v", err, resp)
			}
			if len(b) > limit && req != nil {
				t.Fatalf("reply of %d bytes for a %d-byte buffer", len(b), limit)
			}
			slow = b
		}
		fast, ok := h.Authority.fastAnswer(nil, pkt, h.view(client))
		if !ok {
			return
		}
		if slow == nil || req == nil {
			t.Fatalf("fast path answered what the general path did not: %x", pkt)
		}
		if len(fast) > limit {
			t.Fatalf("fast reply of %d bytes for a %d-byte buffer", len(fast), limit)
		}
		fm, sm := new(dns.Msg), new(dns.Msg)
		if err := fm.Unpack(fast); err != nil {
			t.Fatalf("fast reply does not parse: %v", err)
		}
		if err := sm.Unpack(slow); err != nil {
			t.Fatal(err)
		}
		if fm.MsgHdr != sm.MsgHdr {
			t.Fatalf("headers differ:\nfast %+v\nslow %+v", fm.MsgHdr, sm.MsgHdr)
		}
		if !slices.Equal(fm.Question, sm.Question) {
			t.Fatalf("questions differ: %v %v", fm.Question, sm.Question)
		}
		if a, b := rrStrings(fm.Answer), rrStrings(sm.Answer); !slices.Equal(a, b) {
			t.Fatalf("answers differ:\nfast %q\nslow %q", a, b)
		}
		if a, b := rrStrings(fm.Ns), rrStrings(sm.Ns); !slices.Equal(a, b) {
			t.Fatalf("authority differs:\nfast %q\nslow %q", a, b)
		}
		fo, so := fm.IsEdns0(), sm.IsEdns0()
		if (fo == nil) != (so == nil) || (fo != nil && (fo.UDPSize() != so.UDPSize() || fo.Do() != so.Do())) {
			t.Fatalf("OPT differs: %v / %v", fo, so)
		}
		// The general path over TCP must not panic either.
		rec := newRecorder(client.String(), false)
		h.ServeDNS(rec, req)
	})
}
