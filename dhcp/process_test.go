package dhcp

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/netspawn/netspawn/dhcp/lease"
)

var testCfg = LinkConfig{
	Name: "ve-test", Index: 7,
	Subnet:    netip.MustParsePrefix("10.9.0.0/24"),
	ServerIP:  netip.MustParseAddr("10.9.0.1"),
	PoolStart: netip.MustParseAddr("10.9.0.100"), PoolEnd: netip.MustParseAddr("10.9.0.199"),
	Routers: []netip.Addr{netip.MustParseAddr("10.9.0.1")}, DNS: []netip.Addr{netip.MustParseAddr("10.9.0.1")},
	Domain: "machines", Search: []string{"machines", "example.org"}, MTU: 1400, LeaseTime: time.Hour,
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestServer(t testing.TB, dir string) (*Server, *clock) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	s, err := New(Options{StateDir: dir, Now: clk.now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.addLink(testCfg, false); err != nil {
		t.Fatal(err)
	}
	return s, clk
}

var macA = net.HardwareAddr{2, 0, 0, 0, 0, 0xa}
var macB = net.HardwareAddr{2, 0, 0, 0, 0, 0xb}

func msg(t testing.TB, mt dhcpv4.MessageType, mac net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	m, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithMessageType(mt), dhcpv4.WithHwAddr(mac)}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func run(t testing.TB, s *Server, m *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, dest, error) {
	t.Helper()
	out, d, _, err := s.process(s.links[testCfg.Name], m.ToBytes())
	if err != nil || out == nil {
		return nil, d, err
	}
	r, perr := dhcpv4.FromBytes(out)
	if perr != nil {
		t.Fatalf("reply does not parse: %v", perr)
	}
	return r, d, nil
}

func dora(t *testing.T, s *Server, mac net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	offer, _, err := run(t, s, msg(t, dhcpv4.MessageTypeDiscover, mac, mods...))
	if err != nil || offer == nil {
		t.Fatalf("no offer: %v", err)
	}
	ack, _, err := run(t, s, msg(t, dhcpv4.MessageTypeRequest, mac, append(mods,
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(offer.ServerIdentifier())))...))
	if err != nil || ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("no ack: %v %v", ack, err)
	}
	if !ack.YourIPAddr.Equal(offer.YourIPAddr) {
		t.Fatalf("ack %v != offer %v", ack.YourIPAddr, offer.YourIPAddr)
	}
	return ack
}

func TestDiscoverOffer(t *testing.T) {
	s, _ := newTestServer(t, t.TempDir())
	offer, d, err := run(t, s, msg(t, dhcpv4.MessageTypeDiscover, macA))
	if err != nil {
		t.Fatal(err)
	}
	if offer.MessageType() != dhcpv4.MessageTypeOffer || offer.OpCode != dhcpv4.OpcodeBootReply {
		t.Fatalf("reply %v", offer.Summary())
	}
	if !testCfg.Subnet.Contains(ip4(offer.YourIPAddr)) || d.kind != destL2 || d.mac.String() != macA.String() {
		t.Fatalf("yiaddr %v dest %+v", offer.YourIPAddr, d)
	}
	if offer.ServerIdentifier().String() != "10.9.0.1" || offer.SubnetMask().String() != "ffffff00" ||
		offer.Router()[0].String() != "10.9.0.1" || offer.DNS()[0].String() != "10.9.0.1" || offer.DomainName() != "machines" {
		t.Fatalf("options %v", offer.Summary())
	}
	if offer.IPAddressLeaseTime(0) != time.Hour || offer.IPAddressRenewalTime(0) != 30*time.Minute || offer.IPAddressRebindingTime(0) != 52*time.Minute+30*time.Second {
		t.Fatalf("times %v", offer.Summary())
	}
	// No request list: every option; with one: only what is asked beyond the basics.
	if offer.GetOneOption(dhcpv4.OptionInterfaceMTU) == nil || offer.DomainSearch() == nil {
		t.Fatal("MTU/search missing without a request list")
	}
	o2, d2, _ := run(t, s, msg(t, dhcpv4.MessageTypeDiscover, macB, dhcpv4.WithBroadcast(true),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter)))
	if o2.GetOneOption(dhcpv4.OptionInterfaceMTU) != nil || o2.DomainSearch() != nil || d2.kind != destBroadcast {
		t.Fatalf("unrequested options sent or not broadcast: %v %+v", o2.Summary(), d2)
	}
	if o2.YourIPAddr.Equal(offer.YourIPAddr) {
		t.Fatal("two clients offered the same address")
	}
}

