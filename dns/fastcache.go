package dns

import (
	"encoding/binary"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// The cache's fast path answers a plain query (as parseQuery reads it)
// for a name the authority never answers from the wire form of the
// cached answer: the client's ID, RD bit and question spelling are
// copied in, the TTLs counted down in place and our OPT appended. It
// gives the answer Get and Finish would give; anything else takes the
// general path.

// wireOf packs a cached answer for the fast path: without its OPT record
// (the client gets ours), ID 0. It returns the TTL fields of every record
// and the end of the question, or nil when the message cannot be packed
// or read back.
func wireOf(m *dns.Msg) (wire []byte, ttls []ttlField, qend int) {
	w := *m
	w.Id = 0
	w.Compress = true
	w.Extra = nil
	for _, rr := range m.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			w.Extra = append(w.Extra, rr)
		}
	}
	b, err := w.Pack()
	if err != nil || len(b) > 0xFFFF || len(b) < hdrLen {
		return nil, nil, 0
	}
	if binary.BigEndian.Uint16(b[4:]) != 1 {
		return nil, nil, 0
	}
	off, ok := skipName(b, hdrLen)
	if !ok || off+4 > len(b) {
		return nil, nil, 0
	}
	qend = off + 4
	off = qend
	records := int(binary.BigEndian.Uint16(b[6:])) + int(binary.BigEndian.Uint16(b[8:])) + int(binary.BigEndian.Uint16(b[10:]))
	for i := 0; i < records; i++ {
		if off, ok = skipName(b, off); !ok || off+10 > len(b) {
			return nil, nil, 0
		}
		ttls = append(ttls, ttlField{off: uint16(off + 4), ttl: binary.BigEndian.Uint32(b[off+4:])})
		off += 10 + int(binary.BigEndian.Uint16(b[off+8:]))
	}
	if off != len(b) {
		return nil, nil, 0
	}
	return b, ttls, qend
}

// wireFromReply is wireOf for an answer as it came off the wire: a copy
// of raw with ID 0 and the OPT record cut off, which spares packing the
// answer again. Only the common shape is taken (one question, the OPT
// record last, nothing after the records); ok is false otherwise and
// wireOf does the work.
func wireFromReply(raw []byte) (wire []byte, ttls []ttlField, qend int, ok bool) {
	if len(raw) < hdrLen || len(raw) > 0xFFFF || binary.BigEndian.Uint16(raw[4:]) != 1 {
		return nil, nil, 0, false
	}
	off, ok := skipName(raw, hdrLen)
	if !ok || off+4 > len(raw) {
		return nil, nil, 0, false
	}
	qend = off + 4
	off = qend
	an, ns, ar := int(binary.BigEndian.Uint16(raw[6:])), int(binary.BigEndian.Uint16(raw[8:])), int(binary.BigEndian.Uint16(raw[10:]))
	records := an + ns + ar
	end, cut := 0, false
	for i := 0; i < records; i++ {
		start := off
		if off, ok = skipName(raw, off); !ok || off+10 > len(raw) {
			return nil, nil, 0, false
		}
		rrtype := binary.BigEndian.Uint16(raw[off:])
		rdlen := int(binary.BigEndian.Uint16(raw[off+8:]))
		if rrtype == typeOPT {
			if i < an+ns || i != records-1 {
				return nil, nil, 0, false
			}
			end, cut = start, true
		} else {
			ttls = append(ttls, ttlField{off: uint16(off + 4), ttl: binary.BigEndian.Uint32(raw[off+4:])})
		}
		off += 10 + rdlen
		if off > len(raw) {
			return nil, nil, 0, false
		}
	}
	if off != len(raw) {
		return nil, nil, 0, false
	}
	if !cut {
		end = len(raw)
	}
	wire = append([]byte(nil), raw[:end]...)
	wire[0], wire[1] = 0, 0
	if cut {
		binary.BigEndian.PutUint16(wire[10:], uint16(ar-1))
	}
	return wire, ttls, qend, true
}

// skipName returns the offset after the (possibly compressed) name at off.
func skipName(b []byte, off int) (int, bool) {
	for off < len(b) {
		l := int(b[off])
		switch {
		case l == 0:
			return off + 1, true
		case l&0xC0 == 0xC0:
			if off+2 > len(b) {
				return 0, false
			}
			return off + 2, true
		case l > 63:
			return 0, false
		}
		off += 1 + l
	}
	return 0, false
}

// claims reports whether the authority might answer q itself (a single
// label, the domain or a name under it, a reverse name): such queries
// never take the cache's fast path, so a machine that appears after its
// name was forwarded and cached is answered at once.
func (a *Authority) claims(q *wireQuery) bool {
	if q.firstLabel == q.n {
		return true
	}
	name := string(q.name[:q.n]) + "."
	return name == a.domain || strings.HasSuffix(name, "."+a.domain) ||
		strings.HasSuffix(name, ".arpa.")
}

// fastGet appends to dst the cached answer to the query q (parsed from
// pkt) when it is fresh and fits the client's buffer.
func (c *Cache) fastGet(dst, pkt []byte, q *wireQuery) ([]byte, bool) {
	q.name[q.n] = '.'
	k := cacheKey{name: string(q.name[:q.n+1]), qtype: q.qtype, qclass: q.qclass, cd: pkt[3]&0x10 != 0, do: q.do}
	now := c.now()
	c.mu.Lock()
	e, ok := c.m[k]
	c.mu.Unlock()
	if !ok || !now.Before(e.expires) || e.wire == nil || e.qend != q.qend {
		return dst, false
	}
	size := len(e.wire)
	if q.edns {
		size += 11
	}
	if size > q.limit {
		return dst, false
	}
	start := len(dst)
	dst = append(dst, e.wire...)
	r := dst[start:]
	r[0], r[1] = pkt[0], pkt[1]
	r[2] = r[2]&^0x01 | pkt[2]&0x01
	copy(r[hdrLen:q.qend], pkt[hdrLen:q.qend])
	age := uint32(now.Sub(e.stored) / time.Second)
	for _, t := range e.ttls {
		ttl := uint32(0)
		if t.ttl > age {
			ttl = t.ttl - age
		}
		binary.BigEndian.PutUint32(r[t.off:], ttl)
	}
	if q.edns {
		binary.BigEndian.PutUint16(r[10:], binary.BigEndian.Uint16(r[10:])+1)
		dst = appendOPT(dst, q.do)
	}
	return dst, true
}
