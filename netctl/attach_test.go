package netctl

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/netspawn/netspawn/netctl/ipam"
)

func TestMemberAddr(t *testing.T) {
	z := &zoneState{Name: "blue", Alloc: ipam.Allocation{Subnet: netip.MustParsePrefix("10.1.2.0/24")}, Members: map[string]netip.Addr{}}
	z.active = map[string]bool{}
	a, _, err := memberAddr(z, "web")
	if err != nil {
		t.Fatal(err)
	}
	if !z.Alloc.Subnet.Contains(a) || a.As4()[3] < zoneReservedFirst || a.As4()[3] > zoneReservedLast {
		t.Fatalf("address %s outside the member range", a)
	}
	// Stable: the same name gets the same address.
	if b, _, _ := memberAddr(z, "web"); b != a {
		t.Fatalf("unstable: %s then %s", a, b)
	}
	// A kept reservation wins; a colliding name probes on.
	z.Members["web"] = a
	z.active["web"] = true
	if b, _, _ := memberAddr(z, "web"); b != a {
		t.Fatalf("kept reservation not used: %s", b)
	}
	seen := map[netip.Addr]bool{a: true}
	for i := 0; i < zoneReservedLast-zoneReservedFirst; i++ {
		n := "m" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		b, reclaimed, err := memberAddr(z, n)
		if err != nil || reclaimed != "" {
			t.Fatalf("member %d: %v (reclaimed %q)", i, err, reclaimed)
		}
		if seen[b] {
			t.Fatalf("%s handed out twice", b)
		}
		seen[b] = true
		z.Members[n] = b
		z.active[n] = true
	}
	// Every address held by a running member: none is left.
	if _, _, err := memberAddr(z, "one-too-many"); !errors.Is(err, ipam.ErrExhausted) {
		t.Fatalf("a full zone of running members: %v", err)
	}
	// Two members stop: the one that joined longer ago (or has no time
	// on record, from an older netspawnd) gives its address up.
	now := time.Now()
	z.Joined = map[string]time.Time{"maa": now.Add(-time.Hour), "mba": now.Add(-2 * time.Hour)}
	z.active["maa"], z.active["mba"] = false, false
	want := z.Members["mba"]
	b, reclaimed, err := memberAddr(z, "newcomer")
	if err != nil || reclaimed != "mba" || b != want {
		t.Fatalf("reclaim: %s from %q, %v; want %s from mba", b, reclaimed, err, want)
	}
	if _, ok := z.Members["mba"]; ok {
		t.Error("the reclaimed member keeps its reservation")
	}
	z.Members["newcomer"] = b
	z.active["newcomer"] = true
	// The stopped member left keeps its own address when it comes back.
	if c, reclaimed, err := memberAddr(z, "maa"); err != nil || reclaimed != "" || c != z.Members["maa"] {
		t.Fatalf("returning member: %s from %q, %v", c, reclaimed, err)
	}
	if v := reclaimableMember(z, "maa"); v != "" {
		t.Errorf("reclaimable besides maa itself: %q", v)
	}
}

func TestSplitPairAndOwners(t *testing.T) {
	if h, c := splitPair("eth1"); h != "eth1" || c != "eth1" {
		t.Errorf("eth1: %s %s", h, c)
	}
	if h, c := splitPair("eth1:lan"); h != "eth1" || c != "lan" {
		t.Errorf("eth1:lan: %s %s", h, c)
	}
	if n := attachedLinkName(zoneOwner("blue")); n != "vz-blue" {
		t.Errorf("zone owner link %q", n)
	}
	if n := attachedLinkName("web"); n != "ve-web" {
		t.Errorf("machine owner link %q", n)
	}
}

func TestViewOf(t *testing.T) {
	c := &Controller{}
	c.setView(netip.MustParsePrefix("10.1.2.0/24"), "blue")
	if z, ok := c.ViewOf(netip.MustParseAddr("10.1.2.7")); !ok || z != "blue" {
		t.Errorf("member: %q %v", z, ok)
	}
	if _, ok := c.ViewOf(netip.MustParseAddr("10.1.2.1")); ok {
		t.Error("the gateway (the host) got a zone view")
	}
	if _, ok := c.ViewOf(netip.MustParseAddr("10.1.3.7")); ok {
		t.Error("an outsider got a zone view")
	}
	c.setView(netip.MustParsePrefix("10.1.2.0/24"), "")
	if _, ok := c.ViewOf(netip.MustParseAddr("10.1.2.7")); ok {
		t.Error("view kept after the zone went")
	}
}

func TestMoveMembers(t *testing.T) {
	from, to := netip.MustParsePrefix("192.168.1.0/24"), netip.MustParsePrefix("10.4.7.0/24")
	got := moveMembers(map[string]netip.Addr{"a": netip.MustParseAddr("192.168.1.46"), "b": netip.MustParseAddr("192.168.1.200"),
		"stale": netip.MustParseAddr("172.16.0.9")}, from, to)
	want := map[string]netip.Addr{"a": netip.MustParseAddr("10.4.7.46"), "b": netip.MustParseAddr("10.4.7.200")}
	if len(got) != len(want) || got["a"] != want["a"] || got["b"] != want["b"] {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got := moveMembers(map[string]netip.Addr{"a": netip.MustParseAddr("192.168.1.46")}, from, netip.MustParsePrefix("10.4.0.0/16")); len(got) != 0 {
		t.Fatalf("moved across sizes: %v", got)
	}
}
