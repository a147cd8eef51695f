package main

import (
	"context"

	nsdns "github.com/netspawn/netspawn/dns"
)

func dnsNSSBench(ctx context.Context, b *B, dir string, zone *nsdns.Zone, hosts string) error {
	return nil
}
