// Package nss serves libnss_netspawn.so.2, the glibc NSS module for the
// hosts database, and defines the protocol between the two.
//
// The module is a small C ABI adapter (module/libnss_netspawn.c) with no logic
// of its own: for every lookup it connects to a Unix SOCK_SEQPACKET socket
// (/run/netspawn/nss.sock, or $NETSPAWN_RUNTIME_DIR/nss.sock read with
// secure_getenv), sends one request datagram, reads one reply datagram
// and closes. Lookup logic (names, domain, case) lives here, in Go.
//
// # Request (4 + L bytes)
//
//	0  version (1)
//	1  op: 1 = by name, 2 = by address
//	2  family: 0 = any, 2 = AF_INET, 10 = AF_INET6
//	3  L: payload length
//	4  payload: the name (1..253 bytes, no NUL, optional trailing dot)
//	   or the address (4 bytes for AF_INET, 16 for AF_INET6), network order
//
// # Reply (8 + N + 4×n4 + 16×n6 bytes)
//
//	0  version (1)
//	1  status: 0 found, 1 not found, 2 name exists but has no address of
//	   the family asked for, 3 server error
//	2  n4: number of IPv4 addresses (at most MaxAddrs)
//	3  n6: number of IPv6 addresses (at most MaxAddrs)
//	4  N: length of the canonical name (0 unless status is 0)
//	5  reserved (0), 3 bytes
//	8  the canonical name (N bytes, no NUL)
//	   n4 IPv4 addresses (4 bytes each), then n6 IPv6 addresses (16 bytes)
//
// IPv4 addresses come before IPv6 ones, as getaddrinfo expects. A reply
// of any other shape is treated by the module as the controller being
// unavailable.
package nss

import (
	"errors"
	"fmt"
	"net/netip"
)

// Protocol constants.
const (
	Version = 1

	OpByName = 1
	OpByAddr = 2

	FamilyAny  = 0
	FamilyIPv4 = 2  // AF_INET
	FamilyIPv6 = 10 // AF_INET6

	StatusFound    = 0
	StatusNotFound = 1
	StatusNoData   = 2
	StatusError    = 3

	// MaxAddrs caps the addresses of each family in one reply.
	MaxAddrs = 16
	// MaxName is the longest name accepted or returned.
	MaxName = 253
	// MaxRequest and MaxReply bound the datagram sizes.
	MaxRequest = 4 + MaxName
	MaxReply   = 8 + 255 + 4*MaxAddrs + 16*MaxAddrs
)

// Request is one decoded request.
type Request struct {
	Op     byte
	Family byte
	Name   string     // OpByName
	Addr   netip.Addr // OpByAddr
}

// Reply is one reply.
type Reply struct {
	Status byte
	Name   string
	IPv4   []netip.Addr
	IPv6   []netip.Addr
}

// ErrMalformed is returned for datagrams that break the protocol.
var ErrMalformed = errors.New("nss: malformed message")

// ParseRequest decodes a request datagram.
func ParseRequest(b []byte) (Request, error) {
	if len(b) < 4 || b[0] != Version || int(b[3]) != len(b)-4 {
		return Request{}, ErrMalformed
	}
	r := Request{Op: b[1], Family: b[2]}
	if r.Family != FamilyAny && r.Family != FamilyIPv4 && r.Family != FamilyIPv6 {
		return Request{}, fmt.Errorf("%w: family %d", ErrMalformed, r.Family)
	}
	p := b[4:]
	switch r.Op {
	case OpByName:
		if len(p) == 0 || len(p) > MaxName {
			return Request{}, fmt.Errorf("%w: name length %d", ErrMalformed, len(p))
		}
		for _, c := range p {
			if c == 0 {
				return Request{}, fmt.Errorf("%w: NUL in name", ErrMalformed)
			}
		}
		r.Name = string(p)
	case OpByAddr:
		switch {
		case r.Family == FamilyIPv4 && len(p) == 4:
			r.Addr = netip.AddrFrom4([4]byte(p))
		case r.Family == FamilyIPv6 && len(p) == 16:
			r.Addr = netip.AddrFrom16([16]byte(p))
		default:
			return Request{}, fmt.Errorf("%w: address of %d bytes, family %d", ErrMalformed, len(p), r.Family)
		}
	default:
		return Request{}, fmt.Errorf("%w: op %d", ErrMalformed, r.Op)
	}
	return r, nil
}

// AppendRequest encodes a request (the Go twin of the C module's
// encoder, for tests and tools).
func AppendRequest(dst []byte, r Request) ([]byte, error) {
	switch r.Op {
	case OpByName:
		if len(r.Name) == 0 || len(r.Name) > MaxName {
			return dst, fmt.Errorf("nss: bad name length %d", len(r.Name))
		}
		dst = append(dst, Version, OpByName, r.Family, byte(len(r.Name)))
		return append(dst, r.Name...), nil
	case OpByAddr:
		if r.Addr.Is4() {
			b := r.Addr.As4()
			dst = append(dst, Version, OpByAddr, FamilyIPv4, 4)
			return append(dst, b[:]...), nil
		}
		if r.Addr.Is6() {
			b := r.Addr.As16()
			dst = append(dst, Version, OpByAddr, FamilyIPv6, 16)
			return append(dst, b[:]...), nil
		}
	}
	return dst, fmt.Errorf("nss: bad request %+v", r)
}

// AppendReply encodes a reply; names longer than 255 bytes and address
// lists longer than MaxAddrs are cut.
func AppendReply(dst []byte, r Reply) []byte {
	name := r.Name
	if r.Status != StatusFound {
		name = ""
	}
	if len(name) > 255 {
		name = name[:255]
	}
	v4, v6 := r.IPv4, r.IPv6
	if r.Status != StatusFound {
		v4, v6 = nil, nil
	}
	v4, v6 = v4[:min(len(v4), MaxAddrs)], v6[:min(len(v6), MaxAddrs)]
	dst = append(dst, Version, r.Status, byte(len(v4)), byte(len(v6)), byte(len(name)), 0, 0, 0)
	dst = append(dst, name...)
	for _, a := range v4 {
		b := a.As4()
		dst = append(dst, b[:]...)
	}
	for _, a := range v6 {
		b := a.As16()
		dst = append(dst, b[:]...)
	}
	return dst
}

// ParseReply decodes a reply datagram with the C module's checks.
func ParseReply(b []byte) (Reply, error) {
	if len(b) < 8 || b[0] != Version || b[1] > StatusError {
		return Reply{}, ErrMalformed
	}
	n4, n6, n := int(b[2]), int(b[3]), int(b[4])
	if n4 > MaxAddrs || n6 > MaxAddrs || len(b) != 8+n+4*n4+16*n6 {
		return Reply{}, ErrMalformed
	}
	r := Reply{Status: b[1], Name: string(b[8 : 8+n])}
	if r.Status == StatusFound && n == 0 {
		return Reply{}, ErrMalformed
	}
	p := b[8+n:]
	for i := 0; i < n4; i++ {
		r.IPv4 = append(r.IPv4, netip.AddrFrom4([4]byte(p[4*i:])))
	}
	p = p[4*n4:]
	for i := 0; i < n6; i++ {
		r.IPv6 = append(r.IPv6, netip.AddrFrom16([16]byte(p[16*i:])))
	}
	return r, nil
}