func TestReservationAndHostname(t *testing.T) {
	s, _ := newTestServer(t, t.TempDir())
	if err := s.Reserve(testCfg.Name, macA, netip.MustParseAddr("10.9.0.5"), "web"); err != nil {
		t.Fatal(err)
	}
	ack := dora(t, s, macA, dhcpv4.WithOption(dhcpv4.OptClientIdentifier([]byte{1, 2})))
	if ack.YourIPAddr.String() != "10.9.0.5" || ack.HostName() != "web" {
		t.Fatalf("reserved ack %v", ack.Summary())
	}
	if string(ack.GetOneOption(dhcpv4.OptionClientIdentifier)) != "\x01\x02" {
		t.Fatal("client identifier not echoed")
	}
	ls := s.Leases(testCfg.Name)
	if len(ls) != 1 || ls[0].State != lease.Bound || ls[0].Hostname != "web" {
		t.Fatalf("leases %+v", ls)
	}
}

// A reserved address that goes to another MAC (a stopped zone member's
// address taken over by a new member) stays the new MAC's when the link's
// configuration is applied again, which replays the reservations.
func TestReservationTakenOver(t *testing.T) {
	s, _ := newTestServer(t, t.TempDir())
	ip := netip.MustParseAddr("10.9.0.5")
	if err := s.Reserve(testCfg.Name, macA, ip, "old"); err != nil {
		t.Fatal(err)
	}
	if err := s.Reserve(testCfg.Name, macB, ip, "new"); err != nil {
		t.Fatal(err)
	}
	for range 8 { // the replay goes in map order: try it a few times
		if err := s.UpdateLink(testCfg); err != nil {
			t.Fatal(err)
		}
		if ack := dora(t, s, macB); ack.YourIPAddr.String() != ip.String() || ack.HostName() != "new" {
			t.Fatalf("the new holder: %v", ack.Summary())
		}
	}
	if ack := dora(t, s, macA); ack.YourIPAddr.String() == ip.String() {
		t.Fatalf("the old holder got the address back: %v", ack.Summary())
	}
}

func TestRenewRebindNakReleaseDeclineInform(t *testing.T) {
	s, clk := newTestServer(t, t.TempDir())
	ack := dora(t, s, macA)
	ip := ack.YourIPAddr
	clk.t = clk.t.Add(40 * time.Minute)
	// RENEW: unicast, ciaddr set, no server id/requested IP.
	r, d, err := run(t, s, msg(t, dhcpv4.MessageTypeRequest, macA, dhcpv4.WithClientIP(ip)))
	if err != nil || r.MessageType() != dhcpv4.MessageTypeAck || d.kind != destUnicast || !r.YourIPAddr.Equal(ip) {
		t.Fatalf("renew: %v %+v %v", r, d, err)
	}
	// INIT-REBOOT from another subnet: NAK, broadcast.
	r, d, _ = run(t, s, msg(t, dhcpv4.MessageTypeRequest, macA, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(192, 168, 7, 7)))))
	if r.MessageType() != dhcpv4.MessageTypeNak || d.kind != destBroadcast || !ip4(r.YourIPAddr).IsUnspecified() {
		t.Fatalf("wrong subnet: %v %+v", r.Summary(), d)
	}
	// Another client asks for A's address: NAK.
	r, _, _ = run(t, s, msg(t, dhcpv4.MessageTypeRequest, macB, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip))))
	if r.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("stolen address: %v", r.Summary())
	}
	// A REQUEST naming another server is ignored.
	if _, _, err := run(t, s, msg(t, dhcpv4.MessageTypeRequest, macB, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 9, 0, 2))),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 9, 0, 150))))); !errors.Is(err, errForeignServer) {
		t.Fatalf("foreign server id: %v", err)
	}
	// DECLINE: set aside; the next offer is another address.
	if r, _, err := run(t, s, msg(t, dhcpv4.MessageTypeDecline, macA, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 9, 0, 1))))); r != nil || err != nil {
		t.Fatalf("decline answered: %v %v", r, err)
	}
	ack2 := dora(t, s, macA)
	if ack2.YourIPAddr.Equal(ip) {
		t.Fatal("declined address given again")
	}
	// RELEASE frees: B may now have A's address.
	run(t, s, msg(t, dhcpv4.MessageTypeRelease, macA, dhcpv4.WithClientIP(ack2.YourIPAddr)))
	r, _, _ = run(t, s, msg(t, dhcpv4.MessageTypeRequest, macB, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ack2.YourIPAddr))))
	if r.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("released address refused: %v", r.Summary())
	}
	// INFORM: ACK without address or lease time, unicast to ciaddr.
	r, d, _ = run(t, s, msg(t, dhcpv4.MessageTypeInform, macA, dhcpv4.WithClientIP(net.IPv4(10, 9, 0, 50))))
	if r.MessageType() != dhcpv4.MessageTypeAck || !ip4(r.YourIPAddr).IsUnspecified() || r.GetOneOption(dhcpv4.OptionIPAddressLeaseTime) != nil ||
		d.kind != destUnicast || d.ip.String() != "10.9.0.50" || r.DNS() == nil {
		t.Fatalf("inform: %v %+v", r.Summary(), d)
	}
}

