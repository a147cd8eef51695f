package dns

import (
	"testing"

	"github.com/miekg/dns"
)

// For the benchmarks of package dns_test, which may import the metrics.

// BenchReply runs the Server.reply benchmark of bench_test.go with the
// observer obs.
func BenchReply(b *testing.B, obs Observer, m *dns.Msg) { benchReply(b, obs, m) }
