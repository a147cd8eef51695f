package dns

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// benchReply measures Server.reply, the UDP path's per-datagram work
// (no sockets), with the observer obs (nil: none): what a metrics observer
// must not slow down.
func benchReply(b *testing.B, obs Observer, m *dns.Msg) {
	s, err := NewServer(Options{Source: testZone(), NoForward: true, Observer: obs})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	pkt, err := m.Pack()
	if err != nil {
		b.Fatal(err)
	}
	from := netip.MustParseAddrPort("127.0.0.1:4242")
	dst := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		if out := s.reply(nil, dst[:0], pkt, from); out == nil {
			b.Fatal("no reply")
		}
	}
}

// The fast path: A for a machine name.
func BenchmarkReplyMachineA(b *testing.B) {
	benchReply(b, nil, query("web.netspawn.internal.", dns.TypeA))
}

// The general path: NXDOMAIN for an unknown name under the domain.
func BenchmarkReplyNXDomain(b *testing.B) {
	benchReply(b, nil, query("nobody.netspawn.internal.", dns.TypeA))
}