func TestHostilePacketsDropped(t *testing.T) {
	s, _ := newTestServer(t, t.TempDir())
	good := msg(t, dhcpv4.MessageTypeDiscover, macA).ToBytes()
	reply := msg(t, dhcpv4.MessageTypeOffer, macA)
	reply.OpCode = dhcpv4.OpcodeBootReply
	bootp := msg(t, dhcpv4.MessageTypeDiscover, macA)
	bootp.Options.Del(dhcpv4.OptionDHCPMessageType)
	huge := msg(t, dhcpv4.MessageTypeDiscover, macA, dhcpv4.WithGeneric(dhcpv4.OptionHostName, make([]byte, 5000)))
	for name, pkt := range map[string][]byte{
		"empty":                nil,
		"truncated":            good[:100],
		"no cookie":            append(append([]byte{}, good[:236]...), 1, 2, 3, 4),
		"reply op":             reply.ToBytes(),
		"bootp":                bootp.ToBytes(),
		"offer sent to server": msg(t, dhcpv4.MessageTypeOffer, macA).ToBytes(),
	} {
		if out, _, _, err := s.process(s.links[testCfg.Name], pkt); err == nil || out != nil {
			t.Errorf("%s: not dropped (err %v)", name, err)
		}
	}
	// A giant option is parsed but not echoed; the reply still fits.
	out, _, _, err := s.process(s.links[testCfg.Name], huge.ToBytes())
	if err != nil || len(out) > 576 {
		t.Fatalf("giant option: %d bytes, %v", len(out), err)
	}
}

func TestLeasesSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	s, _ := newTestServer(t, dir)
	ack := dora(t, s, macA)
	// Simulate kill -9: do not Close, open a second server on the same dir.
	s2, _ := newTestServer(t, dir)
	r, _, _ := run(t, s2, msg(t, dhcpv4.MessageTypeRequest, macA, dhcpv4.WithClientIP(ack.YourIPAddr)))
	if r == nil || r.MessageType() != dhcpv4.MessageTypeAck || !r.YourIPAddr.Equal(ack.YourIPAddr) {
		t.Fatalf("renew after restart: %v", r)
	}
	o, _, _ := run(t, s2, msg(t, dhcpv4.MessageTypeDiscover, macB))
	if o.YourIPAddr.Equal(ack.YourIPAddr) {
		t.Fatal("address given twice after restart")
	}
}

func TestOptionHandlersPure(t *testing.T) {
	req := msg(t, dhcpv4.MessageTypeRequest, macA, dhcpv4.WithRequestedOptions(dhcpv4.OptionInterfaceMTU))
	resp := newReply(req, dhcpv4.MessageTypeNak, testCfg.ServerIP)
	for _, h := range buildChain(testCfg) {
		h(req, resp)
	}
	if len(resp.Options) != 2 { // message type + server id only
		t.Fatalf("NAK got options: %v", resp.Summary())
	}
	resp = newReply(req, dhcpv4.MessageTypeAck, testCfg.ServerIP)
	resp.YourIPAddr = net.IPv4(10, 9, 0, 100)
	for _, h := range buildChain(testCfg) {
		h(req, resp)
	}
	if v := resp.GetOneOption(dhcpv4.OptionInterfaceMTU); len(v) != 2 || int(v[0])<<8|int(v[1]) != 1400 {
		t.Fatalf("MTU %v", v)
	}
}

