package dns_test

import (
	"testing"

	"github.com/miekg/dns"

	ourdns "github.com/netspawn/netspawn/dns"
	"github.com/netspawn/netspawn/netctl/metrics"
)

// The benchmarks of bench_test.go with netspawnd's Prometheus observer:
// what metrics cost per query.
func benchReplyMetrics(b *testing.B, name string, qtype uint16) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	ourdns.BenchReply(b, metrics.New().DNS(), m)
}

func BenchmarkReplyMachineAMetrics(b *testing.B) {
	benchReplyMetrics(b, "web.netspawn.internal.", dns.TypeA)
}

func BenchmarkReplyNXDomainMetrics(b *testing.B) {
	benchReplyMetrics(b, "nobody.netspawn.internal.", dns.TypeA)
}
