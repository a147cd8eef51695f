package ipam

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

func pfx(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, x := range s {
		out = append(out, netip.MustParsePrefix(x))
	}
	return out
}

func TestFirstFreeAndOrder(t *testing.T) {
	a := New(nil, nil)
	al, err := a.Allocate(Request{Owner: "a", Bits: LinkBits})
	if err != nil {
		t.Fatal(err)
	}
	if al.Subnet.String() != "192.168.0.0/28" || al.Gateway.String() != "192.168.0.1" || al.Address.String() != "192.168.0.2" {
		t.Fatalf("first allocation %+v", al)
	}
	b, _ := a.Allocate(Request{Owner: "b", Bits: LinkBits})
	if b.Subnet.String() != "192.168.0.16/28" {
		t.Fatalf("second allocation %v", b.Subnet)
	}
	// Host uses 192.168.0.0/16 entirely: next pool.
	c, _ := a.Allocate(Request{Owner: "c", Bits: LinkBits, InUse: pfx("192.168.0.0/16")})
	if c.Subnet.String() != "172.16.0.0/28" {
		t.Fatalf("skip to second pool: %v", c.Subnet)
	}
	z, _ := a.Allocate(Request{Owner: "zone:blue", Bits: ZoneBits, InUse: pfx("192.168.1.7/24")})
	if z.Subnet.String() != "192.168.2.0/24" || z.Address.IsValid() {
		t.Fatalf("zone %+v", z)
	}
}

func TestSkipsHostAddressesAndRoutes(t *testing.T) {
	a := New(nil, nil)
	al, err := a.Allocate(Request{Owner: "x", Bits: LinkBits, InUse: pfx("192.168.0.5/32", "192.168.0.16/29", "10.0.0.0/8")})
	if err != nil {
		t.Fatal(err)
	}
	if al.Subnet.String() != "192.168.0.32/28" {
		t.Fatalf("got %v", al.Subnet)
	}
	// IPv6 and v4-mapped inputs are handled.
	al2, _ := a.Allocate(Request{Owner: "y", Bits: LinkBits, InUse: pfx("fd00::/8", "::ffff:192.168.0.0/124")})
	if al2.Subnet.String() != "192.168.0.16/28" {
		t.Fatalf("got %v", al2.Subnet)
	}
}

func TestPersistence(t *testing.T) {
	a := New(nil, nil)
	for _, o := range []string{"a", "b", "c"} {
		if _, err := a.Allocate(Request{Owner: o, Bits: LinkBits}); err != nil {
			t.Fatal(err)
		}
	}
	saved := a.All()
	b := New(nil, saved)
	got, _ := b.Allocate(Request{Owner: "b", Bits: LinkBits})
	if got.Subnet != saved["b"].Subnet {
		t.Fatalf("b moved: %v -> %v", saved["b"].Subnet, got.Subnet)
	}
	// A new owner never receives an existing subnet.
	d, _ := b.Allocate(Request{Owner: "d", Bits: LinkBits})
	for o, al := range saved {
		if al.Subnet.Overlaps(d.Subnet) {
			t.Fatalf("d got %v owned by %s", d.Subnet, o)
		}
	}
	// The saved subnet now collides with the host: a new one is chosen.
	moved, _ := b.Allocate(Request{Owner: "a", Bits: LinkBits, InUse: []netip.Prefix{saved["a"].Subnet}})
	if moved.Subnet == saved["a"].Subnet {
		t.Fatal("kept a subnet that the host now uses")
	}
}

