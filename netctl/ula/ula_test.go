package ula

import (
	"bytes"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
)

func TestGenerate(t *testing.T) {
	p, err := Generate(bytes.NewReader([]byte{1, 2, 3, 4, 5}))
	if err != nil {
		t.Fatal(err)
	}
	if p.String() != "fd01:203:405::/48" {
		t.Fatalf("got %s", p)
	}
	q, err := Generate(nil)
	if err != nil || !Local.Contains(q.Addr()) || q.Bits() != 48 || !IsULA(q) {
		t.Fatalf("random: %s %v", q, err)
	}
	if _, err := Generate(bytes.NewReader([]byte{1})); err == nil {
		t.Fatal("short random source accepted")
	}
}

func TestLoadOrCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "ula-prefix")
	a, err := LoadOrCreate(path, netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreate(path, netip.Prefix{})
	if err != nil || a != b {
		t.Fatalf("not persisted: %s then %s (%v)", a, b, err)
	}
	c, err := LoadOrCreate(path, netip.MustParsePrefix("2001:db8:5::/48"))
	if err != nil || c.String() != "2001:db8:5::/48" {
		t.Fatalf("configured: %s %v", c, err)
	}
	if _, err := LoadOrCreate(path, netip.MustParsePrefix("2001:db8::/96")); err == nil {
		t.Fatal("a /96 accepted")
	}
}

func TestSubnet(t *testing.T) {
	base := netip.MustParsePrefix("fd12:3456:789a::/48")
	p, ok := Subnet(base, "web", nil)
	if !ok || p.Bits() != 64 || !base.Contains(p.Addr()) || p.Addr() == base.Addr() {
		t.Fatalf("got %s %v", p, ok)
	}
	again, _ := Subnet(base, "web", nil)
	if again != p {
		t.Fatal("not stable")
	}
	// A taken prefix (routed on the host, or another owner's) is skipped.
	q, ok := Subnet(base, "web", func(x netip.Prefix) bool { return x == p })
	if !ok || q == p || !base.Contains(q.Addr()) {
		t.Fatalf("skip: %s", q)
	}
	// A /63 has one usable slot besides 0.
	small := netip.MustParsePrefix("fd00:1:2:4::/63")
	s, ok := Subnet(small, "x", nil)
	if !ok || s.String() != "fd00:1:2:5::/64" {
		t.Fatalf("/63: %s %v", s, ok)
	}
	if _, ok := Subnet(small, "x", func(netip.Prefix) bool { return true }); ok {
		t.Fatal("full base gave a subnet")
	}
	if g := Gateway(p); !p.Contains(g) || g.As16()[15] != 1 {
		t.Fatalf("gateway %s", g)
	}
}

func TestEUI64(t *testing.T) {
	mac, _ := net.ParseMAC("52:54:00:12:34:56")
	a, err := EUI64(netip.MustParsePrefix("fd00:1:2:3::/64"), mac)
	if err != nil {
		t.Fatal(err)
	}
	// The same identifier the kernel forms (addrgenmode eui64).
	if a.String() != "fd00:1:2:3:5054:ff:fe12:3456" {
		t.Fatalf("got %s", a)
	}
	local, _ := net.ParseMAC("2e:aa:bb:cc:dd:ee")
	b, _ := EUI64(netip.MustParsePrefix("fd00::/64"), local)
	if b.String() != "fd00::2caa:bbff:fecc:ddee" {
		t.Fatalf("local MAC: %s", b)
	}
	if _, err := EUI64(netip.MustParsePrefix("fd00::/64"), net.HardwareAddr{1, 2}); err == nil {
		t.Fatal("short MAC accepted")
	}
}
