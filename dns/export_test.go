package dns

import "net/netip"

// For the benchmarks of package dns_test, which may import the metrics.

// BenchReply is Server.reply without a listener (no forwarding).
func (s *Server) BenchReply(dst, pkt []byte, from netip.AddrPort) []byte {
	return s.reply(nil, dst, pkt, from)
}

// BenchZone is the tests' zone.
func BenchZone() *Zone { return testZone() }
