package ra

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// conn is a raw ICMPv6 socket bound to one link's link-local address,
// addressed by the link's index only.
//
// ndp.Conn (and the Go runtime and golang.org/x/net under it) turn a link
// name into an index through a zone cache that reloads every link of the
// host when it meets a name or index it does not know: each new link cost
// netspawnd two dumps of all links (opening the socket and the first
// send), and one more on the first solicitation read. With a veth per
// container, each link in such a dump costs the kernel a walk of the
// namespace ids, so a new container's advertiser cost O(containers²).
type conn struct {
	f     *os.File
	rc    syscall.RawConn
	index int
	src   netip.Addr
}

// listenICMPv6 opens the socket on link index, bound to its link-local
// address src, accepting only router solicitations (ICMPv6 type 133),
// with hop limit 255 on what it sends (RFC 4861), no multicast loopback,
// and member of ff02::2.
// Binding fails while src is still tentative; the caller retries.
func listenICMPv6(index int, src netip.Addr) (*conn, error) {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
	if err != nil {
		return nil, fmt.Errorf("ICMPv6 socket: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	// The kernel fills in the ICMPv6 checksum of a raw ICMPv6 socket.
	var f unix.ICMPv6Filter
	for i := range f.Data {
		f.Data[i] = ^uint32(0) // block all...
	}
	const rs = 133 // ...but router solicitations
	f.Data[rs>>5] &^= 1 << (rs & 31)
	if err := unix.SetsockoptICMPv6Filter(fd, unix.IPPROTO_ICMPV6, unix.ICMPV6_FILTER, &f); err != nil {
		return nil, fmt.Errorf("ICMPv6 filter: %w", err)
	}
	for _, o := range []int{unix.IPV6_UNICAST_HOPS, unix.IPV6_MULTICAST_HOPS} {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, o, 255); err != nil {
			return nil, fmt.Errorf("ICMPv6 hop limit: %w", err)
		}
	}
	// Our own advertisements looped back to the host would each be
	// matched against every raw ICMPv6 socket of the host (one per link)
	// and taken through the host's router discovery, which makes a
	// neighbour entry for the sender: work per advertisement that grows
	// with the number of links, for nothing.
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_LOOP, 0); err != nil {
		return nil, fmt.Errorf("ICMPv6 multicast loop: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet6{Addr: src.As16(), ZoneId: uint32(index)}); err != nil {
		return nil, fmt.Errorf("bind %s on link %d: %w", src, index, err)
	}
	mreq := unix.IPv6Mreq{Multiaddr: allRouters.As16(), Interface: uint32(index)}
	if err := unix.SetsockoptIPv6Mreq(fd, unix.IPPROTO_IPV6, unix.IPV6_JOIN_GROUP, &mreq); err != nil {
		return nil, fmt.Errorf("join ff02::2 on link %d: %w", index, err)
	}
	// A non-blocking descriptor goes to the runtime's poller: reads wait
	// there and Close ends them.
	file := os.NewFile(uintptr(fd), "icmpv6")
	rc, err := file.SyscallConn()
	if err != nil {
		file.Close()
		ok = true // file owns fd now
		return nil, err
	}
	ok = true
	return &conn{f: file, rc: rc, index: index, src: src}, nil
}

func (c *conn) Close() error { return c.f.Close() }

// writeTo sends an ICMPv6 message (checksum left to the kernel) to dst on
// the link, from the link-local address.
func (c *conn) writeTo(b []byte, dst netip.Addr) error {
	oob := pktinfo(c.src, c.index)
	sa := &unix.SockaddrInet6{Addr: dst.As16(), ZoneId: uint32(c.index)}
	var serr error
	err := c.rc.Write(func(fd uintptr) bool {
		serr = unix.Sendmsg(int(fd), b, oob, sa, 0)
		return !errors.Is(serr, unix.EAGAIN)
	})
	if err != nil {
		return err
	}
	return serr
}

// readFrom reads one ICMPv6 message into b and returns its length and
// source.
func (c *conn) readFrom(b []byte) (int, netip.Addr, error) {
	var (
		n    int
		from unix.Sockaddr
		rerr error
	)
	err := c.rc.Read(func(fd uintptr) bool {
		n, from, rerr = unix.Recvfrom(int(fd), b, 0)
		return !errors.Is(rerr, unix.EAGAIN)
	})
	if err != nil {
		return 0, netip.Addr{}, err
	}
	if rerr != nil {
		return 0, netip.Addr{}, rerr
	}
	var src netip.Addr
	if sa, ok := from.(*unix.SockaddrInet6); ok {
		src = netip.AddrFrom16(sa.Addr)
	}
	return n, src, nil
}

// pktinfo is the IPV6_PKTINFO control message choosing the source address
// and the link of a datagram (pure).
func pktinfo(src netip.Addr, index int) []byte {
	b := make([]byte, unix.CmsgSpace(unix.SizeofInet6Pktinfo))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
	pi := (*unix.Inet6Pktinfo)(unsafe.Pointer(&b[unix.CmsgLen(0)]))
	pi.Addr = src.As16()
	pi.Ifindex = uint32(index)
	return b
}

// linkLocal returns link index's IPv6 link-local address (perhaps still
// tentative; not one that failed duplicate address detection), or
// ok=false. It asks the kernel for that link's
// addresses only (a strictly checked dump filtered by index), where
// netlink.AddrList and net.Interface.Addrs dump every address of the host.
func linkLocal(index int) (addr netip.Addr, ok bool, err error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return netip.Addr{}, false, fmt.Errorf("rtnetlink socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_GET_STRICT_CHK, 1); err != nil {
		return netip.Addr{}, false, fmt.Errorf("rtnetlink strict checking: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return netip.Addr{}, false, fmt.Errorf("bind rtnetlink: %w", err)
	}
	if err := unix.Sendto(fd, addrDumpRequest(index, 1), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return netip.Addr{}, false, fmt.Errorf("ask addresses of link %d: %w", index, err)
	}
	buf := make([]byte, 1<<15)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return netip.Addr{}, false, fmt.Errorf("addresses of link %d: %w", index, err)
		}
		a, found, done, err := parseAddrDump(buf[:n], index)
		if err != nil {
			return netip.Addr{}, false, fmt.Errorf("addresses of link %d: %w", index, err)
		}
		if found && !ok {
			addr, ok = a, true
		}
		if done {
			return addr, ok, nil
		}
	}
}

