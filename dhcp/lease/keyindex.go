package lease

import "hash/maphash"

// keyIndex finds entries by key. It holds a 64-bit hash of each key rather
// than the key: a map of 34-byte keys (ikey) has slots four times as wide
// and hashes and compares the whole key on every probe, which with 200,000
// leases made its lookups one of the costs that grew with the table. The
// entry found is checked to carry the key; a key whose hash another key
// already holds goes to clash (64-bit collisions: expected never).
type keyIndex struct {
	seed   maphash.Seed
	byHash map[uint64]ref
	clash  map[ikey]ref
}

func newKeyIndex() keyIndex {
	return keyIndex{seed: maphash.MakeSeed(), byHash: make(map[uint64]ref)}
}

// keyHash hashes keys; tests replace it to make keys clash.
// (maphash.Comparable would move each key to the heap to hash it.)
var keyHash = func(seed maphash.Seed, k ikey) uint64 {
	var b [2 + len(k.b)]byte
	b[0], b[1] = k.kind, k.n
	copy(b[2:], k.b[:])
	return maphash.Bytes(seed, b[:])
}

func (x *keyIndex) hash(k ikey) uint64 { return keyHash(x.seed, k) }

// get is the entry with key k (0: none).
func (x *keyIndex) get(es *entries, k ikey) ref {
	if r := x.byHash[x.hash(k)]; r != 0 && es.at(r).key == k {
		return r
	}
	if len(x.clash) > 0 {
		return x.clash[k]
	}
	return 0
}

// set indexes entry r, whose key is k.
func (x *keyIndex) set(es *entries, k ikey, r ref) {
	h := x.hash(k)
	if cur := x.byHash[h]; cur == 0 || es.at(cur).key == k {
		x.byHash[h] = r
		return
	}
	if x.clash == nil {
		x.clash = make(map[ikey]ref)
	}
	x.clash[k] = r
}

// del drops key k if entry r holds it (entries must still carry their
// keys).
func (x *keyIndex) del(es *entries, k ikey, r ref) {
	h := x.hash(k)
	if cur := x.byHash[h]; cur == r && es.at(cur).key == k {
		delete(x.byHash, h)
		for ck, cr := range x.clash { // a clashing key moves up
			if x.hash(ck) == h {
				x.byHash[h] = cr
				delete(x.clash, ck)
				break
			}
		}
		return
	}
	if x.clash[k] == r {
		delete(x.clash, k)
	}
}

func (x *keyIndex) len() int { return len(x.byHash) + len(x.clash) }

// each calls f for every indexed entry.
func (x *keyIndex) each(f func(ref)) {
	for _, r := range x.byHash {
		f(r)
	}
	for _, r := range x.clash {
		f(r)
	}
}
