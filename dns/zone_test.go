package dns

import (
	"net/netip"
	"slices"
	"sync"
	"testing"
)

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

func TestZoneSetLookupDelete(t *testing.T) {
	z := NewZone()
	z.Set("Web", addrs("192.168.0.2", "fd00::2", "::ffff:192.168.0.3", "0.0.0.0", "192.168.0.2"), "")
	r, ok := z.Lookup("WEB.")
	if !ok {
		t.Fatal("web not found")
	}
	if r.Name != "web" || !slices.Equal(r.IPv4, addrs("192.168.0.2", "192.168.0.3")) || !slices.Equal(r.IPv6, addrs("fd00::2")) {
		t.Fatalf("record = %+v", r)
	}
	if r, ok := z.LookupAddr(netip.MustParseAddr("::ffff:192.168.0.3")); !ok || r.Name != "web" {
		t.Fatalf("LookupAddr mapped = %+v %v", r, ok)
	}
	// Replacing drops the old addresses from the reverse index.
	z.Set("web", addrs("10.0.0.5"), "z1")
	if _, ok := z.LookupAddr(netip.MustParseAddr("192.168.0.2")); ok {
		t.Fatal("old address still maps to web")
	}
	if r, ok := z.LookupAddr(netip.MustParseAddr("10.0.0.5")); !ok || r.View != "z1" {
		t.Fatalf("new address: %+v %v", r, ok)
	}
	// An address moving to another machine is not deleted with the first.
	z.Set("db", addrs("10.0.0.5"), "z1")
	z.Delete("web")
	if r, ok := z.LookupAddr(netip.MustParseAddr("10.0.0.5")); !ok || r.Name != "db" {
		t.Fatalf("moved address: %+v %v", r, ok)
	}
	if _, ok := z.Lookup("web"); ok {
		t.Fatal("web still present")
	}
	z.Delete("nothing")
	z.Set("", addrs("1.2.3.4"), "")
	if z.Len() != 1 {
		t.Fatalf("Len = %d", z.Len())
	}
}

func TestZoneConcurrent(t *testing.T) {
	z := NewZone()
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := 0; j < 1000; j++ {
				z.Set("m", addrs("10.0.0.1"), "")
				z.Delete("m")
			}
		}()
		go func() {
			defer wg.Done()
			for j := 0; j < 1000; j++ {
				z.Lookup("m")
				z.LookupAddr(netip.MustParseAddr("10.0.0.1"))
			}
		}()
	}
	wg.Wait()
}

func TestParseReverse(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"2.0.168.192.in-addr.arpa.", "192.168.0.2"},
		{"255.255.255.255.in-addr.arpa.", "255.255.255.255"},
		{"0.168.192.in-addr.arpa.", ""},
		{"256.0.168.192.in-addr.arpa.", ""},
		{"02.0.168.192.in-addr.arpa.", ""},
		{"a.0.168.192.in-addr.arpa.", ""},
		{"1.2.0.168.192.in-addr.arpa.", ""},
		{"2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", "fd00::2"},
		{"2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.ip6.arpa.", ""},
		{"g.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", ""},
		{"example.com.", ""},
	}
	for _, tt := range tests {
		got, ok := parseReverse(tt.in)
		if tt.want == "" {
			if ok {
				t.Errorf("parseReverse(%q) = %v, want failure", tt.in, got)
			}
			continue
		}
		if !ok || got != netip.MustParseAddr(tt.want) {
			t.Errorf("parseReverse(%q) = %v %v, want %s", tt.in, got, ok, tt.want)
		}
	}
}

func TestParseResolvConf(t *testing.T) {
	const conf = `# comment
nameserver 10.0.0.1
nameserver   fd00::53
nameserver bogus
; other comment
search example.com
nameserver 0.0.0.0
nameserver ::ffff:127.0.0.53
options ndots:2
nameserver
`
	got := ParseResolvConf(stringsReader(conf))
	want := []netip.AddrPort{
		netip.MustParseAddrPort("10.0.0.1:53"),
		netip.MustParseAddrPort("[fd00::53]:53"),
		netip.MustParseAddrPort("127.0.0.53:53"),
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