func TestExhaustionAndReclaim(t *testing.T) {
	pools, err := ParsePools("10.9.0.0/27")
	if err != nil {
		t.Fatal(err)
	}
	a := New(pools, nil)
	t0 := time.Unix(1000, 0)
	for i, o := range []string{"a", "b"} {
		if _, err := a.Allocate(Request{Owner: o, Bits: LinkBits, Now: t0.Add(time.Duration(i) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = a.Allocate(Request{Owner: "c", Bits: LinkBits})
	if !errors.Is(err, ErrExhausted) {
		t.Fatalf("want exhaustion, got %v", err)
	}
	t.Log(err)
	// a is stopped: its subnet (least recently used) is reclaimed.
	c, err := a.Allocate(Request{Owner: "c", Bits: LinkBits, Active: func(o string) bool { return o == "b" }})
	if err != nil || c.Subnet.String() != "10.9.0.0/28" {
		t.Fatalf("reclaim: %v %v", c, err)
	}
	if _, ok := a.Get("a"); ok {
		t.Fatal("a still allocated")
	}
}

func TestParsePools(t *testing.T) {
	for _, bad := range []string{"", "x", "fd00::/8", "10.0.0.0/30"} {
		if _, err := ParsePools(bad); err == nil {
			t.Errorf("ParsePools(%q) accepted", bad)
		}
	}
	p, err := ParsePools("10.1.2.3/16, 192.168.0.0/16")
	if err != nil || len(p) != 2 || p[0].String() != "10.1.0.0/16" {
		t.Fatalf("%v %v", p, err)
	}
}

func TestManyFlat(t *testing.T) {
	a := New(nil, nil)
	seen := map[netip.Prefix]bool{}
	for i := range 5000 {
		al, err := a.Allocate(Request{Owner: string(rune(0x4e00 + i)), Bits: LinkBits})
		if err != nil {
			t.Fatal(err)
		}
		if seen[al.Subnet] {
			t.Fatalf("duplicate %v", al.Subnet)
		}
		seen[al.Subnet] = true
	}
}

func TestWantedAddress(t *testing.T) {
	a := New(pfx("10.9.0.0/24"), nil)
	want := netip.MustParseAddr("192.168.40.7")
	al, err := a.Allocate(Request{Owner: "a", Bits: LinkBits, Want: want})
	if err != nil || al.Subnet.String() != "192.168.40.0/28" || al.Gateway.String() != "192.168.40.1" || al.Address != want {
		t.Fatalf("wanted: %+v %v", al, err)
	}
	// The same subnet for another owner: taken, unless that owner stopped.
	active := func(o string) bool { return o == "a" }
	if _, err := a.Allocate(Request{Owner: "b", Bits: LinkBits, Want: netip.MustParseAddr("192.168.40.9"), Active: active}); !errors.Is(err, ErrTaken) {
		t.Errorf("subnet of a running owner: %v", err)
	}
	if b, err := a.Allocate(Request{Owner: "b", Bits: LinkBits, Want: netip.MustParseAddr("192.168.40.9"), Active: func(string) bool { return false }}); err != nil || b.Address.String() != "192.168.40.9" {
		t.Errorf("subnet of a stopped owner: %+v %v", b, err)
	}
	if _, ok := a.Get("a"); ok {
		t.Error("the stopped owner kept its subnet")
	}
	for _, bad := range []string{"192.168.50.0", "192.168.50.1", "192.168.50.15", "fd00::1"} {
		if _, err := a.Allocate(Request{Owner: "c", Bits: LinkBits, Want: netip.MustParseAddr(bad)}); err == nil {
			t.Errorf("%s was given", bad)
		}
	}
	if _, err := a.Allocate(Request{Owner: "c", Bits: LinkBits, Want: netip.MustParseAddr("192.168.60.2"), InUse: pfx("192.168.60.0/24")}); !errors.Is(err, ErrTaken) {
		t.Errorf("a subnet in use on the host: %v", err)
	}
}

func TestHasRoom(t *testing.T) {
	a := New(pfx("10.9.0.0/27"), nil) // two /28s
	if !a.HasRoom(LinkBits, nil, nil) {
		t.Fatal("empty pools have no room")
	}
	for _, o := range []string{"a", "b"} {
		if _, err := a.Allocate(Request{Owner: o, Bits: LinkBits}); err != nil {
			t.Fatal(err)
		}
	}
	if a.HasRoom(LinkBits, nil, func(string) bool { return true }) {
		t.Error("full pools have room")
	}
	if !a.HasRoom(LinkBits, nil, func(o string) bool { return o != "b" }) {
		t.Error("a stopped owner's subnet is not counted as room")
	}
}
