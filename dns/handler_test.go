package dns

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func testZone() *Zone {
	z := NewZone()
	z.Set("web", addrs("192.168.0.2", "fd00::2"), "")
	z.Set("db.prod", addrs("192.168.0.18"), "") // a CNI pod's POD.NAMESPACE
	z.Set("v4only", addrs("192.168.0.3"), "")
	z.Set("zoned", addrs("10.1.0.2"), "z1")
	z.Set("other", addrs("10.2.0.2"), "z2")
	var many []netip.Addr
	for i := 1; i <= 100; i++ {
		many = append(many, netip.AddrFrom4([4]byte{172, 16, 1, byte(i)}))
	}
	z.Set("big", many, "")
	return z
}

func testViews(client netip.Addr) View {
	switch {
	case netip.MustParsePrefix("10.1.0.0/24").Contains(client):
		return View{Name: "z1"}
	case netip.MustParsePrefix("10.2.0.0/24").Contains(client):
		return View{Name: "z2"}
	}
	return View{Name: ""}
}

func testHandler(z Source) *Handler {
	return &Handler{
		Authority: NewAuthority("", z, 0),
		Forwarder: NewForwarder(ForwarderOptions{}),
		ViewOf:    testViews,
	}
}

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

// rrStrings renders records without TTL for comparisons.
func rrStrings(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		f := strings.Fields(rr.String())
		out = append(out, strings.Join(append(f[:1:1], f[2:]...), " "))
	}
	return out
}

