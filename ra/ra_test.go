package ra

import (
	"net"
	"net/netip"
	"testing"

	"github.com/mdlayher/ndp"
)

func TestAdvertisement(t *testing.T) {
	mac, _ := net.ParseMAC("02:00:00:00:00:01")
	l := Link{Name: "ve-web", Prefix: netip.MustParsePrefix("fd01:2:3:4::/64"),
		DNS: []netip.Addr{netip.MustParseAddr("192.168.0.1"), netip.MustParseAddr("fd01:2:3:4::1")}, Domains: []string{"netspawn.internal"}, MTU: 1400}
	ra, err := Advertisement(l, mac)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ndp.MarshalMessage(ra)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ndp.ParseMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	got := m.(*ndp.RouterAdvertisement)
	if got.RouterLifetime != RouterLifetime || got.CurrentHopLimit != 64 || got.ManagedConfiguration || got.OtherConfiguration {
		t.Fatalf("header %+v", got)
	}
	var pi *ndp.PrefixInformation
	var rdnss *ndp.RecursiveDNSServer
	var dnssl *ndp.DNSSearchList
	var lla *ndp.LinkLayerAddress
	var mtu *ndp.MTU
	for _, o := range got.Options {
		switch o := o.(type) {
		case *ndp.PrefixInformation:
			pi = o
		case *ndp.RecursiveDNSServer:
			rdnss = o
		case *ndp.DNSSearchList:
			dnssl = o
		case *ndp.LinkLayerAddress:
			lla = o
		case *ndp.MTU:
			mtu = o
		}
	}
	if pi == nil || pi.Prefix != l.Prefix.Addr() || pi.PrefixLength != 64 || !pi.OnLink || !pi.AutonomousAddressConfiguration || pi.PreferredLifetime > pi.ValidLifetime {
		t.Fatalf("prefix %+v", pi)
	}
	// Only the IPv6 resolver goes into RDNSS.
	if rdnss == nil || len(rdnss.Servers) != 1 || rdnss.Servers[0] != netip.MustParseAddr("fd01:2:3:4::1") {
		t.Fatalf("rdnss %+v", rdnss)
	}
	if dnssl == nil || len(dnssl.DomainNames) != 1 || dnssl.DomainNames[0] != "netspawn.internal" {
		t.Fatalf("dnssl %+v", dnssl)
	}
	if lla == nil || lla.Addr.String() != mac.String() || lla.Direction != ndp.Source {
		t.Fatalf("lla %+v", lla)
	}
	if mtu == nil || mtu.MTU != 1400 {
		t.Fatalf("mtu %+v", mtu)
	}
	if _, err := Advertisement(Link{Name: "x", Prefix: netip.MustParsePrefix("fd00::/48")}, nil); err == nil {
		t.Fatal("a /48 accepted")
	}
	if _, err := Advertisement(Link{Name: "x", Prefix: netip.MustParsePrefix("10.0.0.0/24")}, nil); err == nil {
		t.Fatal("IPv4 accepted")
	}
}
