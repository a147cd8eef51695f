package ra

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// addrMsg builds one RTM_NEWADDR message as the kernel sends it.
func addrMsg(index int, addr netip.Addr, flags uint32) []byte {
	attr := func(typ uint16, v []byte) []byte {
		b := make([]byte, unix.NLA_ALIGNTO*((4+len(v)+unix.NLA_ALIGNTO-1)/unix.NLA_ALIGNTO))
		binary.NativeEndian.PutUint16(b[0:], uint16(4+len(v)))
		binary.NativeEndian.PutUint16(b[2:], typ)
		copy(b[4:], v)
		return b
	}
	a := addr.As16()
	f := make([]byte, 4)
	binary.NativeEndian.PutUint32(f, flags)
	body := make([]byte, unix.SizeofIfAddrmsg)
	ifa := (*unix.IfAddrmsg)(unsafe.Pointer(&body[0]))
	ifa.Family, ifa.Prefixlen, ifa.Index = unix.AF_INET6, 64, uint32(index)
	body = append(body, attr(unix.IFA_ADDRESS, a[:])...)
	body = append(body, attr(unix.IFA_FLAGS, f)...)
	h := make([]byte, unix.NLMSG_HDRLEN)
	binary.NativeEndian.PutUint32(h[0:], uint32(len(h)+len(body)))
	binary.NativeEndian.PutUint16(h[4:], unix.RTM_NEWADDR)
	return append(h, body...)
}

func doneMsg() []byte {
	h := make([]byte, unix.NLMSG_HDRLEN+4)
	binary.NativeEndian.PutUint32(h[0:], uint32(len(h)))
	binary.NativeEndian.PutUint16(h[4:], unix.NLMSG_DONE)
	return h
}

func TestParseAddrDump(t *testing.T) {
	ll := netip.MustParseAddr("fe80::1")
	var b []byte
	b = append(b, addrMsg(7, netip.MustParseAddr("fd00::1"), 0)...) // not link-local
	b = append(b, addrMsg(8, netip.MustParseAddr("fe80::8"), 0)...) // another link
	b = append(b, addrMsg(7, netip.MustParseAddr("fe80::2"), unix.IFA_F_DADFAILED)...)
	b = append(b, addrMsg(7, ll, unix.IFA_F_TENTATIVE)...)
	a, found, done, err := parseAddrDump(b, 7)
	if err != nil || !found || done || a != ll {
		t.Fatalf("got %v %v %v %v, want %v found, not done", a, found, done, err, ll)
	}
	if _, found, done, err := parseAddrDump(doneMsg(), 7); err != nil || found || !done {
		t.Fatalf("done message: found %v done %v err %v", found, done, err)
	}
}

func TestAddrDumpRequest(t *testing.T) {
	b := addrDumpRequest(42, 3)
	h := (*unix.NlMsghdr)(unsafe.Pointer(&b[0]))
	ifa := (*unix.IfAddrmsg)(unsafe.Pointer(&b[unix.NLMSG_HDRLEN]))
	if int(h.Len) != len(b) || h.Type != unix.RTM_GETADDR || h.Flags != unix.NLM_F_REQUEST|unix.NLM_F_DUMP || h.Seq != 3 ||
		ifa.Family != unix.AF_INET6 || ifa.Index != 42 {
		t.Fatalf("request %+v %+v", *h, *ifa)
	}
}

func TestPktinfo(t *testing.T) {
	src := netip.MustParseAddr("fe80::1")
	msgs, err := unix.ParseSocketControlMessage(pktinfo(src, 9))
	if err != nil || len(msgs) != 1 {
		t.Fatalf("%v %v", msgs, err)
	}
	m := msgs[0]
	if m.Header.Level != unix.IPPROTO_IPV6 || m.Header.Type != unix.IPV6_PKTINFO || len(m.Data) < unix.SizeofInet6Pktinfo {
		t.Fatalf("header %+v", m.Header)
	}
	pi := (*unix.Inet6Pktinfo)(unsafe.Pointer(&m.Data[0]))
	if netip.AddrFrom16(pi.Addr) != src || pi.Ifindex != 9 {
		t.Fatalf("pktinfo %+v", *pi)
	}
}
