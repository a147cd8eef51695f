package leasestore

import (
	"bytes"
	"hash/maphash"
)

// linkSet is the live leases of one link, held without a pointer per lease
// so that a large set costs the garbage collector nothing to trace: each
// lease is its record line (exactly as in the log, newline included) in one
// byte arena, found by a hash of its key. Compaction writes the lines out as
// they are; Leases parses them back.
type linkSet struct {
	link    string
	arena   arena
	recs    []span            // record slots; n == 0: unused
	unused  []uint32          // unused slots of recs
	byHash  map[uint64]uint32 // key hash -> slot
	clash   map[string]uint32 // keys whose hash another key holds in byHash (rare)
	live    int
	garbage int // arena bytes no slot refers to
}

// span is where a record is in the arena: chunk<<arenaShift | offset, and
// its length.
type span struct{ off, n uint32 }

// arenaShift sets the size of the arena's chunks (64 KiB). The records live
// in chunks so that growing the arena never copies it: as one slice, the
// lines of 200,000 leases (20 MB) were copied to new memory whenever the
// slice grew, under the link's lock.
const arenaShift = 16

// arena holds record lines in chunks; a line never spans two chunks (one
// longer than a chunk gets a chunk of its own).
type arena struct {
	chunks [][]byte
	size   int // bytes of lines stored
}

func (a *arena) at(sp span) []byte {
	c, o := sp.off>>arenaShift, sp.off&(1<<arenaShift-1)
	return a.chunks[c][o : o+sp.n]
}

func (a *arena) add(rec []byte) span {
	if len(a.chunks) == 0 {
		a.chunks = append(a.chunks, nil) // the first grows from small
	}
	c := &a.chunks[len(a.chunks)-1]
	if len(*c) > 0 && len(*c)+len(rec) > 1<<arenaShift { // offsets must fit arenaShift bits
		a.chunks = append(a.chunks, make([]byte, 0, max(1<<arenaShift, len(rec))))
		c = &a.chunks[len(a.chunks)-1]
	}
	sp := span{off: uint32(len(a.chunks)-1)<<arenaShift | uint32(len(*c)), n: uint32(len(rec))}
	*c = append(*c, rec...)
	a.size += len(rec)
	return sp
}

func newLinkSet(link string) *linkSet {
	return &linkSet{link: link, byHash: map[uint64]uint32{}}
}

func (ls *linkSet) len() int { return ls.live }

func (ls *linkSet) rec(slot uint32) []byte {
	sp := ls.recs[slot]
	return ls.arena.at(sp)
}

// keyOf is the key field of a record: "P link key ...".
func (ls *linkSet) keyOf(slot uint32) []byte {
	r := ls.rec(slot)
	start := len("P ") + len(ls.link) + 1
	if start > len(r) {
		return nil
	}
	r = r[start:]
	if i := bytes.IndexByte(r, ' '); i >= 0 {
		return r[:i]
	}
	return r
}

// find returns the slot holding key.
func (ls *linkSet) find(h uint64, key string) (uint32, bool) {
	if slot, ok := ls.byHash[h]; ok && string(ls.keyOf(slot)) == key {
		return slot, true
	}
	slot, ok := ls.clash[key]
	return slot, ok
}

// put makes rec the record of key and reports whether the key is new.
func (ls *linkSet) put(seed maphash.Seed, key string, rec []byte) bool {
	h := maphash.String(seed, key)
	if slot, ok := ls.find(h, key); ok {
		sp := &ls.recs[slot]
		if int(sp.n) == len(rec) {
			copy(ls.arena.at(*sp), rec)
			return false
		}
		ls.garbage += int(sp.n)
		ls.recs[slot] = ls.store(rec)
		ls.maybeCompact()
		return false
	}
	var slot uint32
	if n := len(ls.unused); n > 0 {
		slot = ls.unused[n-1]
		ls.unused = ls.unused[:n-1]
	} else {
		ls.recs = append(ls.recs, span{})
		slot = uint32(len(ls.recs) - 1)
	}
	ls.recs[slot] = ls.store(rec)
	if _, taken := ls.byHash[h]; taken {
		if ls.clash == nil {
			ls.clash = map[string]uint32{}
		}
		ls.clash[key] = slot
	} else {
		ls.byHash[h] = slot
	}
	ls.live++
	return true
}

// del forgets key and reports whether it was there.
func (ls *linkSet) del(seed maphash.Seed, key string) bool {
	h := maphash.String(seed, key)
	slot, ok := ls.find(h, key)
	if !ok {
		return false
	}
	if s, inHash := ls.byHash[h]; inHash && s == slot {
		delete(ls.byHash, h)
	} else {
		delete(ls.clash, key)
	}
	ls.garbage += int(ls.recs[slot].n)
	ls.recs[slot] = span{}
	ls.unused = append(ls.unused, slot)
	ls.live--
	ls.maybeCompact()
	return true
}

func (ls *linkSet) store(rec []byte) span {
	return ls.arena.add(rec)
}

// maybeCompact rewrites the arena once most of it is garbage.
func (ls *linkSet) maybeCompact() {
	if ls.garbage < 1<<16 || ls.garbage < ls.arena.size/2 {
		return
	}
	var na arena
	for i, sp := range ls.recs {
		if sp.n == 0 {
			continue
		}
		ls.recs[i] = na.add(ls.arena.at(sp))
	}
	ls.arena, ls.garbage = na, 0
}

// each calls f with every live record (valid until the set changes).
func (ls *linkSet) each(f func(rec []byte)) {
	for slot, sp := range ls.recs {
		if sp.n > 0 {
			f(ls.rec(uint32(slot)))
		}
	}
}
