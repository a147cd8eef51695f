package dhcp_test

import (
	"testing"

	"github.com/netspawn/netspawn/dhcp"
	"github.com/netspawn/netspawn/netctl/metrics"
)

// BenchmarkDORA with netspawnd's Prometheus observer: what metrics cost
// per lease.
func BenchmarkDORAMetrics(b *testing.B) { dhcp.BenchDORA(b, metrics.New().DHCP()) }
