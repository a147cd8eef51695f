package cluster

import (
	"errors"
	"net/netip"
	"testing"
)

func TestCandidates(t *testing.T) {
	sub := netip.MustParsePrefix("10.128.0.0/29")
	var got []netip.Addr
	for a := range Candidates(sub, "web") {
		got = append(got, a)
	}
	// .0 network, .1 gateway and .7 broadcast are never offered.
	if len(got) != 5 {
		t.Fatalf("got %v, want the 5 addresses .2-.6", got)
	}
	seen := map[netip.Addr]bool{}
	for _, a := range got {
		if !sub.Contains(a) || a == Gateway(sub) || a.As4()[3] == 0 || a.As4()[3] == 7 || seen[a] {
			t.Errorf("bad candidate %s in %v", a, got)
		}
		seen[a] = true
	}
	// The same name starts at the same place on every host.
	first := func(name string) netip.Addr {
		for a := range Candidates(netip.MustParsePrefix("10.128.0.0/16"), name) {
			return a
		}
		return netip.Addr{}
	}
	web1, web2, db := first("web"), first("web"), first("db")
	if web1 != web2 || web1 == db {
		t.Errorf("first candidates: web %s %s, db %s", web1, web2, db)
	}
	for range Candidates(netip.MustParsePrefix("fd00::/64"), "x") {
		t.Fatal("IPv6 subnets have no IPv4 candidates")
	}
}

func TestPickSubnet(t *testing.T) {
	pools := []netip.Prefix{netip.MustParsePrefix("10.128.0.0/15")}
	p, err := PickSubnet(pools, 16, nil)
	if err != nil || p != netip.MustParsePrefix("10.128.0.0/16") {
		t.Fatalf("first: %v %v", p, err)
	}
	p, err = PickSubnet(pools, 16, []netip.Prefix{netip.MustParsePrefix("10.128.5.0/24")})
	if err != nil || p != netip.MustParsePrefix("10.129.0.0/16") {
		t.Fatalf("around a taken /24: %v %v", p, err)
	}
	_, err = PickSubnet(pools, 16, []netip.Prefix{netip.MustParsePrefix("10.128.0.0/15")})
	if !errors.Is(err, ErrExhausted) {
		t.Fatalf("full: %v", err)
	}
}

func TestPickVNIAndPrefix6(t *testing.T) {
	v, err := PickVNI(map[uint32]bool{1: true, 2: true, 4: true})
	if err != nil || v != 3 {
		t.Fatalf("PickVNI = %d %v", v, err)
	}
	p, err := Prefix6(netip.MustParsePrefix("fd12:3456:789a::/48"), 0x1234)
	if err != nil || p != netip.MustParsePrefix("fd12:3456:789a:1234::/64") {
		t.Fatalf("Prefix6 = %v %v", p, err)
	}
	if _, err := Prefix6(netip.MustParsePrefix("fd12:3456:789a::/48"), 70000); err == nil {
		t.Fatal("a VNI above 65535 got a /64")
	}
	if m := GatewayMAC(0x010203).String(); m != "02:6e:73:01:02:03" {
		t.Fatalf("GatewayMAC = %s", m)
	}
	if MemberID("blue") == MemberID("red") {
		t.Fatal("zones share a MAC seed")
	}
}

func TestKeys(t *testing.T) {
	k := Keys{Root: DefaultPrefix}
	z, n, ok := SplitTwo(k.Name("blue", "web"), k.NamesPrefix())
	if !ok || z != "blue" || n != "web" {
		t.Fatalf("SplitTwo(%s) = %q %q %v", k.Name("blue", "web"), z, n, ok)
	}
	for _, bad := range []string{k.NamesPrefix() + "blue", k.NamesPrefix() + "blue/web/x", "/other/blue/web"} {
		if _, _, ok := SplitTwo(bad, k.NamesPrefix()); ok {
			t.Errorf("SplitTwo(%q) accepted", bad)
		}
	}
	if got := k.Subnet(netip.MustParsePrefix("10.128.0.0/16")); got != DefaultPrefix+"subnets/10.128.0.0_16" {
		t.Errorf("Subnet key %q", got)
	}
	for _, bad := range []string{"", "a/b", "a b"} {
		if ValidNode(bad) == nil {
			t.Errorf("node %q accepted", bad)
		}
	}
}