func TestUDPPacketChecksums(t *testing.T) {
	p := udpPacket(netip.MustParseAddr("10.9.0.1"), netip.MustParseAddr("10.9.0.100"), 67, 68, []byte("hello"))
	if fold(sum(p[:20], 0)) != 0xffff {
		t.Fatal("bad IP header checksum")
	}
	acc := sum(p[12:20], uint32(17)+uint32(len(p)-20))
	if fold(sum(p[20:], acc)) != 0xffff {
		t.Fatal("bad UDP checksum")
	}
}

func TestRelayedRequestAnsweredToRelay(t *testing.T) {
	s, _ := newTestServer(t, t.TempDir())
	r, d, err := run(t, s, msg(t, dhcpv4.MessageTypeDiscover, macA, dhcpv4.WithGatewayIP(net.IPv4(10, 9, 0, 2))))
	if err != nil || !r.GatewayIPAddr.Equal(net.IPv4(10, 9, 0, 2)) || d.kind != destRelay || d.ip.String() != "10.9.0.2" {
		t.Fatalf("relayed: %v %+v %v", r, d, err)
	}
	if _, _, err := run(t, s, msg(t, dhcpv4.MessageTypeDiscover, macA, dhcpv4.WithGatewayIP(net.IPv4(192, 0, 2, 1)))); !errors.Is(err, errRelayed) {
		t.Fatalf("relay outside the subnet: %v", err)
	}
}

func TestUpdateAndRemoveLinkKeepLeases(t *testing.T) {
	dir := t.TempDir()
	s, _ := newTestServer(t, dir)
	if err := s.Reserve(testCfg.Name, macA, netip.MustParseAddr("10.9.0.5"), "web"); err != nil {
		t.Fatal(err)
	}
	dora(t, s, macA)
	dyn := dora(t, s, macB)
	cfg := testCfg
	cfg.DNS = []netip.Addr{netip.MustParseAddr("10.9.0.53")}
	if err := s.UpdateLink(cfg); err != nil {
		t.Fatal(err)
	}
	r, _, _ := run(t, s, msg(t, dhcpv4.MessageTypeRequest, macB, dhcpv4.WithClientIP(dyn.YourIPAddr)))
	if r.MessageType() != dhcpv4.MessageTypeAck || r.DNS()[0].String() != "10.9.0.53" {
		t.Fatalf("after update: %v", r.Summary())
	}
	if a := dora(t, s, macA); a.YourIPAddr.String() != "10.9.0.5" {
		t.Fatalf("reservation lost by update: %v", a.YourIPAddr)
	}
	if err := s.RemoveLink(testCfg.Name); err != nil {
		t.Fatal(err)
	}
	if ls := s.Leases(testCfg.Name); len(ls) != 2 {
		t.Fatalf("stored leases after removal: %+v", ls)
	}
	if err := s.addLink(testCfg, false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, s, msg(t, dhcpv4.MessageTypeRequest, macA, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(dyn.YourIPAddr)))); err != nil {
		t.Fatal(err)
	}
	if r, _, _ := run(t, s, msg(t, dhcpv4.MessageTypeRequest, macA, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(dyn.YourIPAddr)))); r.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("re-added link forgot B's lease: %v", r.Summary())
	}
}

