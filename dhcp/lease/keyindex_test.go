package lease

import (
	"hash/maphash"
	"net/netip"
	"testing"
	"time"
)

// With a hash that makes most keys clash, the table still finds, replaces
// and forgets every lease by its key.
func TestKeyIndexClashes(t *testing.T) {
	saved := keyHash
	keyHash = func(_ maphash.Seed, k ikey) uint64 { return uint64(k.b[5] % 3) }
	defer func() { keyHash = saved }()

	tb := newTable(t, "10.0.0.10", "10.0.0.250")
	got := map[int]netip.Addr{}
	for i := 0; i < 60; i++ {
		l, ok := tb.Offer(cl(i), netip.Addr{}, t0)
		if !ok {
			t.Fatalf("no offer for client %d", i)
		}
		if _, v := tb.Request(cl(i), l.IP, t0); v != ACK {
			t.Fatalf("client %d: %v", i, v)
		}
		got[i] = l.IP
	}
	if tb.Len() != 60 || len(tb.byKey.clash) == 0 {
		t.Fatalf("%d leases, %d clashing keys", tb.Len(), len(tb.byKey.clash))
	}
	seen := map[netip.Addr]bool{}
	for i := 0; i < 60; i++ {
		l, ok := tb.Get(cl(i))
		if !ok || l.IP != got[i] || seen[l.IP] {
			t.Fatalf("client %d: %+v %v (had %v)", i, l, ok, got[i])
		}
		seen[l.IP] = true
	}
	// Declining drops the client's entry: also those held in byHash, whose
	// clashing keys then move up.
	for i := 0; i < 60; i += 2 {
		if !tb.Decline(cl(i), got[i], t0) {
			t.Fatalf("decline %d", i)
		}
	}
	for i := 0; i < 60; i++ {
		l, ok := tb.Get(cl(i))
		if i%2 == 0 && ok {
			t.Fatalf("declined client %d still has %+v", i, l)
		}
		if i%2 == 1 && (!ok || l.IP != got[i]) {
			t.Fatalf("client %d lost its lease: %+v %v", i, l, ok)
		}
	}
	if n := len(tb.Leases()); n != tb.Len() {
		t.Fatalf("Leases gives %d, Len %d", n, tb.Len())
	}
	// The declined clients come back and get leases again.
	for i := 0; i < 60; i += 2 {
		l, ok := tb.Offer(cl(i), netip.Addr{}, t0.Add(time.Minute))
		if !ok {
			t.Fatalf("no offer for client %d back", i)
		}
		if h := tb.holder(l.IP); h != 0 && tb.ents.at(h).key != cl(i).ikey() {
			t.Fatalf("client %d back was offered %v, held by another", i, l.IP)
		}
	}
}