func TestHandlerTable(t *testing.T) {
	h := testHandler(testZone())
	const soa = "netspawn.internal. IN SOA ns.netspawn.internal. hostmaster.netspawn.internal. 1 3600 600 86400 1"
	tests := []struct {
		client  string
		name    string
		qtype   uint16
		rcode   int
		answer  []string
		ns      []string
		forward bool
	}{
		{"127.0.0.1", "web.netspawn.internal.", dns.TypeA, dns.RcodeSuccess, []string{"web.netspawn.internal. IN A 192.168.0.2"}, nil, false},
		{"127.0.0.1", "WEB.NetSpawn.Internal.", dns.TypeA, dns.RcodeSuccess, []string{"WEB.NetSpawn.Internal. IN A 192.168.0.2"}, nil, false},
		{"127.0.0.1", "web.", dns.TypeA, dns.RcodeSuccess, []string{"web. IN A 192.168.0.2"}, nil, false},
		{"127.0.0.1", "Web.", dns.TypeAAAA, dns.RcodeSuccess, []string{"Web. IN AAAA fd00::2"}, nil, false},
		{"127.0.0.1", "web.netspawn.internal.", dns.TypeANY, dns.RcodeSuccess, []string{"web.netspawn.internal. IN A 192.168.0.2", "web.netspawn.internal. IN AAAA fd00::2"}, nil, false},
		{"127.0.0.1", "web.netspawn.internal.", dns.TypeMX, dns.RcodeSuccess, nil, []string{soa}, false},
		{"127.0.0.1", "v4only.netspawn.internal.", dns.TypeAAAA, dns.RcodeSuccess, nil, []string{soa}, false},
		{"127.0.0.1", "v4only.", dns.TypeAAAA, dns.RcodeSuccess, nil, nil, false},
		{"127.0.0.1", "nope.netspawn.internal.", dns.TypeA, dns.RcodeNameError, nil, []string{soa}, false},
		{"127.0.0.1", "a.web.netspawn.internal.", dns.TypeA, dns.RcodeNameError, nil, []string{soa}, false},
		{"127.0.0.1", "db.prod.netspawn.internal.", dns.TypeA, dns.RcodeSuccess, []string{"db.prod.netspawn.internal. IN A 192.168.0.18"}, nil, false},
		{"127.0.0.1", "DB.prod.", dns.TypeA, dns.RcodeSuccess, []string{"DB.prod. IN A 192.168.0.18"}, nil, false},
		{"127.0.0.1", "prod.", dns.TypeA, 0, nil, nil, true},
		{"127.0.0.1", "x.db.prod.", dns.TypeA, 0, nil, nil, true},
		{"127.0.0.1", "netspawn.internal.", dns.TypeSOA, dns.RcodeSuccess, []string{soa}, nil, false},
		{"127.0.0.1", "netspawn.internal.", dns.TypeA, dns.RcodeSuccess, nil, []string{soa}, false},
		{"127.0.0.1", "2.0.168.192.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, []string{"2.0.168.192.in-addr.arpa. IN PTR web.netspawn.internal."}, nil, false},
		{"127.0.0.1", "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.D.F.ip6.arpa.", dns.TypePTR, dns.RcodeSuccess,
			[]string{"2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.D.F.ip6.arpa. IN PTR web.netspawn.internal."}, nil, false},
		{"127.0.0.1", "2.0.168.192.in-addr.arpa.", dns.TypeA, dns.RcodeSuccess, nil, nil, false},
		{"127.0.0.1", "9.0.168.192.in-addr.arpa.", dns.TypePTR, 0, nil, nil, true},
		{"127.0.0.1", "example.com.", dns.TypeA, 0, nil, nil, true},
		{"127.0.0.1", "unknown.", dns.TypeA, 0, nil, nil, true},
		// The host (loopback) sees every view.
		{"127.0.0.1", "zoned.netspawn.internal.", dns.TypeA, dns.RcodeSuccess, []string{"zoned.netspawn.internal. IN A 10.1.0.2"}, nil, false},
		// Views: z1 sees its own names only.
		{"10.1.0.9", "zoned.", dns.TypeA, dns.RcodeSuccess, []string{"zoned. IN A 10.1.0.2"}, nil, false},
		{"10.1.0.9", "other.netspawn.internal.", dns.TypeA, dns.RcodeNameError, nil, []string{soa}, false},
		{"10.1.0.9", "web.netspawn.internal.", dns.TypeA, dns.RcodeNameError, nil, []string{soa}, false},
		{"10.1.0.9", "other.", dns.TypeA, 0, nil, nil, true},
		{"10.1.0.9", "2.0.2.10.in-addr.arpa.", dns.TypePTR, 0, nil, nil, true},
		{"192.168.0.9", "web.", dns.TypeA, dns.RcodeSuccess, []string{"web. IN A 192.168.0.2"}, nil, false},
		{"192.168.0.9", "zoned.", dns.TypeA, 0, nil, nil, true},
		{"127.0.0.1", "example.com.", dns.TypeAXFR, dns.RcodeRefused, nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s/%s", tt.client, tt.name, dns.TypeToString[tt.qtype]), func(t *testing.T) {
			req := query(tt.name, tt.qtype)
			resp, fwd := h.Local(req, netip.MustParseAddr(tt.client))
			if fwd != tt.forward {
				t.Fatalf("forward = %v, want %v", fwd, tt.forward)
			}
			if fwd {
				if resp != nil {
					t.Fatal("forward with a reply")
				}
				return
			}
			rec := newRecorder(tt.client, true)
			h.ServeDNS(rec, req)
			got := rec.msg
			if got == nil {
				t.Fatal("no reply written")
			}
			if got.Id != req.Id || !got.Response {
				t.Errorf("id/response: %d %v", got.Id, got.Response)
			}
			if got.Rcode != tt.rcode {
				t.Errorf("rcode = %s, want %s", dns.RcodeToString[got.Rcode], dns.RcodeToString[tt.rcode])
			}
			if a := rrStrings(got.Answer); !slices.Equal(a, tt.answer) {
				t.Errorf("answer = %q, want %q", a, tt.answer)
			}
			if ns := rrStrings(got.Ns); !slices.Equal(ns, tt.ns) {
				t.Errorf("authority = %q, want %q", ns, tt.ns)
			}
			if got.Rcode != dns.RcodeRefused && !got.Authoritative {
				t.Error("AA not set")
			}
		})
	}
}