func TestOnLeaseAndExpiry(t *testing.T) {
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	var got []Lease
	s, err := New(Options{StateDir: t.TempDir(), Now: clk.now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnLease: func(l Lease) { got = append(got, l) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.addLink(testCfg, false); err != nil {
		t.Fatal(err)
	}
	ack := dora(t, s, macA)
	_, _, ch, _ := s.process(s.links[testCfg.Name], msg(t, dhcpv4.MessageTypeRequest, macA, dhcpv4.WithClientIP(ack.YourIPAddr)).ToBytes())
	s.notify(ch)
	clk.t = clk.t.Add(2 * time.Hour)
	s.reclaim()
	if len(got) != 2 || got[0].State != lease.Bound || got[1].State != lease.Expired || got[1].IP.String() != ack.YourIPAddr.String() {
		t.Fatalf("OnLease saw %+v", got)
	}
}

// BenchmarkDORA measures one new lease (DISCOVER->OFFER, REQUEST->ACK)
// through the packet handler with the real lease log (write before reply,
// group-commit fsync), without sockets. Run with -benchtime=60000x.
// A batch is decided together and logged with one write: distinct clients
// get distinct addresses, a bad packet drops alone, and every ACK's lease is
// in the log (and comes back after a restart) by the time the batch's
// replies exist.
func TestProcessBatch(t *testing.T) {
	dir := t.TempDir()
	s, _ := newTestServer(t, dir)
	l := s.links[testCfg.Name]
	var r batchResult
	macs := []net.HardwareAddr{{2, 0, 0, 0, 1, 1}, {2, 0, 0, 0, 1, 2}, {2, 0, 0, 0, 1, 3}}
	var pkts [][]byte
	for _, mac := range macs {
		pkts = append(pkts, msg(t, dhcpv4.MessageTypeDiscover, mac).ToBytes())
	}
	pkts = append(pkts, []byte("not a DHCP packet"))
	s.processBatch(l, pkts, &r)
	if len(r.replies) != 3 || len(r.drops) != 1 || r.lost != nil {
		t.Fatalf("replies %d drops %d lost %v, want 3, 1, nil", len(r.replies), len(r.drops), r.lost)
	}
	var reqs [][]byte
	seen := map[string]bool{}
	for i, p := range r.replies {
		offer, err := dhcpv4.FromBytes(p.out)
		if err != nil || offer.MessageType() != dhcpv4.MessageTypeOffer {
			t.Fatalf("reply %d: %v %v", i, err, offer)
		}
		if seen[offer.YourIPAddr.String()] {
			t.Fatalf("address %v offered twice in one batch", offer.YourIPAddr)
		}
		seen[offer.YourIPAddr.String()] = true
		reqs = append(reqs, msg(t, dhcpv4.MessageTypeRequest, offer.ClientHWAddr,
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 9, 0, 1))),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr))).ToBytes())
	}
	s.processBatch(l, reqs, &r)
	if len(r.replies) != 3 || len(r.drops) != 0 {
		t.Fatalf("replies %d drops %v", len(r.replies), r.drops)
	}
	for _, p := range r.replies {
		ack, err := dhcpv4.FromBytes(p.out)
		if err != nil || ack.MessageType() != dhcpv4.MessageTypeAck || !seen[ack.YourIPAddr.String()] {
			t.Fatalf("bad ACK %v: %v", ack, err)
		}
		if p.dest.kind != destL2 {
			t.Fatalf("destination %v, want link layer", p.dest.kind)
		}
	}
	if n := len(s.Leases(testCfg.Name)); n != 3 {
		t.Fatalf("%d leases stored, want 3", n)
	}
	s.Close()
	s2, _ := newTestServer(t, dir)
	if n := len(s2.Leases(testCfg.Name)); n != 3 {
		t.Fatalf("%d leases after restart, want 3", n)
	}
}

func BenchmarkDORA(b *testing.B) { benchDORA(b, nil) }

// benchDORA measures DISCOVER-OFFER-REQUEST-ACK through process, the
// lease log included; obs, when set, counts the packets.
func benchDORA(b *testing.B, obs Observer) {
	s, _ := newTestServer(b, b.TempDir())
	s.opts.Observer = obs
	cfg := testCfg
	cfg.Name = "ve-bench"
	cfg.Subnet = netip.MustParsePrefix("10.64.0.0/14")
	cfg.ServerIP = netip.MustParseAddr("10.64.0.1")
	cfg.PoolStart, cfg.PoolEnd = netip.MustParseAddr("10.64.0.10"), netip.MustParseAddr("10.67.255.250")
	if err := s.addLink(cfg, false); err != nil {
		b.Fatal(err)
	}
	l := s.links[cfg.Name]
	sid := dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 64, 0, 1)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		mac := net.HardwareAddr{2, 1, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
		d, _ := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover), dhcpv4.WithHwAddr(mac))
		out, _, _, err := s.process(l, d.ToBytes())
		if err != nil {
			b.Fatal(err)
		}
		offer, _ := dhcpv4.FromBytes(out)
		r, _ := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithHwAddr(mac), sid,
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr)))
		if out, _, _, err = s.process(l, r.ToBytes()); err != nil || out == nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "leases/s")
}

