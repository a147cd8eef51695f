package dns_test

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	ourdns "github.com/netspawn/netspawn/dns"
	"github.com/netspawn/netspawn/netctl/metrics"
)

// The benchmarks of bench_test.go with netspawnd's Prometheus observer:
// what metrics cost per query.
func benchReplyMetrics(b *testing.B, name string, qtype uint16) {
	s, err := ourdns.NewServer(ourdns.Options{Source: ourdns.BenchZone(), NoForward: true, Observer: metrics.New().DNS()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	pkt, err := m.Pack()
	if err != nil {
		b.Fatal(err)
	}
	from := netip.MustParseAddrPort("127.0.0.1:4242")
	dst := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		if out := s.BenchReply(dst[:0], pkt, from); out == nil {
			b.Fatal("no reply")
		}
	}
}

func BenchmarkReplyMachineAMetrics(b *testing.B) {
	benchReplyMetrics(b, "web.netspawn.internal.", dns.TypeA)
}

func BenchmarkReplyNXDomainMetrics(b *testing.B) {
	benchReplyMetrics(b, "nobody.netspawn.internal.", dns.TypeA)
}
