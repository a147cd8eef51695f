package dhcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// conn is the pair of sockets serving one link: a UDP socket on port 67
// bound to the interface (SO_BINDTODEVICE) that reports the arrival
// interface of each packet, and a packet socket to send replies straight to
// a client's MAC before it has an address (as dnsmasq and CoreDHCP do),
// shared by the links of a network namespace (see sender).
type conn struct {
	udp     *net.UDPConn
	pc      *ipv4.PacketConn
	raw     *sender
	ifindex int
	closed  atomic.Bool
}

// sender is a send-only packet socket (protocol 0: it receives nothing)
// that the links of one network namespace share: replies name their link
// in the address. The kernel walks every packet socket of a namespace on
// each event of any of its links (packet_notifier), so a socket per link
// made each link created or deleted cost O(links served).
type sender struct {
	fd   int
	refs int
	key  [2]uint64 // the namespace's device and inode
}

var senders = struct {
	sync.Mutex
	m map[[2]uint64]*sender
}{m: map[[2]uint64]*sender{}}

// acquireSender returns the packet socket of the calling thread's network
// namespace, opening it for the first link there.
func acquireSender() (*sender, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return nil, fmt.Errorf("network namespace of the thread: %w", err)
	}
	key := [2]uint64{st.Dev, st.Ino}
	senders.Lock()
	defer senders.Unlock()
	if s := senders.m[key]; s != nil {
		s.refs++
		return s, nil
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening packet socket: %w", err)
	}
	// The socket keeps its namespace alive, so the key is not reused
	// while it is in the map.
	s := &sender{fd: fd, refs: 1, key: key}
	senders.m[key] = s
	return s, nil
}

// release closes the socket with its last link.
func (s *sender) release() {
	senders.Lock()
	defer senders.Unlock()
	if s.refs--; s.refs == 0 {
		delete(senders.m, s.key)
		unix.Close(s.fd)
	}
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
	raw, err := acquireSender()
	if err != nil {
		udp.Close()
		return nil, err
	}
	return &conn{udp: udp, pc: pc, raw: raw, ifindex: index}, nil
}

func (c *conn) isClosed() bool { return c.closed.Load() }

// Close closes both sockets; blocked reads return.
func (c *conn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.raw.release()
	return c.udp.Close()
}

// batch is one reader's reusable buffers: datagrams in, replies out.
type batch struct {
	in    []ipv4.Message
	pkts  [][]byte
	out   []ipv4.Message
	addrs []net.UDPAddr
	res   batchResult
}

// Sizes of a reader's batch: up to 16 datagrams per recvmmsg(2), each up to
// 4 KiB (a DHCP message fits a 1,500-byte frame; larger ones are dropped as
// truncated and logged).
const (
	batchSize  = 16
	maxPktSize = 4096
)

func newBatch() *batch {
	b := &batch{in: make([]ipv4.Message, batchSize), out: make([]ipv4.Message, 0, batchSize),
		addrs: make([]net.UDPAddr, batchSize)}
	oob := ipv4.NewControlMessage(ipv4.FlagInterface)
	for i := range b.in {
		b.in[i].Buffers = [][]byte{make([]byte, maxPktSize)}
		b.in[i].OOB = make([]byte, len(oob))
	}
	return b
}

// errTruncated: a datagram larger than the reader's buffer.
var errTruncated = fmt.Errorf("datagram larger than %d bytes", maxPktSize)

// ReadBatch reads at least one datagram (as many as are queued, up to the
// batch size) and returns the packets that arrived on the link's interface;
// the others are reported to drop.
func (c *conn) ReadBatch(b *batch, want int, drop func(what string, err error)) ([][]byte, error) {
	n, err := c.pc.ReadBatch(b.in, 0)
	if err != nil {
		return nil, err
	}
	b.pkts = b.pkts[:0]
	for i := 0; i < n; i++ {
		m := &b.in[i]
		if m.Flags&unix.MSG_TRUNC != 0 {
			drop("packet dropped", errTruncated)
			continue
		}
		var cm ipv4.ControlMessage
		ifindex := 0
		if m.NN > 0 && cm.Parse(m.OOB[:m.NN]) == nil {
			ifindex = cm.IfIndex
		}
		if ifindex != want {
			drop("arrived on another interface", fmt.Errorf("ifindex %d, want %d", ifindex, want))
			continue
		}
		b.pkts = append(b.pkts, m.Buffers[0][:m.N])
	}
	return b.pkts, nil
}

// SendBatch delivers the replies of a batch: those sent by UDP with one
// sendmmsg(2), link-layer frames one by one. It returns how many failed and
// the last error.
func (c *conn) SendBatch(b *batch, replies []pending, src netip.Addr) (failed int, last error) {
	b.out = b.out[:0]
	for i := range replies {
		p := &replies[i]
		if p.out == nil {
			continue
		}
		var ip net.IP
		port := 68
		switch p.dest.kind {
		case destRelay:
			ip, port = netIP(p.dest.ip), 67
		case destBroadcast:
			ip = net.IPv4bcast
		case destUnicast:
			ip = netIP(p.dest.ip)
		default:
			if err := c.Send(p.out, p.dest, src); err != nil {
				failed, last = failed+1, err
			}
			continue
		}
		a := &b.addrs[len(b.out)]
		a.IP, a.Port = ip, port
		b.out = append(b.out, ipv4.Message{Buffers: [][]byte{p.out}, Addr: a})
	}
	for sent := 0; sent < len(b.out); {
		w, err := c.pc.WriteBatch(b.out[sent:], 0)
		if err != nil {
			// Skip the datagram that failed and go on with the rest.
			failed, last = failed+1, err
			w++
		}
		sent += w
	}
	return failed, last
}

// Send delivers one reply as d says.
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
		return unix.Sendto(c.raw.fd, frame, 0, sa)
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
