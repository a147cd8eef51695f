package dhcp

import "testing"

// BenchDORA is benchDORA, for the benchmarks of package dhcp_test, which
// may import the metrics.
func BenchDORA(b *testing.B, obs Observer) { benchDORA(b, obs) }
