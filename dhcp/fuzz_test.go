package dhcp

import (
	"bytes"
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// FuzzHandle feeds arbitrary bytes to the packet handler: it must never
// panic, and any reply it makes must parse back, be a BOOTREPLY, and carry
// our server identifier.
func FuzzHandle(f *testing.F) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	for _, mt := range []dhcpv4.MessageType{dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest, dhcpv4.MessageTypeRelease,
		dhcpv4.MessageTypeDecline, dhcpv4.MessageTypeInform} {
		m, _ := dhcpv4.New(dhcpv4.WithMessageType(mt), dhcpv4.WithHwAddr(mac),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 9, 0, 120))),
			dhcpv4.WithOption(dhcpv4.OptClientIdentifier([]byte{1, 2, 3})),
			dhcpv4.WithRequestedOptions(dhcpv4.OptionHostName, dhcpv4.OptionInterfaceMTU))
		f.Add(m.ToBytes())
	}
	s, _ := newTestServer(f, f.TempDir())
	l := s.links[testCfg.Name]
	f.Fuzz(func(t *testing.T, pkt []byte) {
		out, d, _, err := s.process(l, pkt)
		if err != nil {
			if out != nil {
				t.Fatal("reply with an error")
			}
			return
		}
		if out == nil {
			return
		}
		r, err := dhcpv4.FromBytes(out)
		if err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
		if r.OpCode != dhcpv4.OpcodeBootReply || !r.ServerIdentifier().Equal(net.IPv4(10, 9, 0, 1)) {
			t.Fatalf("bad reply %v", r.Summary())
		}
		if d.kind == 0 {
			t.Fatal("reply without destination")
		}
		if yi := ip4(r.YourIPAddr); !yi.IsUnspecified() && !testCfg.Subnet.Contains(yi) {
			t.Fatalf("address %v outside the subnet", yi)
		}
	})
}

// FuzzAppendPacket: for every packet the library parses, appendPacket
// writes exactly what the library's own encoder writes.
func FuzzAppendPacket(f *testing.F) {
	m, _ := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover), dhcpv4.WithHwAddr(net.HardwareAddr{2, 0, 0, 0, 0, 1}),
		dhcpv4.WithOption(dhcpv4.OptClientIdentifier([]byte{1, 2, 3})),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionRelayAgentInformation, []byte{1, 2, 3, 4})),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, make([]byte, 600))),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionUserClassInformation, nil)),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionHostName, dhcpv4.OptionInterfaceMTU))
	f.Add(m.ToBytes())
	f.Fuzz(func(t *testing.T, pkt []byte) {
		d, err := dhcpv4.FromBytes(pkt)
		if err != nil {
			return
		}
		for _, ip := range []net.IP{d.ClientIPAddr, d.YourIPAddr, d.ServerIPAddr, d.GatewayIPAddr} {
			if ip != nil && ip.To4() == nil {
				return // the library's encoder panics on these; the parser never makes them
			}
		}
		want := d.ToBytes()
		if got := appendPacket([]byte{0xff}, d)[1:]; !bytes.Equal(got, want) {
			t.Fatalf("appendPacket differs from ToBytes:\n got %x\nwant %x", got, want)
		}
	})
}