func TestAddLinkTwice(t *testing.T) {
	s, _ := newTestServer(t, t.TempDir())
	if err := s.addLink(testCfg, false); !errors.Is(err, ErrLinkServed) {
		t.Fatalf("second AddLink: %v, want ErrLinkServed", err)
	}
}

func TestServerStatsCount(t *testing.T) {
	s, err := New(Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.count(3, 2, 5*time.Millisecond)
	s.count(16, 16, time.Millisecond)
	st := s.Stats()
	if st.Batches != 2 || st.Packets != 19 || st.Replies != 18 || st.BatchMax != 5*time.Millisecond {
		t.Fatalf("stats: %+v", st)
	}
}

// The lease store indexes a link's records by the table's entry numbers,
// which a new table (restart, UpdateLink, a link removed and added again)
// gives out anew. Through all of these the store must hold exactly the
// table's persisted leases, each key once.
func TestStoreFollowsTableThroughRenumbering(t *testing.T) {
	dir := t.TempDir()
	s, _ := newTestServer(t, dir)
	macs := make([]net.HardwareAddr, 40)
	for i := range macs {
		macs[i] = net.HardwareAddr{2, 0, 0, 1, 0, byte(i)}
	}
	acks := map[string]*dhcpv4.DHCPv4{}
	check := func(s *Server, phase string) {
		t.Helper()
		stored := map[string]lease.Lease{}
		for _, l := range s.store.Leases(testCfg.Name) {
			if _, dup := stored[l.Key()]; dup {
				t.Fatalf("%s: %s stored twice", phase, l.Key())
			}
			stored[l.Key()] = l
		}
		held := 0
		for _, l := range s.Leases(testCfg.Name) {
			held++
			if st, ok := stored[l.Key()]; !ok || st.IP != l.IP || st.State != l.State || !st.Expiry.Equal(l.Expiry) {
				t.Fatalf("%s: table has %+v, store %+v", phase, l, st)
			}
		}
		if held != len(stored) {
			t.Fatalf("%s: table holds %d leases, store %d", phase, held, len(stored))
		}
	}
	renewSome := func(s *Server, from int) {
		t.Helper()
		for i := from; i < len(macs); i += 3 {
			a := acks[macs[i].String()]
			if a == nil || i == 4 || i == 7 || i == 8 { // not leased yet; released; reserved elsewhere; lost to a reservation
				continue
			}
			r, _, _ := run(t, s, msg(t, dhcpv4.MessageTypeRequest, macs[i], dhcpv4.WithClientIP(a.YourIPAddr)))
			if r == nil || r.MessageType() != dhcpv4.MessageTypeAck {
				t.Fatalf("renew of %v: %v", macs[i], r)
			}
		}
	}
	for _, m := range macs[:30] {
		acks[m.String()] = dora(t, s, m)
	}
	check(s, "first leases")
	s2, _ := newTestServer(t, dir) // a restart (kill -9: s is not closed)
	check(s2, "restarted")
	renewSome(s2, 0)
	for _, m := range macs[30:] {
		acks[m.String()] = dora(t, s2, m)
	}
	run(t, s2, msg(t, dhcpv4.MessageTypeRelease, macs[4], dhcpv4.WithClientIP(acks[macs[4].String()].YourIPAddr)))
	check(s2, "renewed and added after the restart")
	cfg := testCfg
	cfg.DNS = []netip.Addr{netip.MustParseAddr("10.9.0.53")}
	if err := s2.UpdateLink(cfg); err != nil {
		t.Fatal(err)
	}
	if err := s2.Reserve(testCfg.Name, macs[7], ip4(acks[macs[8].String()].YourIPAddr), "r"); err != nil {
		t.Fatal(err) // takes client 8's address: its lease is dropped
	}
	renewSome(s2, 1)
	check(s2, "after UpdateLink")
	if err := s2.RemoveLink(testCfg.Name); err != nil {
		t.Fatal(err)
	}
	if err := s2.addLink(testCfg, false); err != nil {
		t.Fatal(err)
	}
	renewSome(s2, 2)
	check(s2, "link removed and added")
	s3, _ := newTestServer(t, dir)
	check(s3, "restarted again")
}