func TestHandlerErrors(t *testing.T) {
	h := testHandler(testZone())
	notify := query("web.netspawn.internal.", dns.TypeSOA)
	notify.Opcode = dns.OpcodeNotify
	two := query("web.", dns.TypeA)
	two.Question = append(two.Question, two.Question[0])
	none := query("web.", dns.TypeA)
	none.Question = nil
	chaos := query("version.bind.", dns.TypeTXT)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	badvers := query("web.", dns.TypeA)
	badvers.SetEdns0(1232, false)
	badvers.IsEdns0().SetVersion(1)
	tests := []struct {
		name  string
		req   *dns.Msg
		rcode int
	}{
		{"notify", notify, dns.RcodeNotImplemented},
		{"two questions", two, dns.RcodeFormatError},
		{"no question", none, dns.RcodeFormatError},
		{"chaos", chaos, dns.RcodeRefused},
		{"badvers", badvers, dns.RcodeBadVers},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, fwd := h.Local(tt.req, netip.MustParseAddr("127.0.0.1"))
			if fwd || resp == nil {
				t.Fatalf("resp=%v fwd=%v", resp, fwd)
			}
			Finish(tt.req, resp, true)
			b, err := resp.Pack()
			if err != nil {
				t.Fatal(err)
			}
			got := new(dns.Msg)
			if err := got.Unpack(b); err != nil {
				t.Fatal(err)
			}
			if got.Rcode != tt.rcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[got.Rcode], dns.RcodeToString[tt.rcode])
			}
		})
	}
	// A response is dropped.
	r := query("web.", dns.TypeA)
	r.Response = true
	if resp, fwd := h.Local(r, netip.MustParseAddr("127.0.0.1")); resp != nil || fwd {
		t.Fatal("answered a response")
	}
	// No upstream: forwarded names get SERVFAIL.
	rec := newRecorder("127.0.0.1", true)
	h.ServeDNS(rec, query("example.com.", dns.TypeA))
	if rec.msg == nil || rec.msg.Rcode != dns.RcodeServerFailure {
		t.Fatalf("no-upstream reply: %v", rec.msg)
	}
	// Without a forwarder: REFUSED.
	h.Forwarder = nil
	rec = newRecorder("127.0.0.1", true)
	h.ServeDNS(rec, query("example.com.", dns.TypeA))
	if rec.msg == nil || rec.msg.Rcode != dns.RcodeRefused {
		t.Fatalf("no-forwarder reply: %v", rec.msg)
	}
}

func TestHandlerTruncation(t *testing.T) {
	h := testHandler(testZone())
	tests := []struct {
		name    string
		udp     bool
		edns    uint16
		tc      bool
		answers int
	}{
		{"udp plain", true, 0, true, -1},
		{"udp edns 1232", true, 1232, true, -1},
		{"udp edns 4096", true, 4096, false, 100},
		{"tcp", false, 0, false, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := query("big.netspawn.internal.", dns.TypeA)
			if tt.edns > 0 {
				req.SetEdns0(tt.edns, false)
			}
			rec := newRecorder("127.0.0.1", tt.udp)
			h.ServeDNS(rec, req)
			got, b := rec.msg, rec.raw
			if got.Truncated != tt.tc {
				t.Fatalf("TC = %v, want %v (%d bytes, %d answers)", got.Truncated, tt.tc, len(b), len(got.Answer))
			}
			limit := 512
			if tt.edns > 0 {
				limit = int(tt.edns)
			}
			if tt.udp && len(b) > limit {
				t.Fatalf("reply of %d bytes exceeds %d", len(b), limit)
			}
			if tt.answers >= 0 && len(got.Answer) != tt.answers {
				t.Fatalf("answers = %d, want %d", len(got.Answer), tt.answers)
			}
			if (tt.edns > 0) != (got.IsEdns0() != nil) {
				t.Fatalf("OPT in reply = %v, want %v", got.IsEdns0() != nil, tt.edns > 0)
			}
		})
	}
}

func TestPacketFormErr(t *testing.T) {
	h := testHandler(testZone())
	pkt := []byte{0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0xff}
	resp, _, fwd := h.packet(pkt, netip.MustParseAddr("127.0.0.1"))
	if fwd || resp == nil || resp.Rcode != dns.RcodeFormatError || resp.Id != 0x1234 {
		t.Fatalf("resp = %v", resp)
	}
	if resp, _, _ := h.packet(pkt[:5], netip.MustParseAddr("127.0.0.1")); resp != nil {
		t.Fatal("answered a runt")
	}
}
