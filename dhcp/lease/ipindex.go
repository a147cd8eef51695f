package lease

// ipIndex finds the entry associated with an address. Pool addresses are
// found by their offset in the pool, in pages of refs made on first use;
// other addresses (reservations outside the pool, restored leases) in a map.
//
// The pool hands out addresses in order, so the leases made one after the
// other sit side by side in a page, and a REQUEST finds its OFFER's entry
// in memory the DISCOVER just touched. As a map, every lookup went to a
// random place in a table that grows with the leases: with 200,000 leases
// held, a cache miss on each of the two or three lookups of every packet.
type ipIndex struct {
	start uint32 // first pool address
	size  uint32 // pool addresses indexed by page (0: none)
	pages [][]ref
	n     int // refs set in pages
	other map[uint32]ref
}

// ipPage is how many addresses one page covers (4 KiB of refs).
const ipPage = 1024

// maxPaged bounds the pool addresses indexed by page; the rest of a larger
// pool goes to the map. 2^24 addresses (a /8) need 16,384 page slots.
const maxPaged = 1 << 24

func newIPIndex(poolStart, poolSize uint32) ipIndex {
	size := min(poolSize, maxPaged)
	return ipIndex{
		start: poolStart,
		size:  size,
		pages: make([][]ref, (size+ipPage-1)/ipPage),
		other: make(map[uint32]ref),
	}
}

func (x *ipIndex) get(ip uint32) ref {
	if off := ip - x.start; off < x.size {
		if p := x.pages[off/ipPage]; p != nil {
			return p[off%ipPage]
		}
		return 0
	}
	return x.other[ip]
}

// set associates ip with r (not 0).
func (x *ipIndex) set(ip uint32, r ref) {
	off := ip - x.start
	if off >= x.size {
		x.other[ip] = r
		return
	}
	p := x.pages[off/ipPage]
	if p == nil {
		p = make([]ref, ipPage)
		x.pages[off/ipPage] = p
	}
	if p[off%ipPage] == 0 {
		x.n++
	}
	p[off%ipPage] = r
}

func (x *ipIndex) del(ip uint32) {
	off := ip - x.start
	if off >= x.size {
		delete(x.other, ip)
		return
	}
	if p := x.pages[off/ipPage]; p != nil && p[off%ipPage] != 0 {
		p[off%ipPage] = 0
		x.n--
	}
}

func (x *ipIndex) len() int { return x.n + len(x.other) }
