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

// fastAnswer appends to dst the reply to pkt when pkt is a plain A/AAAA
// query for a machine visible in v. ok is false when the general path
// must handle pkt.
func (a *Authority) fastAnswer(dst, pkt []byte, v View) (out []byte, ok bool) {
	if len(pkt) < hdrLen+5 {
		return dst, false
	}
	// QR=0, opcode QUERY, one question, nothing but an optional OPT.
	if pkt[2]&0xF8 != 0 || binary.BigEndian.Uint16(pkt[4:]) != 1 ||
		binary.BigEndian.Uint16(pkt[6:]) != 0 || binary.BigEndian.Uint16(pkt[8:]) != 0 {
		return dst, false
	}
	arcount := binary.BigEndian.Uint16(pkt[10:])
	if arcount > 1 {
		return dst, false
	}
	// The question name: lower-cased, plain letters, digits, '-' and '_'.
	var name [maxNameLen]byte
	n := 0
	firstLabel := -1
	off := hdrLen
	for {
		if off >= len(pkt) {
			return dst, false
		}
		l := int(pkt[off])
		off++
		if l == 0 {
			break
		}
		if l > 63 || off+l > len(pkt) || n+l+1 > maxNameLen {
			return dst, false
		}
		if n > 0 {
			name[n] = '.'
			n++
		}
		for _, c := range pkt[off : off+l] {
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			case c >= 'A' && c <= 'Z':
				c += 'a' - 'A'
			default:
				return dst, false
			}
			name[n] = c
			n++
		}
		if firstLabel < 0 {
			firstLabel = n
		}
		off += l
	}
	if firstLabel < 0 || off+4 > len(pkt) {
		return dst, false
	}
	qend := off + 4
	qtype := binary.BigEndian.Uint16(pkt[off:])
	if (qtype != typeA && qtype != typeAAAA) || binary.BigEndian.Uint16(pkt[off+2:]) != classINET {
		return dst, false
	}
	// An optional OPT record: root owner, version 0, nothing after it.
	limit := 512
	edns, do := false, false
	off = qend
	if arcount == 1 {
		if off+11 > len(pkt) || pkt[off] != 0 || binary.BigEndian.Uint16(pkt[off+1:]) != typeOPT {
			return dst, false
		}
		if size := int(binary.BigEndian.Uint16(pkt[off+3:])); size > limit {
			limit = size
		}
		if pkt[off+5] != 0 || pkt[off+6] != 0 { // extended rcode, version
			return dst, false
		}
		do = pkt[off+7]&0x80 != 0
		rdlen := int(binary.BigEndian.Uint16(pkt[off+9:]))
		off += 11 + rdlen
		edns = true
	}
	if off != len(pkt) {
		return dst, false
	}
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
	if edns {
		size += 11
	}
	if size > limit {
		return dst, false
	}
	start := len(dst)
	dst = append(dst, pkt[0], pkt[1],
		0x80|0x04|pkt[2]&0x01, // QR, AA, RD copied
		0x80|pkt[3]&0x10,      // RA, CD copied, NOERROR
		0, 1, byte(len(list)>>8), byte(len(list)), 0, 0, 0, 0)
	if edns {
		dst[start+11] = 1
	}
	dst = append(dst, pkt[hdrLen:qend]...)
	for _, ip := range list {
		dst = append(dst, 0xC0, hdrLen, byte(qtype>>8), byte(qtype), 0, classINET)
		dst = binary.BigEndian.AppendUint32(dst, a.ttl)
		dst = append(dst, 0, byte(rdlen))
		dst = appendAddr(dst, ip, rdlen)
	}
	if edns {
		flags := byte(0)
		if do {
			flags = 0x80
		}
		dst = append(dst, 0, 0, typeOPT, byte(ourUDPSize>>8), byte(ourUDPSize&0xFF), 0, 0, flags, 0, 0, 0)
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
