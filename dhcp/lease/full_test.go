package lease

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// bigTable is a /14 with a pool of pool addresses from 10.1.0.10.
func bigTable(t testing.TB, pool uint32) *Table {
	t.Helper()
	start := u32(ip("10.1.0.10"))
	tb, err := New(Config{Link: "ve-big", Subnet: netip.MustParsePrefix("10.0.0.0/14"), ServerIP: ip("10.0.0.1"),
		PoolStart: addr(start), PoolEnd: addr(start + pool - 1), LeaseTime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func bind(t testing.TB, tb *Table, c Client, now time.Time) netip.Addr {
	t.Helper()
	l, ok := tb.Offer(c, netip.Addr{}, now)
	if !ok {
		t.Fatalf("no offer for %v", c.MAC)
	}
	if _, v := tb.Request(c, l.IP, now); v != ACK {
		t.Fatalf("request of %v for %v: %v", c.MAC, l.IP, v)
	}
	return l.IP
}

// TestFullTableAllocation restores leases over most of a pool (at its top,
// as the benchmark does) and checks that new clients get exactly the
// remaining addresses, then nothing.
func TestFullTableAllocation(t *testing.T) {
	const pool, held = 5000, 4000
	tb := bigTable(t, pool)
	top := tb.poolStart + pool - 1
	for i := 0; i < held; i++ {
		tb.Restore(Lease{IP: addr(top - uint32(i)), MAC: mac(100000 + i), State: Bound, Expiry: t0.Add(time.Hour)}, t0)
	}
	if tb.Len() != held {
		t.Fatalf("restored %d leases", tb.Len())
	}
	seen := map[netip.Addr]bool{}
	for i := 0; i < pool-held; i++ {
		a := bind(t, tb, cl(i), t0)
		if seen[a] || !tb.inPool(a) || u32(a) > top-held {
			t.Fatalf("client %d got %v (taken, outside the pool or held)", i, a)
		}
		seen[a] = true
	}
	if l, ok := tb.Offer(cl(pool), netip.Addr{}, t0); ok {
		t.Fatalf("full pool offered %v", l.IP)
	}
	// Every restored lease is intact.
	for i := 0; i < held; i++ {
		l, ok := tb.Holder(addr(top - uint32(i)))
		if !ok || !macEq(l.MAC, mac(100000+i)) || l.State != Bound {
			t.Fatalf("restored lease %d became %+v", i, l)
		}
	}
}

// TestFreeCursorWrapAround releases and re-binds addresses of a full pool
// many times over: the free queue wraps (and compacts) again and again, and
// hands out the address freed longest ago first, each to one client only.
func TestFreeCursorWrapAround(t *testing.T) {
	const pool = 16
	tb := bigTable(t, pool)
	holder := map[netip.Addr]int{}
	owned := map[int]netip.Addr{}
	for i := 0; i < pool; i++ {
		a := bind(t, tb, cl(i), t0)
		holder[a], owned[i] = i, a
	}
	next := pool
	var order []netip.Addr // addresses in the order they were released
	for round := 0; round < 2000; round++ {
		// Release three, bind three new clients: they get the released
		// addresses, oldest first.
		order = order[:0]
		for k := 0; k < 3; k++ {
			victim := -1
			for c := range owned {
				if victim < 0 || (c*7+round)%pool < (victim*7+round)%pool {
					victim = c
				}
			}
			a := owned[victim]
			if _, ok := tb.Release(cl(victim), a); !ok {
				t.Fatalf("round %d: release of %v by %d refused", round, a, victim)
			}
			delete(owned, victim)
			delete(holder, a)
			order = append(order, a)
		}
		for k := 0; k < 3; k++ {
			a := bind(t, tb, cl(next), t0)
			if a != order[k] {
				t.Fatalf("round %d: new client got %v, want %v (released longest ago)", round, a, order[k])
			}
			if h, dup := holder[a]; dup {
				t.Fatalf("round %d: %v given to %d while %d holds it", round, a, next, h)
			}
			holder[a], owned[next] = next, a
			next++
		}
		if _, ok := tb.Offer(cl(next), netip.Addr{}, t0); ok {
			t.Fatalf("round %d: full pool offered", round)
		}
		tb.TakeChanges()
	}
	if len(tb.free)-tb.freeHead > pool || len(tb.free) > 2*pool+3 {
		t.Fatalf("free queue grew: %d entries, head %d", len(tb.free), tb.freeHead)
	}
}

// TestExpiredLeasesReused fills a pool, lets every lease run out and checks
// that new clients get the expired addresses and each old lease is recorded
// as expired.
func TestExpiredLeasesReused(t *testing.T) {
	const pool = 300
	tb := bigTable(t, pool)
	for i := 0; i < pool; i++ {
		bind(t, tb, cl(i), t0)
	}
	tb.TakeChanges()
	later := t0.Add(2 * time.Hour)
	seen := map[netip.Addr]bool{}
	for i := 0; i < pool; i++ {
		a := bind(t, tb, cl(10000+i), later)
		if seen[a] {
			t.Fatalf("%v handed out twice", a)
		}
		seen[a] = true
	}
	expired, deleted := 0, 0
	for _, c := range tb.TakeChanges() {
		switch {
		case c.Deleted:
			deleted++
		case c.Lease.State == Expired:
			expired++
		}
	}
	if expired != pool || deleted != pool {
		t.Fatalf("%d expiries and %d removals recorded, want %d each", expired, deleted, pool)
	}
	if tb.Len() != pool {
		t.Fatalf("table holds %d leases, want %d", tb.Len(), pool)
	}
}

// TestReservationsUntouchedInFullTable reserves addresses inside the pool,
// exhausts it dynamically and checks the reserved clients still get their
// addresses and nobody else ever does.
func TestReservationsUntouchedInFullTable(t *testing.T) {
	const pool = 200
	tb := bigTable(t, pool)
	reserved := map[netip.Addr]int{}
	for i := 0; i < 10; i++ {
		a := addr(tb.poolStart + uint32(i*17))
		if err := tb.Reserve(mac(5000+i), a, fmt.Sprintf("r%d", i)); err != nil {
			t.Fatal(err)
		}
		reserved[a] = 5000 + i
	}
	for i := 0; i < pool-len(reserved); i++ {
		if a := bind(t, tb, cl(i), t0); reserved[a] != 0 {
			t.Fatalf("reserved %v handed to dynamic client %d", a, i)
		}
	}
	if _, ok := tb.Offer(cl(pool), netip.Addr{}, t0); ok {
		t.Fatal("full pool offered")
	}
	for a, m := range reserved {
		l, ok := tb.Offer(cl(m), netip.Addr{}, t0)
		if !ok || l.IP != a || l.Hostname != fmt.Sprintf("r%d", m-5000) {
			t.Fatalf("reserved client %d offered %+v, want %v", m, l, a)
		}
		if _, v := tb.Request(cl(m), a, t0); v != ACK {
			t.Fatalf("reserved client %d: %v", m, v)
		}
	}
}

// TestClientIDsAndHostNames checks that what the arena keeps survives many
// changes of length (and so its compaction): every lease reads back the
// client id and host name it was last given; long client ids that share a
// prefix are distinct clients.
func TestClientIDsAndHostNames(t *testing.T) {
	tb := bigTable(t, 1000)
	long := func(i int) []byte { return append(bytes.Repeat([]byte{0xff}, 40), byte(i)) }
	want := map[int]string{}
	for round := 0; round < 300; round++ {
		for i := 0; i < 50; i++ {
			h := fmt.Sprintf("host-%d-%s", i, bytes.Repeat([]byte{'x'}, (round*7+i)%40))
			c := Client{MAC: mac(i), ClientID: long(i), Hostname: h}
			if i%2 == 0 {
				c.ClientID = []byte{1, byte(i), byte(round)}[:2]
			}
			l, ok := tb.Offer(c, netip.Addr{}, t0)
			if !ok {
				t.Fatalf("round %d: no offer for %d", round, i)
			}
			if _, v := tb.Request(c, l.IP, t0); v != ACK {
				t.Fatalf("round %d: %v for %d", round, v, i)
			}
			want[i] = h
		}
	}
	if tb.Len() != 50 {
		t.Fatalf("%d leases for 50 clients", tb.Len())
	}
	for i := 0; i < 50; i++ {
		c := Client{MAC: mac(i), ClientID: long(i)}
		if i%2 == 0 {
			c.ClientID = []byte{1, byte(i)}
		}
		l, ok := tb.Get(c)
		if !ok || l.Hostname != want[i] || !bytes.Equal(l.ClientID, c.ClientID) || !macEq(l.MAC, mac(i)) {
			t.Fatalf("client %d reads back %+v (want host %q)", i, l, want[i])
		}
	}
	if len(tb.blob) > 1<<17+50*(41+50) {
		t.Fatalf("arena not compacted: %d bytes", len(tb.blob))
	}
}

// TestTableHoldsNoPointerPerLease guards the reason for the table's layout:
// a large table is a handful of heap objects, not one or more per lease.
func TestTableHoldsNoPointerPerLease(t *testing.T) {
	const n = 100000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tb := bigTable(t, n+10)
	for i := 0; i < n; i++ {
		tb.Restore(Lease{IP: addr(tb.poolStart + uint32(i)), MAC: mac(i), Hostname: "h", ClientID: []byte{1, byte(i >> 16), byte(i >> 8), byte(i)},
			State: Bound, Expiry: t0.Add(time.Hour)}, t0)
	}
	if tb.Len() != n {
		t.Fatalf("restored %d leases, want %d", tb.Len(), n)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	objs := int64(after.HeapObjects) - int64(before.HeapObjects)
	if objs > n/50 {
		t.Fatalf("%d leases hold %d heap objects", n, objs)
	}
	t.Logf("%d leases: %d heap objects, %d bytes per lease", n, objs, (int64(after.HeapInuse)-int64(before.HeapInuse))/n)
	runtime.KeepAlive(tb)
}

func BenchmarkOfferRequestFullTable(b *testing.B) {
	tb := bigTable(b, 1<<16-20)
	for i := 0; i < 50000; i++ {
		tb.Restore(Lease{IP: addr(tb.poolStart + 1<<16 - 21 - uint32(i)), MAC: net.HardwareAddr{0x0a, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)},
			State: Bound, Expiry: t0.Add(time.Hour)}, t0)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := cl(i % 10000)
		l, ok := tb.Offer(c, netip.Addr{}, t0)
		if !ok {
			b.Fatal(fmt.Sprint("no address at ", i))
		}
		tb.Request(c, l.IP, t0)
		tb.TakeChanges()
	}
}

// Growing the table adds chunks of entries: an entry past the first chunk
// stays where it is however many follow.
func TestEntriesGrowWithoutCopying(t *testing.T) {
	var es entries
	for i := 0; i < 3*entryChunk; i++ {
		es.add()
	}
	r := ref(2*entryChunk + 5)
	e := es.at(r)
	e.ip = 42
	for i := 0; i < 20*entryChunk; i++ {
		es.add()
	}
	if es.at(r) != e || e.ip != 42 || es.len() != 23*entryChunk {
		t.Fatal("an entry moved when the table grew")
	}
	for _, c := range es.chunks[1:] {
		if cap(c) != entryChunk {
			t.Fatalf("chunk of capacity %d", cap(c))
		}
	}
}
