package lease

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

func BenchmarkNewLeasePrefilled(b *testing.B) {
	for _, n := range []int{0, 50000, 200000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			tb, err := New(Config{Link: "ve-big", Subnet: netip.MustParsePrefix("10.0.0.0/13"), ServerIP: ip("10.0.0.1"),
				PoolStart: ip("10.0.0.10"), PoolEnd: ip("10.7.255.250"), LeaseTime: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			top := u32(ip("10.7.255.250"))
			for i := 0; i < n; i++ {
				tb.Restore(Lease{IP: addr(top - uint32(i)), MAC: net.HardwareAddr{0x0a, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)},
					State: Bound, Expiry: t0.Add(time.Hour)}, t0)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c := cl(i % 60000)
				l, ok := tb.Offer(c, netip.Addr{}, t0)
				if !ok {
					b.Fatal("no address")
				}
				tb.Request(c, l.IP, t0)
				tb.TakeChanges()
			}
		})
	}
}
