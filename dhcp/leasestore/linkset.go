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
//
// A record is found one of two ways. Bound records by the lease table's
// entry number (lease.Change.Entry): an array, where the leases a table made
// one after the other sit side by side. The others (replayed from the log
// and not yet bound, or changed without an entry number) by a hash of their
// key. A record is in exactly one of the two. With 200,000 leases the hash
// map's probe was a cache miss for every new lease persisted; the array's
// is not.
type linkSet struct {
	link      string
	arena     arena
	recs      []span            // record slots; n == 0: unused
	unused    []uint32          // unused slots of recs
	byEntry   []uint32          // entry number -> slot+1 (0: not bound)
	bound     int               // records bound in byEntry
	numbering uint64            // the table whose entry numbers byEntry holds
	byHash    map[uint64]uint32 // key hash -> slot
	clash     map[string]uint32 // keys whose hash another key holds in byHash (rare)
	live      int
	garbage   int // arena bytes no slot refers to
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

// maxEntry bounds the entry numbers bound by array (4 bytes of array
// each); a change with a larger one goes by hash.
const maxEntry = 1 << 26

// boundSlot is the slot bound to entry e.
func (ls *linkSet) boundSlot(e uint32) (uint32, bool) {
	if e == 0 || int(e) >= len(ls.byEntry) || ls.byEntry[e] == 0 {
		return 0, false
	}
	return ls.byEntry[e] - 1, true
}

func (ls *linkSet) bind(e, slot uint32) {
	if int(e) >= len(ls.byEntry) {
		ls.byEntry = append(ls.byEntry, make([]uint32, int(e)+1-len(ls.byEntry))...)
	}
	ls.byEntry[e] = slot + 1
	ls.bound++
}

// unbind moves the record bound to entry e to the hash index.
func (ls *linkSet) unbind(seed maphash.Seed, e uint32) {
	slot := ls.byEntry[e] - 1
	ls.byEntry[e] = 0
	ls.bound--
	key := string(ls.keyOf(slot))
	ls.hashSlot(maphash.String(seed, key), key, slot)
}

// unbindAll moves every bound record to the hash index.
func (ls *linkSet) unbindAll(seed maphash.Seed) {
	for e, v := range ls.byEntry {
		if v != 0 {
			ls.unbind(seed, uint32(e))
		}
	}
	ls.byEntry = nil
}

func (ls *linkSet) hashSlot(h uint64, key string, slot uint32) {
	if _, taken := ls.byHash[h]; taken {
		if ls.clash == nil {
			ls.clash = map[string]uint32{}
		}
		ls.clash[key] = slot
		return
	}
	ls.byHash[h] = slot
}

// unhash drops key, found at slot, from the hash index.
func (ls *linkSet) unhash(h uint64, key string, slot uint32) {
	if s, ok := ls.byHash[h]; ok && s == slot {
		delete(ls.byHash, h)
	} else {
		delete(ls.clash, key)
	}
}

// lookup finds key's record: by entry e of table numbering n when it is
// bound there, else by hash. A change from another table than the one the
// records are bound for, or without an entry number, first unbinds every
// record; a record bound to e under another key (the number was given to
// a new key without a deletion seen) goes to the hash index. So a key is
// never missed and never stored twice, whatever the numbers.
func (ls *linkSet) lookup(seed maphash.Seed, key string, e uint32, n uint64) (slot uint32, bound, ok bool) {
	if e >= maxEntry {
		e = 0
	}
	if e != 0 && n != ls.numbering {
		if ls.bound > 0 {
			ls.unbindAll(seed)
		}
		ls.numbering = n
	}
	if slot, ok := ls.boundSlot(e); ok {
		if string(ls.keyOf(slot)) == key {
			return slot, true, true
		}
		ls.unbind(seed, e)
	}
	if e == 0 && ls.bound > 0 {
		ls.unbindAll(seed)
	}
	if len(ls.byHash) == 0 && len(ls.clash) == 0 {
		return 0, false, false
	}
	slot, ok = ls.find(maphash.String(seed, key), key)
	return slot, false, ok
}

// put makes rec the record of key, whose lease is entry e of table
// numbering n (e 0: unknown), and reports whether the key is new.
func (ls *linkSet) put(seed maphash.Seed, key string, rec []byte, e uint32, n uint64) bool {
	if e >= maxEntry {
		e = 0
	}
	if slot, bound, ok := ls.lookup(seed, key, e, n); ok {
		sp := &ls.recs[slot]
		if int(sp.n) == len(rec) {
			copy(ls.arena.at(*sp), rec)
		} else {
			ls.garbage += int(sp.n)
			ls.recs[slot] = ls.store(rec)
			ls.maybeCompact()
		}
		if !bound && e != 0 {
			ls.unhash(maphash.String(seed, key), key, slot)
			ls.bind(e, slot)
		}
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
	if e != 0 {
		ls.bind(e, slot)
	} else {
		ls.hashSlot(maphash.String(seed, key), key, slot)
	}
	ls.live++
	return true
}

// del forgets key, whose lease was entry e of table numbering n (e 0:
// unknown), and reports whether it was there.
func (ls *linkSet) del(seed maphash.Seed, key string, e uint32, n uint64) bool {
	if e >= maxEntry {
		e = 0
	}
	slot, bound, ok := ls.lookup(seed, key, e, n)
	if !ok {
		return false
	}
	if bound {
		ls.byEntry[e] = 0
		ls.bound--
	} else {
		ls.unhash(maphash.String(seed, key), key, slot)
	}
	ls.garbage += int(ls.recs[slot].n)
	ls.recs[slot] = span{}
	ls.unused = append(ls.unused, slot)
	ls.live--
	ls.maybeCompact()
	return true
}

// bindAll binds every record whose key entryOf knows to its entry number
// in table numbering n, after unbinding all.
func (ls *linkSet) bindAll(seed maphash.Seed, n uint64, entryOf func(key string) uint32) {
	ls.unbindAll(seed)
	ls.numbering = n
	bind := func(key string, slot uint32) bool {
		e := entryOf(key)
		if e == 0 || e >= maxEntry {
			return false
		}
		if _, taken := ls.boundSlot(e); taken {
			return false // two keys on one entry: cannot happen; keep by hash
		}
		ls.bind(e, slot)
		return true
	}
	for h, slot := range ls.byHash {
		if bind(string(ls.keyOf(slot)), slot) {
			delete(ls.byHash, h)
		}
	}
	for key, slot := range ls.clash {
		if bind(key, slot) {
			delete(ls.clash, key)
		}
	}
	// A map keeps the memory it grew to: the records replayed at start
	// filled it, and now it holds the few the table did not restore.
	left := make(map[uint64]uint32, len(ls.byHash))
	for h, slot := range ls.byHash {
		left[h] = slot
	}
	ls.byHash = left
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
