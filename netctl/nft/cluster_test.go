package nft

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/netspawn/netspawn/netctl/internal/nstest"
)

func TestClusterNetElements(t *testing.T) {
	v4, v6, err := ClusterNetElements([]netip.Prefix{
		netip.MustParsePrefix("10.128.7.9/16"), // not masked: the subnet counts
		netip.MustParsePrefix("fd12:3456:789a:2a::/64"),
		netip.MustParsePrefix("10.200.3.0/24"),
		netip.MustParsePrefix("255.255.255.0/24"), // ends the address space: no end
	})
	if err != nil {
		t.Fatal(err)
	}
	str := func(els []nftables.SetElement) []string {
		var out []string
		for _, e := range els {
			a, _ := netip.AddrFromSlice(e.Key)
			s := a.String()
			if e.IntervalEnd {
				s += " end"
			}
			out = append(out, s)
		}
		return out
	}
	want4 := "10.128.0.0,10.129.0.0 end,10.200.3.0,10.200.4.0 end,255.255.255.0"
	if got := strings.Join(str(v4), ","); got != want4 {
		t.Errorf("IPv4 elements %s, want %s", got, want4)
	}
	want6 := "fd12:3456:789a:2a::,fd12:3456:789a:2b:: end"
	if got := strings.Join(str(v6), ","); got != want6 {
		t.Errorf("IPv6 elements %s, want %s", got, want6)
	}
	if _, _, err := ClusterNetElements([]netip.Prefix{{}}); err == nil {
		t.Error("an invalid prefix gave no error")
	}
}

func TestClusterTableKernel(t *testing.T) {
	nstest.RequireRoot(t, "nft")
	ns := nstest.New(t, "nftcl")
	nets := []netip.Prefix{netip.MustParsePrefix("10.128.0.0/16"), netip.MustParsePrefix("fd12:3456:789a:2a::/64")}
	if err := EnsureClusterTable(ns.Fd(t), nets); err != nil {
		t.Fatal(err)
	}
	out := ns.MustRun(t, "nft", "list", "table", "bridge", TableName)
	for _, want := range []string{"hook prerouting priority dstnat", "10.128.0.0/16", "fd12:3456:789a:2a::/64",
		"meta pkttype other ip saddr @cluster4 ip daddr @cluster4 notrack",
		"meta pkttype other ip6 saddr @cluster6 ip6 daddr @cluster6 notrack"} {
		if !strings.Contains(out, want) {
			t.Errorf("bridge table lacks %q:\n%s", want, out)
		}
	}
	// A second zone, then the first one gone.
	if err := SetClusterNets(ns.Fd(t), append(nets, netip.MustParsePrefix("10.200.3.0/24"))); err != nil {
		t.Fatal(err)
	}
	if out := ns.MustRun(t, "nft", "list", "set", "bridge", TableName, SetCluster4); !strings.Contains(out, "10.128.0.0/16, 10.200.3.0/24") {
		t.Errorf("after adding a zone:\n%s", out)
	}
	if err := SetClusterNets(ns.Fd(t), []netip.Prefix{netip.MustParsePrefix("10.200.3.0/24")}); err != nil {
		t.Fatal(err)
	}
	out = ns.MustRun(t, "nft", "list", "table", "bridge", TableName)
	if strings.Contains(out, "10.128.") || strings.Contains(out, "fd12:") || !strings.Contains(out, "10.200.3.0/24") {
		t.Errorf("after the first zone left:\n%s", out)
	}
}
