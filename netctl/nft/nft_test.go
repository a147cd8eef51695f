package nft

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/netspawn/netspawn/netctl/internal/nstest"
)

func sample() Elements {
	return Elements{
		Links:   []string{"ve-web", "ve-db"},
		Subnets: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/28"), netip.MustParsePrefix("10.1.2.0/24"), netip.MustParsePrefix("fd01:2:3:4::/64")},
		Forwards: []Forward{{Proto: "tcp", HostPort: 8080, Addr: netip.MustParseAddr("192.168.0.2"), Port: 80},
			{Proto: "udp", HostPort: 53, Addr: netip.MustParseAddr("192.168.0.2"), Port: 5353},
			{Proto: "tcp", HostPort: 8080, Addr: netip.MustParseAddr("fd01:2:3:4:5054:ff:fe12:3456"), Port: 80}},
	}
}

func TestKeysAndDiff(t *testing.T) {
	if got := FwdKey(6, 8080); !reflect.DeepEqual(got, []byte{6, 0, 0, 0, 0x1f, 0x90, 0, 0}) {
		t.Fatalf("FwdKey %x", got)
	}
	els, err := sample().toKernel()
	if err != nil || len(els) != 8 {
		t.Fatalf("%v %v", els, err)
	}
	var round Elements
	for _, el := range els {
		round.addKernel(el.set, toSetElements(el))
	}
	if !reflect.DeepEqual(round.Sort(), sample().Sort()) {
		t.Fatalf("round trip: %+v", round)
	}
	have := sample()
	have.Links = []string{"ve-web", "ve-old"}
	have.Forwards[0].Port = 81
	add, del, err := Diff(sample(), have)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(add.Links, []string{"ve-db"}) || len(add.Forwards) != 1 || add.Forwards[0].Port != 80 {
		t.Fatalf("add %+v", add)
	}
	if !reflect.DeepEqual(del.Links, []string{"ve-old"}) || len(del.Forwards) != 1 || len(del.Subnets) != 0 {
		t.Fatalf("del %+v", del)
	}
	if _, err := (Elements{Subnets: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/20")}}).toKernel(); err == nil {
		t.Fatal("a /20 subnet accepted")
	}
	if _, err := (Elements{Subnets: []netip.Prefix{netip.MustParsePrefix("fd00::/48")}}).toKernel(); err == nil {
		t.Fatal("an IPv6 /48 subnet accepted")
	}
	if _, err := (Elements{Forwards: []Forward{{Proto: "sctp"}}}).toKernel(); err == nil {
		t.Fatal("sctp accepted")
	}
	if n := len(Rules(RuleOptions{DNSSteer: netip.MustParseAddrPort("127.0.0.153:53")})); n != 17 {
		t.Fatalf("%d rules", n)
	}
}

func TestKernel(t *testing.T) {
	nstest.RequireRoot(t, "nft")
	ns := nstest.New(t, "nft")
	// A foreign table that must survive everything.
	ns.MustRun(t, "nft", "add table ip foreign; add chain ip foreign c { type filter hook forward priority 0; policy accept; }")
	f, err := Open(Options{NetNSFd: ns.Fd(t), Rules: RuleOptions{DNSSteer: netip.MustParseAddrPort("127.0.0.153:53")}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	created, err := f.Ensure()
	if err != nil || !created {
		t.Fatalf("Ensure: %v %v", created, err)
	}
	if created, err := f.Ensure(); err != nil || created {
		t.Fatalf("second Ensure recreated the table: %v %v", created, err)
	}
	if err := f.Add(sample()); err != nil {
		t.Fatal(err)
	}
	out := ns.MustRun(t, "nft", "list", "table", "inet", TableName)
	for _, want := range []string{"tcp . 8080 : 192.168.0.2 . 80", "\"ve-web\"", "192.168.0.0", "fib daddr type local dnat ip to meta l4proto . th dport map @fwd4",
		"oifname != @links masquerade", "udp dport 53 dnat ip to 127.0.0.153:53", "tcp dport 53 dnat ip to 127.0.0.153:53", "ct status dnat iifname @links oifname @links masquerade",
		"tcp . 8080 : fd01:2:3:4:5054:ff:fe12:3456 . 80", "fd01:2:3:4::", "dnat ip6 to meta l4proto . th dport map @fwd6",
		"ip6 daddr != ::1", "ip6 saddr & ffff:ffff:ffff:ffff:: == @subnets64 oifname != @links masquerade"} {
		if !strings.Contains(out, want) {
			t.Errorf("ruleset lacks %q:\n%s", want, out)
		}
	}
	got, err := f.Dump()
	if err != nil || !reflect.DeepEqual(got, sample().Sort()) {
		t.Fatalf("Dump %+v %v", got, err)
	}
	// Idempotent delete of a subset, twice.
	part := Elements{Links: []string{"ve-db"}, Forwards: sample().Forwards[1:]}
	for range 2 {
		if err := f.Delete(part); err != nil {
			t.Fatal(err)
		}
	}
	// Reconcile back to the full sample, then to a large set in chunks.
	if _, _, err := f.Reconcile(sample()); err != nil {
		t.Fatal(err)
	}
	var big Elements
	for i := range 600 {
		big.Forwards = append(big.Forwards, Forward{Proto: "tcp", HostPort: uint16(10000 + i), Addr: netip.MustParseAddr("10.0.0.2"), Port: 80})
		big.Links = append(big.Links, "ve-m"+string(rune('a'+i%26))+strings.Repeat("x", i%10)+string(rune('a'+i/26)))
	}
	if _, _, err := f.Reconcile(big); err != nil {
		t.Fatal(err)
	}
	got, _ = f.Dump()
	if len(got.Forwards) != 600 || len(got.Subnets) != 0 {
		t.Fatalf("after big reconcile: %d forwards %d subnets", len(got.Forwards), len(got.Subnets))
	}
	if _, err := ns.Run("nft", "list", "table", "ip", "foreign"); err != nil {
		t.Fatalf("foreign table touched: %v", err)
	}
	if err := f.Remove(); err != nil {
		t.Fatal(err)
	}
}
