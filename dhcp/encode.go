package dhcp

import (
	"net"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// The fixed part of a BOOTP message and the smallest message some relays
// and clients accept (RFC 951's 300 bytes).
const (
	bootpFixedLen = 236
	bootpMinLen   = 300
)

var magicCookie = [4]byte{99, 130, 83, 99}

// appendPacket appends the wire form of d to dst: byte for byte what
// d.ToBytes() makes (options in ascending code order, relay agent
// information last, long options split per RFC 3396, padded to 300 bytes),
// without its temporary buffers, so that a reply costs one reused buffer.
func appendPacket(dst []byte, d *dhcpv4.DHCPv4) []byte {
	start := len(dst)
	dst = append(dst, byte(d.OpCode), byte(d.HWType), byte(len(d.ClientHWAddr)), d.HopCount)
	dst = append(dst, d.TransactionID[:]...)
	dst = append(dst, byte(d.NumSeconds>>8), byte(d.NumSeconds), byte(d.Flags>>8), byte(d.Flags))
	for _, ip := range []net.IP{d.ClientIPAddr, d.YourIPAddr, d.ServerIPAddr, d.GatewayIPAddr} {
		dst = appendIP4(dst, ip)
	}
	var chaddr [16]byte
	copy(chaddr[:], d.ClientHWAddr)
	dst = append(dst, chaddr[:]...)
	var sname [64]byte
	copy(sname[:63], d.ServerHostName)
	dst = append(dst, sname[:]...)
	var file [128]byte
	copy(file[:127], d.BootFileName)
	dst = append(dst, file[:]...)
	dst = append(dst, magicCookie[:]...)

	// Option codes in ascending order, 82 (relay agent information) last
	// (RFC 3046 2.1); pad and end are not written from the map.
	var buf [32]uint8
	codes := buf[:0]
	agent := false
	for k := range d.Options {
		switch k {
		case dhcpv4.OptionPad.Code(), dhcpv4.OptionEnd.Code():
		case dhcpv4.OptionRelayAgentInformation.Code():
			agent = true
		default:
			codes = append(codes, k)
		}
	}
	for i := 1; i < len(codes); i++ {
		for j := i; j > 0 && codes[j] < codes[j-1]; j-- {
			codes[j], codes[j-1] = codes[j-1], codes[j]
		}
	}
	if agent {
		codes = append(codes, dhcpv4.OptionRelayAgentInformation.Code())
	}
	for _, c := range codes {
		data := d.Options[c]
		if len(data) == 0 {
			dst = append(dst, c, 0)
			continue
		}
		for len(data) > 0 {
			n := min(len(data), 255)
			dst = append(dst, c, byte(n))
			dst = append(dst, data[:n]...)
			data = data[n:]
		}
	}
	dst = append(dst, dhcpv4.OptionEnd.Code())
	for len(dst)-start < bootpMinLen {
		dst = append(dst, dhcpv4.OptionPad.Code())
	}
	return dst
}

func appendIP4(dst []byte, ip net.IP) []byte {
	if v := ip.To4(); v != nil {
		return append(dst, v...)
	}
	if ip == nil {
		return append(dst, 0, 0, 0, 0)
	}
	// What ToBytes does with an address that is not IPv4: its first
	// four bytes (a 16-byte IPv6 address) or whatever there is.
	var b [4]byte
	copy(b[:], ip)
	return append(dst, b[:]...)
}