// addrDumpRequest is an RTM_GETADDR dump request for the IPv6 addresses of
// link index (pure).
func addrDumpRequest(index int, seq uint32) []byte {
	b := make([]byte, unix.NLMSG_HDRLEN+unix.SizeofIfAddrmsg)
	h := (*unix.NlMsghdr)(unsafe.Pointer(&b[0]))
	h.Len, h.Type, h.Flags, h.Seq = uint32(len(b)), unix.RTM_GETADDR, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, seq
	ifa := (*unix.IfAddrmsg)(unsafe.Pointer(&b[unix.NLMSG_HDRLEN]))
	ifa.Family, ifa.Index = unix.AF_INET6, uint32(index)
	return b
}

// parseAddrDump reads one batch of an address dump: the first usable
// link-local address of link index in it, and whether the dump is done
// (pure).
func parseAddrDump(b []byte, index int) (addr netip.Addr, found, done bool, err error) {
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		return netip.Addr{}, false, false, err
	}
	for _, m := range msgs {
		switch m.Header.Type {
		case unix.NLMSG_DONE:
			return addr, found, true, nil
		case unix.NLMSG_ERROR:
			if len(m.Data) >= 4 {
				if e := int32(binary.NativeEndian.Uint32(m.Data[:4])); e != 0 {
					return netip.Addr{}, false, true, syscall.Errno(-e)
				}
			}
			return addr, found, true, nil
		case unix.RTM_NEWADDR:
		default:
			continue
		}
		if len(m.Data) < unix.SizeofIfAddrmsg {
			continue
		}
		ifa := (*unix.IfAddrmsg)(unsafe.Pointer(&m.Data[0]))
		if int(ifa.Index) != index || ifa.Family != unix.AF_INET6 {
			continue
		}
		flags := uint32(ifa.Flags)
		var a netip.Addr
		attrs, err := syscall.ParseNetlinkRouteAttr(&m)
		if err != nil {
			continue
		}
		for _, at := range attrs {
			switch at.Attr.Type {
			case unix.IFA_ADDRESS:
				if x, ok := netip.AddrFromSlice(at.Value); ok {
					a = x
				}
			case unix.IFA_FLAGS:
				if len(at.Value) >= 4 {
					flags = binary.NativeEndian.Uint32(at.Value[:4])
				}
			}
		}
		if found || !a.Is6() || !a.IsLinkLocalUnicast() || flags&unix.IFA_F_DADFAILED != 0 {
			continue
		}
		addr, found = a, true
	}
	return addr, found, false, nil
}
