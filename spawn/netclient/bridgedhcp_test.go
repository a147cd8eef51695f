package netclient

import (
	"net"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

func TestLeaseSetup(t *testing.T) {
	ack, err := dhcpv4.New(
		dhcpv4.WithYourIP(net.IPv4(192, 168, 77, 60)),
		dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
		dhcpv4.WithRouter(net.IPv4(192, 168, 77, 1)),
		dhcpv4.WithDNS(net.IPv4(192, 168, 77, 1), net.IPv4(9, 9, 9, 9)),
		dhcpv4.WithOption(dhcpv4.OptDomainName("lan.example")),
		dhcpv4.WithLeaseTime(600),
	)
	if err != nil {
		t.Fatal(err)
	}
	s, dns, search := leaseSetup("host0", ack)
	if s.Name != "host0" || len(s.Addresses) != 1 || s.Addresses[0] != "192.168.77.60/24" || s.Gateway4 != "192.168.77.1" {
		t.Errorf("setup %+v", s)
	}
	if len(dns) != 2 || dns[1] != "9.9.9.9" || len(search) != 1 || search[0] != "lan.example" {
		t.Errorf("dns %v search %v", dns, search)
	}
	if d := renewAt(ack, 0); d != 300*time.Second {
		t.Errorf("T1 %s, want half the lease", d)
	}
	if d := renewAt(ack, time.Second); d != time.Second {
		t.Errorf("override %s", d)
	}
}

func TestEnvDuration(t *testing.T) {
	t.Setenv(EnvDHCPTimeout, "2.5")
	if d, err := envDuration(EnvDHCPTimeout, time.Second); err != nil || d != 2500*time.Millisecond {
		t.Errorf("2.5: %s %v", d, err)
	}
	t.Setenv(EnvDHCPTimeout, "1m")
	if d, _ := envDuration(EnvDHCPTimeout, time.Second); d != time.Minute {
		t.Errorf("1m: %s", d)
	}
	t.Setenv(EnvDHCPTimeout, "soon")
	if _, err := envDuration(EnvDHCPTimeout, time.Second); err == nil {
		t.Error("bad value accepted")
	}
	t.Setenv(EnvDHCPOptional, "yes")
	if !envYes(EnvDHCPOptional) {
		t.Error("yes not read")
	}
}
