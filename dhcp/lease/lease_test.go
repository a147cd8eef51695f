package lease

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func mac(i int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)}
}

func cl(i int) Client { return Client{MAC: mac(i)} }

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func newTable(t *testing.T, start, end string) *Table {
	t.Helper()
	cfg := Config{Link: "ve-t", Subnet: netip.MustParsePrefix("10.0.0.0/24"), ServerIP: ip("10.0.0.1"), LeaseTime: time.Hour}
	if start != "" {
		cfg.PoolStart, cfg.PoolEnd = ip(start), ip(end)
	}
	tb, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, c := range []Config{
		{Subnet: netip.MustParsePrefix("10.0.0.0/24"), ServerIP: ip("10.0.1.1")},
		{Subnet: netip.MustParsePrefix("fd00::/64"), ServerIP: ip("fd00::1")},
		{Subnet: netip.MustParsePrefix("10.0.0.0/24"), ServerIP: ip("10.0.0.1"), PoolStart: ip("10.0.0.50"), PoolEnd: ip("10.0.0.10")},
		{Subnet: netip.MustParsePrefix("10.0.0.0/24"), ServerIP: ip("10.0.0.1"), PoolStart: ip("10.0.0.50"), PoolEnd: ip("10.0.1.10")},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}

func TestOfferRequestFlow(t *testing.T) {
	tb := newTable(t, "10.0.0.10", "10.0.0.20")
	l, ok := tb.Offer(cl(1), netip.Addr{}, t0)
	if !ok || l.IP != ip("10.0.0.10") || l.State != Offered {
		t.Fatalf("offer = %+v %v", l, ok)
	}
	if ch := tb.TakeChanges(); len(ch) != 0 {
		t.Fatalf("offer produced persistent changes %+v", ch)
	}
	// A second client gets another address while the offer is held.
	l2, _ := tb.Offer(cl(2), netip.Addr{}, t0)
	if l2.IP != ip("10.0.0.11") {
		t.Fatalf("second offer %v", l2.IP)
	}
	// Rediscover: same address.
	if l, _ := tb.Offer(cl(1), netip.Addr{}, t0); l.IP != ip("10.0.0.10") {
		t.Fatalf("re-offer %v", l.IP)
	}
	b, v := tb.Request(cl(1), ip("10.0.0.10"), t0)
	if v != ACK || b.State != Bound || !b.Expiry.Equal(t0.Add(time.Hour)) {
		t.Fatalf("request = %+v %v", b, v)
	}
	if ch := tb.TakeChanges(); len(ch) != 1 || ch[0].Lease.State != Bound {
		t.Fatalf("changes %+v", ch)
	}
	// Client 2 asks for client 1's address: NAK.
	if _, v := tb.Request(cl(2), ip("10.0.0.10"), t0); v != NAK {
		t.Fatalf("steal verdict %v", v)
	}
}

func TestRequestVerdicts(t *testing.T) {
	tb := newTable(t, "10.0.0.10", "10.0.0.20")
	if err := tb.Reserve(mac(9), ip("10.0.0.5"), "web"); err != nil {
		t.Fatal(err)
	}
	tb.Request(cl(1), ip("10.0.0.12"), t0)
	cases := []struct {
		name string
		c    Client
		ip   string
		want Verdict
	}{
		{"other subnet", cl(2), "192.168.1.5", NAK},
		{"server address", cl(2), "10.0.0.1", NAK},
		{"broadcast", cl(2), "10.0.0.255", NAK},
		{"network", cl(2), "10.0.0.0", NAK},
		{"held by another", cl(2), "10.0.0.12", NAK},
		{"reserved for another", cl(2), "10.0.0.5", NAK},
		{"outside pool", cl(2), "10.0.0.100", NAK},
		{"reserved client asks other", cl(9), "10.0.0.13", NAK},
		{"reserved client asks its own", cl(9), "10.0.0.5", ACK},
		{"free pool address (init-reboot after loss)", cl(3), "10.0.0.15", ACK},
		{"own address renew", cl(1), "10.0.0.12", ACK},
		{"no address", cl(1), "", Ignore},
	}
	for _, c := range cases {
		var a netip.Addr
		if c.ip != "" {
			a = ip(c.ip)
		}
		if _, v := tb.Request(c.c, a, t0); v != c.want {
			t.Errorf("%s: got %v want %v", c.name, v, c.want)
		}
	}
	if l, _ := tb.Get(cl(9)); l.Hostname != "web" {
		t.Errorf("reserved host name %q", l.Hostname)
	}
}

func TestReservationWins(t *testing.T) {
	tb := newTable(t, "10.0.0.10", "10.0.0.20")
	// A dynamic client holds .10; then .10 is reserved for another MAC.
	tb.Request(cl(1), ip("10.0.0.10"), t0)
	if err := tb.Reserve(mac(2), ip("10.0.0.10"), "m2"); err != nil {
		t.Fatal(err)
	}
	if l, _ := tb.Offer(cl(2), netip.Addr{}, t0); l.IP != ip("10.0.0.10") || l.Hostname != "m2" {
		t.Fatalf("reserved offer %+v", l)
	}
	if _, v := tb.Request(cl(1), ip("10.0.0.10"), t0); v != NAK {
		t.Fatalf("old holder renew %v", v)
	}
	// The reserved address is never offered dynamically.
	for i := 10; i < 30; i++ {
		if l, ok := tb.Offer(cl(i), netip.Addr{}, t0); ok && l.IP == ip("10.0.0.10") {
			t.Fatalf("reserved address offered to %d", i)
		}
	}
	// Client id does not hide a reservation: the MAC decides.
	c := Client{MAC: mac(2), ClientID: []byte{1, 2, 3}}
	if l, _ := tb.Offer(c, netip.Addr{}, t0); l.IP != ip("10.0.0.10") {
		t.Fatalf("reserved offer with client id %v", l.IP)
	}
}

func TestClientIDIsKey(t *testing.T) {
	tb := newTable(t, "10.0.0.10", "10.0.0.20")
	a := Client{MAC: mac(1), ClientID: []byte("abc")}
	b := Client{MAC: mac(2), ClientID: []byte("abc")} // same id, new NIC
	tb.Request(a, ip("10.0.0.10"), t0)
	if l, _ := tb.Offer(b, netip.Addr{}, t0); l.IP != ip("10.0.0.10") {
		t.Fatalf("same client id got %v", l.IP)
	}
	c := Client{MAC: mac(1)} // same MAC, no id: another client
	if l, _ := tb.Offer(c, netip.Addr{}, t0); l.IP == ip("10.0.0.10") {
		t.Fatalf("different key got the same address")
	}
}

func TestReleaseKeepsAddressForSameClient(t *testing.T) {
	tb := newTable(t, "10.0.0.10", "10.0.0.11")
	tb.Request(cl(1), ip("10.0.0.10"), t0)
	if _, ok := tb.Release(cl(2), ip("10.0.0.10")); ok {
		t.Fatal("release by another client accepted")
	}
	if _, ok := tb.Release(cl(1), ip("10.0.0.10")); !ok {
		t.Fatal("release refused")
	}
	if l, _ := tb.Offer(cl(1), netip.Addr{}, t0); l.IP != ip("10.0.0.10") {
		t.Fatalf("after release got %v", l.IP)
	}
	tb.Release(cl(1), ip("10.0.0.10"))
	// Another client may now take it (pool of two: .11 first, then .10).
	tb.Request(cl(2), ip("10.0.0.11"), t0)
	l, ok := tb.Offer(cl(3), netip.Addr{}, t0)
	if !ok || l.IP != ip("10.0.0.10") {
		t.Fatalf("released address not reused: %+v %v", l, ok)
	}
	if _, ok := tb.Get(cl(1)); ok {
		t.Fatal("old soft lease still present after its address was taken")
	}
}

func TestDeclineSetsAside(t *testing.T) {
	tb := newTable(t, "10.0.0.10", "10.0.0.11")
	l, _ := tb.Offer(cl(1), netip.Addr{}, t0)
	tb.Request(cl(1), l.IP, t0)
	if !tb.Decline(cl(1), l.IP, t0) {
		t.Fatal("decline refused")
	}
	l2, ok := tb.Offer(cl(1), netip.Addr{}, t0)
	if !ok || l2.IP == l.IP {
		t.Fatalf("after decline offered %v", l2.IP)
	}
	tb.Request(cl(1), l2.IP, t0)
	if _, ok := tb.Offer(cl(2), netip.Addr{}, t0); ok {
		t.Fatal("declined address offered while set aside")
	}
	later := t0.Add(11 * time.Minute)
	if l3, ok := tb.Offer(cl(2), netip.Addr{}, later); !ok || l3.IP != l.IP {
		t.Fatalf("declined address not back after its time: %+v %v", l3, ok)
	}
}

func TestExpiryReclaims(t *testing.T) {
	tb := newTable(t, "10.0.0.10", "10.0.0.10")
	tb.Request(cl(1), ip("10.0.0.10"), t0)
	if _, ok := tb.Offer(cl(2), netip.Addr{}, t0.Add(time.Minute)); ok {
		t.Fatal("full pool offered")
	}
	// Renewal moves the expiry.
	tb.Request(cl(1), ip("10.0.0.10"), t0.Add(50*time.Minute))
	if _, ok := tb.Offer(cl(2), netip.Addr{}, t0.Add(61*time.Minute)); ok {
		t.Fatal("renewed lease reclaimed")
	}
	tb.TakeChanges()
	l, ok := tb.Offer(cl(2), netip.Addr{}, t0.Add(111*time.Minute))
	if !ok || l.IP != ip("10.0.0.10") {
		t.Fatalf("expired lease not reclaimed: %+v", l)
	}
	ch := tb.TakeChanges()
	if len(ch) != 2 || ch[0].Lease.State != Expired || !ch[1].Deleted {
		t.Fatalf("changes %+v", ch)
	}
	// Offers expire too.
	tb2 := newTable(t, "10.0.0.10", "10.0.0.10")
	tb2.Offer(cl(1), netip.Addr{}, t0)
	if _, ok := tb2.Offer(cl(2), netip.Addr{}, t0.Add(31*time.Second)); !ok {
		t.Fatal("stale offer not reclaimed")
	}
}

func TestRequestedAddressHonoured(t *testing.T) {
	tb := newTable(t, "10.0.0.10", "10.0.0.20")
	if l, _ := tb.Offer(cl(1), ip("10.0.0.17"), t0); l.IP != ip("10.0.0.17") {
		t.Fatalf("requested address ignored: %v", l.IP)
	}
	if l, _ := tb.Offer(cl(2), ip("10.0.0.17"), t0); l.IP == ip("10.0.0.17") {
		t.Fatal("requested address of another offered")
	}
	if l, _ := tb.Offer(cl(3), ip("10.0.0.200"), t0); !tb.inPool(l.IP) {
		t.Fatalf("out-of-pool request honoured: %v", l.IP)
	}
}

func TestNoPoolReservationsOnly(t *testing.T) {
	tb := newTable(t, "", "")
	if _, ok := tb.Offer(cl(1), netip.Addr{}, t0); ok {
		t.Fatal("offer without a pool")
	}
	tb.Reserve(mac(1), ip("10.0.0.2"), "")
	if l, ok := tb.Offer(cl(1), netip.Addr{}, t0); !ok || l.IP != ip("10.0.0.2") {
		t.Fatal("reserved offer missing")
	}
	tb.Unreserve(mac(1))
	if _, v := tb.Request(cl(1), ip("10.0.0.2"), t0); v != NAK {
		t.Fatal("unreserved offered-only address acknowledged")
	}
}

func TestRestore(t *testing.T) {
	tb := newTable(t, "10.0.0.10", "10.0.0.20")
	tb.Restore(Lease{IP: ip("10.0.0.10"), MAC: mac(1), State: Bound, Expiry: t0.Add(time.Hour)}, t0)
	tb.Restore(Lease{IP: ip("10.0.0.11"), MAC: mac(2), State: Bound, Expiry: t0.Add(-time.Hour)}, t0)
	tb.Restore(Lease{IP: ip("10.0.0.10"), MAC: mac(3), State: Released}, t0) // loses to the bound one
	if l, _ := tb.Holder(ip("10.0.0.10")); !macEq(l.MAC, mac(1)) {
		t.Fatalf("holder %v", l.MAC)
	}
	if l, _ := tb.Get(cl(2)); l.State != Expired {
		t.Fatalf("past lease restored as %v", l.State)
	}
	if _, v := tb.Request(cl(4), ip("10.0.0.10"), t0); v != NAK {
		t.Fatal("restored lease not protected")
	}
	if l, _ := tb.Offer(cl(4), netip.Addr{}, t0); l.IP == ip("10.0.0.10") {
		t.Fatal("restored address offered again")
	}
}

func macEq(a, b net.HardwareAddr) bool { return a.String() == b.String() }

// TestNoDoubleAssignment drives many random operations and checks the
// invariant that no address is held by two clients.
func TestNoDoubleAssignment(t *testing.T) {
	tb := newTable(t, "10.0.0.10", "10.0.0.40")
	now := t0
	seed := uint32(1)
	rnd := func(n int) int { seed = seed*1664525 + 1013904223; return int(seed>>8) % n }
	for step := 0; step < 20000; step++ {
		c := cl(rnd(60))
		switch rnd(6) {
		case 0, 1:
			tb.Offer(c, netip.Addr{}, now)
		case 2:
			if l, ok := tb.Get(c); ok {
				tb.Request(c, l.IP, now)
			}
		case 3:
			tb.Request(c, addr(u32(ip("10.0.0.5"))+uint32(rnd(40))), now)
		case 4:
			if l, ok := tb.Get(c); ok {
				tb.Release(c, l.IP)
			}
		case 5:
			if l, ok := tb.Get(c); ok && rnd(10) == 0 {
				tb.Decline(c, l.IP, now)
			}
		}
		now = now.Add(time.Duration(rnd(90)) * time.Second)
		seen := map[netip.Addr]string{}
		for _, l := range tb.Leases() {
			if !l.State.hard() {
				continue
			}
			if o, dup := seen[l.IP]; dup {
				t.Fatalf("step %d: %v held by %s and %s", step, l.IP, o, l.Key())
			}
			seen[l.IP] = l.Key()
			if h, _ := tb.Holder(l.IP); h.Key() != l.Key() {
				t.Fatalf("step %d: index out of sync for %v", step, l.IP)
			}
		}
	}
}

func BenchmarkOfferRequest(b *testing.B) {
	tb, _ := New(Config{Link: "x", Subnet: netip.MustParsePrefix("10.0.0.0/8"), ServerIP: ip("10.0.0.1"),
		PoolStart: ip("10.0.0.2"), PoolEnd: ip("10.255.255.254")})
	for i := 0; i < b.N; i++ {
		c := cl(i)
		l, ok := tb.Offer(c, netip.Addr{}, t0)
		if !ok {
			b.Fatal(fmt.Sprint("no address at ", i))
		}
		tb.Request(c, l.IP, t0)
		tb.TakeChanges()
	}
}

// An expiry that moves earlier (here: a lease restored again with a
// shorter one, as a replayed log can) expires at the earlier time; the
// item queued for the later one is dropped when its time comes.
func TestExpiryMovedEarlier(t *testing.T) {
	tb := newTable(t, "10.0.0.10", "10.0.0.10")
	l := Lease{Link: "ve-t", IP: ip("10.0.0.10"), MAC: mac(1), State: Bound, Expiry: t0.Add(2 * time.Hour)}
	tb.Restore(l, t0)
	l.Expiry = t0.Add(30 * time.Minute)
	tb.Restore(l, t0)
	if _, ok := tb.Offer(cl(2), netip.Addr{}, t0.Add(29*time.Minute)); ok {
		t.Fatal("lease reclaimed before its expiry")
	}
	got, ok := tb.Offer(cl(2), netip.Addr{}, t0.Add(31*time.Minute))
	if !ok || got.IP != ip("10.0.0.10") {
		t.Fatalf("lease not reclaimed at its earlier expiry: %+v %v", got, ok)
	}
	tb.Request(cl(2), got.IP, t0.Add(31*time.Minute))
	tb.Request(cl(2), got.IP, t0.Add(80*time.Minute)) // renewed: until 2:20
	// The first lease's item at 2:00 must not take the second client's
	// lease.
	if tb.Reclaim(t0.Add(2*time.Hour + time.Minute)) {
		t.Fatal("a lease was reclaimed at 2:01")
	}
	if l, _ := tb.Get(cl(2)); l.State != Bound {
		t.Fatalf("second client's lease expired by the first's stale item: %+v", l)
	}
}

// Leases released before their time leave their items in the queue; the
// queue stays within twice the table's size however many come and go.
func TestExpiryQueueBounded(t *testing.T) {
	tb := newTable(t, "10.0.0.10", "10.0.0.250")
	now := t0
	for i := 0; i < 20000; i++ {
		c := cl(i % 200)
		l, ok := tb.Offer(c, netip.Addr{}, now)
		if !ok {
			t.Fatalf("no offer at %d", i)
		}
		if _, v := tb.Request(c, l.IP, now); v != ACK {
			t.Fatalf("request %d: %v", i, v)
		}
		tb.Release(c, l.IP)
		tb.TakeChanges()
		now = now.Add(time.Millisecond)
		if max := 2*tb.byKey.len() + 1024 + 1; len(tb.exp) > max {
			t.Fatalf("queue of %d items for %d entries after %d leases", len(tb.exp), tb.byKey.len(), i+1)
		}
	}
}

// Every change carries its lease's entry number, EntryOf finds it by the
// lease's key for every kind of key, and a Deleted change's number is the
// one the key had.
func TestChangeEntryAndEntryOf(t *testing.T) {
	tb := newTable(t, "10.0.0.10", "10.0.0.200")
	long := make([]byte, 40) // a client id hashed to its SHA-256 in the key
	for i := range long {
		long[i] = byte(i)
	}
	clients := []Client{cl(1), cl(2), {MAC: mac(3), ClientID: []byte{1, 2, 3}}, {MAC: mac(4), ClientID: long}}
	seen := map[string]uint32{}
	last := map[string]Change{}
	for _, c := range clients {
		l, ok := tb.Offer(c, netip.Addr{}, t0)
		if !ok {
			t.Fatal("no offer")
		}
		if _, v := tb.Request(c, l.IP, t0); v != ACK {
			t.Fatalf("%v: %v", c.MAC, v)
		}
	}
	l5, _ := tb.Offer(cl(5), netip.Addr{}, t0)
	tb.Request(cl(5), l5.IP, t0)
	if !tb.Decline(cl(5), l5.IP, t0) {
		t.Fatal("decline refused")
	}
	for _, ch := range tb.TakeChanges() {
		k := ch.Lease.Key()
		if ch.Entry == 0 {
			t.Fatalf("change of %s without an entry number", k)
		}
		if e, ok := seen[k]; ok && e != ch.Entry {
			t.Fatalf("%s changed number %d -> %d", k, e, ch.Entry)
		}
		seen[k] = ch.Entry
		last[k] = ch
	}
	for k, ch := range last {
		want := ch.Entry
		if ch.Deleted {
			want = 0
		}
		if got := tb.EntryOf(k); got != want {
			t.Errorf("EntryOf(%s) = %d, want %d (deleted: %v)", k, got, want, ch.Deleted)
		}
	}
	if len(seen) != len(clients)+2 { // client 5's key and its address's declined key
		t.Fatalf("%d keys changed: %v", len(seen), seen)
	}
	for _, k := range []string{"", "hw:", "hw:zz", "id:", "hw:" + strings.Repeat("00", 17), "declined:fd00::1", "declined:x", "other:1", "hw:020000000063"} {
		if got := tb.EntryOf(k); got != 0 {
			t.Errorf("EntryOf(%q) = %d", k, got)
		}
	}
}
