package dhcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"

	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// conn is the pair of sockets serving one link: a UDP socket on port 67
// bound to the interface (SO_BINDTODEVICE) that reports the arrival
// interface of each packet, and a packet socket to send replies straight to
// a client's MAC before it has an address (as dnsmasq and CoreDHCP do).
type conn struct {
	udp     *net.UDPConn
	pc      *ipv4.PacketConn
	raw     int
	ifindex int
	closed  atomic.Bool
}

func openConn(name string, index int) (*conn, error) {
	udp, err := server4.NewIPv4UDPConn(name, &net.UDPAddr{Port: 67})
	if err != nil {
		return nil, fmt.Errorf("opening UDP socket: %w", err)
	}
	// A deep receive queue rides out scheduling hiccups under bursts (the
	// default ~200 KiB holds ~500 requests); FORCE works as root, the plain
	// option up to net.core.rmem_max otherwise.
	if rc, err := udp.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20) != nil {
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
			}
		})
	}
	pc := ipv4.NewPacketConn(udp)
	if err := pc.SetControlMessage(ipv4.FlagInterface, true); err != nil {
		udp.Close()
		return nil, fmt.Errorf("IP_PKTINFO: %w", err)
	}
	// Protocol 0: this socket receives nothing, it only sends.
	raw, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		udp.Close()
		return nil, fmt.Errorf("opening packet socket: %w", err)
	}
	return &conn{udp: udp, pc: pc, raw: raw, ifindex: index}, nil
}

func (c *conn) isClosed() bool { return c.closed.Load() }

// Close closes both sockets; blocked reads return.
func (c *conn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	unix.Close(c.raw)
	return c.udp.Close()
}

// Read reads one datagram and the index of the interface it arrived on.
func (c *conn) Read(b []byte) (int, int, error) {
	n, cm, _, err := c.pc.ReadFrom(b)
	if err != nil {
		return 0, 0, err
	}
	if cm == nil {
		return n, 0, nil
	}
	return n, cm.IfIndex, nil
}

// Send delivers a reply as d says.
func (c *conn) Send(b []byte, d dest, src netip.Addr) error {
	switch d.kind {
	case destRelay:
		_, err := c.udp.WriteTo(b, &net.UDPAddr{IP: netIP(d.ip), Port: 67})
		return err
	case destBroadcast:
		_, err := c.udp.WriteTo(b, &net.UDPAddr{IP: net.IPv4bcast, Port: 68})
		return err
	case destUnicast:
		_, err := c.udp.WriteTo(b, &net.UDPAddr{IP: netIP(d.ip), Port: 68})
		return err
	case destL2:
		if len(d.mac) != 6 {
			return errors.New("no client hardware address for a link-layer reply")
		}
		frame := udpPacket(src, d.ip, 67, 68, b)
		sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: c.ifindex, Halen: 6}
		copy(sa.Addr[:], d.mac)
		return unix.Sendto(c.raw, frame, 0, sa)
	}
	return fmt.Errorf("unknown destination kind %d", d.kind)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// udpPacket builds an IPv4 + UDP packet around payload (the link-layer
// header is added by the packet socket).
func udpPacket(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	const ihl, udph = 20, 8
	total := ihl + udph + len(payload)
	p := make([]byte, total)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(total))
	p[8] = 64 // TTL
	p[9] = unix.IPPROTO_UDP
	s4, d4 := src.As4(), dst.As4()
	copy(p[12:16], s4[:])
	copy(p[16:20], d4[:])
	binary.BigEndian.PutUint16(p[10:], ^fold(sum(p[:ihl], 0)))
	u := p[ihl:]
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(udph+len(payload)))
	copy(u[udph:], payload)
	// Pseudo header: src, dst, zero, protocol, UDP length.
	acc := sum(p[12:20], uint32(unix.IPPROTO_UDP)+uint32(udph+len(payload)))
	cs := ^fold(sum(u, acc))
	if cs == 0 {
		cs = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], cs)
	return p
}

func sum(b []byte, acc uint32) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		acc += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		acc += uint32(b[len(b)-1]) << 8
	}
	return acc
}

func fold(acc uint32) uint16 {
	for acc > 0xffff {
		acc = acc&0xffff + acc>>16
	}
	return uint16(acc)
}
