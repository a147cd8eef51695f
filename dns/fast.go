package dns

import (
	"encoding/binary"
	"net/netip"
)

// The fast path answers the common query — one A or AAAA question for a
// visible machine name, with at most an OPT record — straight from the
// wire format into a reused buffer, without building dns.Msg values.
// Anything else (and anything it is unsure about) goes to the general
// path, which gives the same answer more slowly; the fuzz test checks
// that the two agree.

const (
	hdrLen     = 12
	typeA      = 1
	typeAAAA   = 28
	typeOPT    = 41
	classINET  = 1
	maxNameLen = 255
)

// wireQuery is a query parsed from the wire by parseQuery.
type wireQuery struct {
	name       [maxNameLen]byte // lower case, dotted, no final dot
	n          int              // length of name
	firstLabel int              // end of the first label in name
	qend       int              // end of the question in the packet
	qtype      uint16
	qclass     uint16
	edns, do   bool
	limit      int // the client's UDP buffer size
}

// parseQuery reads pkt when it is a plain query: QR=0, opcode QUERY, one
// question whose name has only letters, digits, '-' and '_', nothing but
// an optional OPT record (version 0) after it. ok is false for anything
// else, which the general path handles.
func parseQuery(pkt []byte, q *wireQuery) bool {
	if len(pkt) < hdrLen+5 {
		return false
	}
	if pkt[2]&0xF8 != 0 || binary.BigEndian.Uint16(pkt[4:]) != 1 ||
		binary.BigEndian.Uint16(pkt[6:]) != 0 || binary.BigEndian.Uint16(pkt[8:]) != 0 {
		return false
	}
	arcount := binary.BigEndian.Uint16(pkt[10:])
	if arcount > 1 {
		return false
	}
	n := 0
	firstLabel := -1
	off := hdrLen
	for {
		if off >= len(pkt) {
			return false
		}
		l := int(pkt[off])
		off++
		if l == 0 {
			break
		}
		if l > 63 || off+l > len(pkt) || n+l+1 > maxNameLen {
			return false
		}
		if n > 0 {
			q.name[n] = '.'
			n++
		}
		for _, c := range pkt[off : off+l] {
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			case c >= 'A' && c <= 'Z':
				c += 'a' - 'A'
			default:
				return false
			}
			q.name[n] = c
			n++
		}
		if firstLabel < 0 {
			firstLabel = n
		}
		off += l
	}
	if firstLabel < 0 || off+4 > len(pkt) {
		return false
	}
	q.n, q.firstLabel = n, firstLabel
	q.qend = off + 4
	q.qtype = binary.BigEndian.Uint16(pkt[off:])
	q.qclass = binary.BigEndian.Uint16(pkt[off+2:])
	q.limit = 512
	q.edns, q.do = false, false
	off = q.qend
	if arcount == 1 {
		if off+11 > len(pkt) || pkt[off] != 0 || binary.BigEndian.Uint16(pkt[off+1:]) != typeOPT {
			return false
		}
		if size := int(binary.BigEndian.Uint16(pkt[off+3:])); size > q.limit {
			q.limit = size
		}
		if pkt[off+5] != 0 || pkt[off+6] != 0 { // extended rcode, version
			return false
		}
		q.do = pkt[off+7]&0x80 != 0
		rdlen := int(binary.BigEndian.Uint16(pkt[off+9:]))
		off += 11 + rdlen
		q.edns = true
	}
	return off == len(pkt)
}

// appendOPT appends our OPT record (our buffer size, the client's DO bit).
func appendOPT(dst []byte, do bool) []byte {
	flags := byte(0)
	if do {
		flags = 0x80
	}
	return append(dst, 0, 0, typeOPT, byte(ourUDPSize>>8), byte(ourUDPSize&0xFF), 0, 0, flags, 0, 0, 0)
}

// fastAnswer appends to dst the reply to pkt when pkt is a plain A/AAAA
// query for a machine visible in v. ok is false when the general path
// must handle pkt.
func (a *Authority) fastAnswer(dst, pkt []byte, v View) (out []byte, ok bool) {
	var q wireQuery
	if !parseQuery(pkt, &q) {
		return dst, false
	}
	return a.fastAnswerParsed(dst, pkt, &q, v)
}

// fastAnswerParsed is fastAnswer for a query parseQuery has read into q.
func (a *Authority) fastAnswerParsed(dst, pkt []byte, q *wireQuery, v View) (out []byte, ok bool) {
	if (q.qtype != typeA && q.qtype != typeAAAA) || q.qclass != classINET {
		return dst, false
	}
	name, n, firstLabel, qend, qtype := &q.name, q.n, q.firstLabel, q.qend, q.qtype
	// NAME or NAME.<domain>.
	if firstLabel != n {
		rest := name[firstLabel:n]
		d := a.domain[:len(a.domain)-1]
		if len(rest) != len(d)+1 || rest[0] != '.' || string(rest[1:]) != d {
			return dst, false
		}
	}
	r, found := a.src.Lookup(string(name[:firstLabel]))
	if !found || !v.sees(r) {
		return dst, false
	}
	list, rdlen := r.IPv4, 4
	if qtype == typeAAAA {
		list, rdlen = r.IPv6, 16
	}
	if len(list) == 0 {
		return dst, false
	}
	size := qend + len(list)*(12+rdlen)
	if q.edns {
		size += 11
	}
	if size > q.limit {
		return dst, false
	}
	start := len(dst)
	dst = append(dst, pkt[0], pkt[1],
		0x80|0x04|pkt[2]&0x01, // QR, AA, RD copied
		0x80|pkt[3]&0x10,      // RA, CD copied, NOERROR
		0, 1, byte(len(list)>>8), byte(len(list)), 0, 0, 0, 0)
	if q.edns {
		dst[start+11] = 1
	}
	dst = append(dst, pkt[hdrLen:qend]...)
	for _, ip := range list {
		dst = append(dst, 0xC0, hdrLen, byte(qtype>>8), byte(qtype), 0, classINET)
		dst = binary.BigEndian.AppendUint32(dst, a.ttl)
		dst = append(dst, 0, byte(rdlen))
		dst = appendAddr(dst, ip, rdlen)
	}
	if q.edns {
		dst = appendOPT(dst, q.do)
	}
	return dst, true
}

func appendAddr(dst []byte, ip netip.Addr, n int) []byte {
	if n == 4 {
		b := ip.As4()
		return append(dst, b[:]...)
	}
	b := ip.As16()
	return append(dst, b[:]...)
}
