package nss

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"

	"github.com/netspawn/netspawn/dns"
)

func testSource() *dns.Zone {
	z := dns.NewZone()
	z.Set("web", []netip.Addr{netip.MustParseAddr("fd00::2"), netip.MustParseAddr("192.168.0.2")}, "")
	z.Set("v4", []netip.Addr{netip.MustParseAddr("192.168.0.3")}, "z1")
	z.Set("v6", []netip.Addr{netip.MustParseAddr("fd00::3")}, "")
	return z
}

func TestRequestRoundTrip(t *testing.T) {
	for _, r := range []Request{
		{Op: OpByName, Family: FamilyAny, Name: "web"},
		{Op: OpByName, Family: FamilyIPv6, Name: "web.netspawn.internal."},
		{Op: OpByAddr, Family: FamilyIPv4, Addr: netip.MustParseAddr("192.168.0.2")},
		{Op: OpByAddr, Family: FamilyIPv6, Addr: netip.MustParseAddr("fd00::2")},
	} {
		b, err := AppendRequest(nil, r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseRequest(b)
		if err != nil || got != r {
			t.Fatalf("round trip %+v: %+v %v", r, got, err)
		}
	}
	bad := [][]byte{
		nil,
		{1, 1, 0},
		{2, 1, 0, 1, 'a'},    // version
		{1, 1, 0, 2, 'a'},    // length
		{1, 1, 0, 0},         // empty name
		{1, 1, 7, 1, 'a'},    // family
		{1, 1, 0, 2, 'a', 0}, // NUL
		{1, 3, 0, 1, 'a'},    // op
		{1, 2, 2, 3, 1, 2, 3},
		{1, 2, 0, 4, 1, 2, 3, 4},
	}
	for _, b := range bad {
		if _, err := ParseRequest(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseRequest(%v) = %v, want ErrMalformed", b, err)
		}
	}
	if _, err := AppendRequest(nil, Request{Op: OpByName}); err == nil {
		t.Error("empty name encoded")
	}
}

func TestReplyRoundTrip(t *testing.T) {
	r := Reply{Status: StatusFound, Name: "web",
		IPv4: []netip.Addr{netip.MustParseAddr("192.168.0.2")},
		IPv6: []netip.Addr{netip.MustParseAddr("fd00::2"), netip.MustParseAddr("fd00::3")}}
	b := AppendReply(nil, r)
	if len(b) != 8+3+4+32 {
		t.Fatalf("reply of %d bytes", len(b))
	}
	got, err := ParseReply(b)
	if err != nil || got.Name != "web" || !slices.Equal(got.IPv4, r.IPv4) || !slices.Equal(got.IPv6, r.IPv6) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	// Not found carries nothing.
	b = AppendReply(nil, Reply{Status: StatusNotFound, Name: "x", IPv4: r.IPv4})
	if len(b) != 8 {
		t.Fatalf("not-found reply of %d bytes", len(b))
	}
	// Caps.
	var many []netip.Addr
	for i := 0; i < 40; i++ {
		many = append(many, netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}))
	}
	got, err = ParseReply(AppendReply(nil, Reply{Status: StatusFound, Name: "m", IPv4: many}))
	if err != nil || len(got.IPv4) != MaxAddrs {
		t.Fatalf("cap: %d %v", len(got.IPv4), err)
	}
	for _, b := range [][]byte{nil, {1, 0, 0, 0, 0, 0, 0, 0}, {1, 0, 1, 0, 1, 0, 0, 0, 'a'}, {1, 9, 0, 0, 0, 0, 0, 0}} {
		if _, err := ParseReply(b); err == nil {
			t.Errorf("ParseReply(%v) accepted", b)
		}
	}
}

func TestAnswer(t *testing.T) {
	s := &Server{Source: testSource(), Domain: "netspawn.internal"}
	tests := []struct {
		req    Request
		status byte
		name   string
		n4, n6 int
	}{
		{Request{Op: OpByName, Name: "web"}, StatusFound, "web", 1, 1},
		{Request{Op: OpByName, Name: "WEB.netspawn.internal."}, StatusFound, "web", 1, 1},
		{Request{Op: OpByName, Family: FamilyIPv4, Name: "web"}, StatusFound, "web", 1, 0},
		{Request{Op: OpByName, Family: FamilyIPv6, Name: "web"}, StatusFound, "web", 0, 1},
		{Request{Op: OpByName, Family: FamilyIPv6, Name: "v4"}, StatusNoData, "", 0, 0},
		{Request{Op: OpByName, Family: FamilyIPv4, Name: "v6"}, StatusNoData, "", 0, 0},
		{Request{Op: OpByName, Name: "v4"}, StatusFound, "v4", 1, 0},
		{Request{Op: OpByName, Name: "nope"}, StatusNotFound, "", 0, 0},
		{Request{Op: OpByName, Name: "a.web"}, StatusNotFound, "", 0, 0},
		{Request{Op: OpByName, Name: "web.example.com"}, StatusNotFound, "", 0, 0},
		{Request{Op: OpByAddr, Family: FamilyIPv4, Addr: netip.MustParseAddr("192.168.0.2")}, StatusFound, "web", 0, 0},
		{Request{Op: OpByAddr, Family: FamilyIPv6, Addr: netip.MustParseAddr("fd00::3")}, StatusFound, "v6", 0, 0},
		{Request{Op: OpByAddr, Family: FamilyIPv4, Addr: netip.MustParseAddr("192.168.0.9")}, StatusNotFound, "", 0, 0},
	}
	for _, tt := range tests {
		got := s.Answer(tt.req)
		if got.Status != tt.status || got.Name != tt.name || len(got.IPv4) != tt.n4 || len(got.IPv6) != tt.n6 {
			t.Errorf("Answer(%+v) = %+v", tt.req, got)
		}
	}
}

func TestServeSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), SocketName)
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, testSource()) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	c, err := net.Dial("unixpacket", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req, _ := AppendRequest(nil, Request{Op: OpByName, Name: "web"})
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, MaxReply+1)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := ParseReply(buf[:n])
	if err != nil || rep.Status != StatusFound || rep.IPv4[0] != netip.MustParseAddr("192.168.0.2") {
		t.Fatalf("reply %+v %v", rep, err)
	}
	// A malformed request closes the connection without a reply.
	if _, err := c.Write([]byte{9, 9}); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(buf); err == nil && n > 0 {
		t.Fatalf("reply to garbage: %v", buf[:n])
	}
}

func TestServeDefaultDomain(t *testing.T) {
	path := filepath.Join(t.TempDir(), SocketName)
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, testSource()) }()
	defer func() { cancel(); <-done }()
	c, err := net.Dial("unixpacket", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req, _ := AppendRequest(nil, Request{Op: OpByName, Name: "web." + dns.DefaultDomain})
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, MaxReply)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := ParseReply(buf[:n]); err != nil || rep.Status != StatusFound {
		t.Fatalf("reply %+v %v", rep, err)
	}
}
