package leasestore

import (
	"fmt"
	"hash/maphash"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/netspawn/netspawn/dhcp/lease"
)

func rec(key, body string) []byte { return []byte("P ve-a " + key + " " + body + "\n") }

// TestLinkSetHashClash forces two keys onto one hash: both are kept, found,
// replaced and deleted independently.
func TestLinkSetHashClash(t *testing.T) {
	seed := maphash.MakeSeed()
	ls := newLinkSet("ve-a")
	if !ls.put(seed, "k1", rec("k1", "one"), 0, 0) {
		t.Fatal("k1 not new")
	}
	// Pretend k2 hashes like k1: its hash slot is taken by k1.
	h2 := maphash.String(seed, "k2")
	ls.byHash[h2] = ls.byHash[maphash.String(seed, "k1")]
	if !ls.put(seed, "k2", rec("k2", "two"), 0, 0) {
		t.Fatal("k2 not new")
	}
	if len(ls.clash) != 1 {
		t.Fatalf("clash map %v", ls.clash)
	}
	get := func(k string) string {
		s, ok := ls.find(maphash.String(seed, k), k)
		if !ok {
			return ""
		}
		return string(ls.rec(s))
	}
	if get("k2") != string(rec("k2", "two")) || get("k1") != string(rec("k1", "one")) {
		t.Fatalf("k1 %q k2 %q", get("k1"), get("k2"))
	}
	if ls.put(seed, "k2", rec("k2", "two, longer"), 0, 0) || get("k2") != string(rec("k2", "two, longer")) {
		t.Fatalf("k2 not replaced: %q", get("k2"))
	}
	if !ls.del(seed, "k2", 0, 0) || get("k2") != "" || get("k1") != string(rec("k1", "one")) {
		t.Fatalf("after deleting k2: k1 %q k2 %q", get("k1"), get("k2"))
	}
	if ls.del(seed, "k2", 0, 0) || !ls.del(seed, "k1", 0, 0) || ls.len() != 0 {
		t.Fatalf("deletes wrong, %d left", ls.len())
	}
}

// TestLinkSetCompaction replaces records with ones of other lengths until
// the arena has been compacted several times; every key keeps its last one.
func TestLinkSetCompaction(t *testing.T) {
	seed := maphash.MakeSeed()
	ls := newLinkSet("ve-a")
	want := map[string]string{}
	for round := 0; round < 200; round++ {
		for i := 0; i < 100; i++ {
			k := fmt.Sprintf("hw:%04x", i)
			r := rec(k, strings.Repeat("x", (round*13+i)%50))
			ls.put(seed, k, r, 0, 0)
			want[k] = string(r)
		}
		if round%7 == 0 {
			k := fmt.Sprintf("hw:%04x", round%100)
			ls.del(seed, k, 0, 0)
			delete(want, k)
		}
	}
	got := map[string]string{}
	ls.each(func(r []byte) { got[strings.Fields(string(r))[2]] = string(r) })
	if len(got) != len(want) || ls.len() != len(want) {
		t.Fatalf("%d records (len %d), want %d", len(got), ls.len(), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s = %q, want %q", k, got[k], v)
		}
	}
	if ls.arena.size > 1<<17+100*80 {
		t.Fatalf("arena not compacted: %d bytes", ls.arena.size)
	}
}

// TestStoreHoldsNoPointerPerLease: a store of many leases is a handful of
// heap objects, and they all come back after a restart.
func TestStoreHoldsNoPointerPerLease(t *testing.T) {
	const n = 50000
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	exp := time.Unix(1700000000, 0)
	var ch []lease.Change
	for i := 0; i < n; i++ {
		ch = append(ch, lease.Change{Lease: lease.Lease{Link: "ve-a", IP: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}),
			MAC: net.HardwareAddr{2, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)}, Hostname: "h", Expiry: exp, State: lease.Bound}})
		if len(ch) == 1000 {
			if err := s.Apply(ch); err != nil {
				t.Fatal(err)
			}
			ch = ch[:0]
		}
	}
	ch = nil
	runtime.GC()
	runtime.ReadMemStats(&after)
	if objs := int64(after.HeapObjects) - int64(before.HeapObjects); objs > n/50 {
		t.Fatalf("%d leases hold %d heap objects", n, objs)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got := len(s2.Leases("ve-a")); got != n || s2.Len() != n {
		t.Fatalf("%d leases back (Len %d), want %d", got, s2.Len(), n)
	}
}

// Growing the arena adds chunks: a record, once past the first chunk, stays
// where it is however many records follow, and no chunk outgrows its size.
func TestArenaGrowsWithoutCopying(t *testing.T) {
	var a arena
	rec := []byte("P ve-a hw:020000000001 10.0.0.1 020000000001 - 1700000000000000000 bound \"\"\n")
	var sps []span
	for i := 0; i < 2000; i++ {
		sps = append(sps, a.add(rec))
	}
	p := &a.at(sps[1500])[0]
	for i := 0; i < 20000; i++ {
		sps = append(sps, a.add(rec))
	}
	if &a.at(sps[1500])[0] != p {
		t.Fatal("a record moved when the arena grew")
	}
	for _, c := range a.chunks {
		if len(c) > 1<<arenaShift {
			t.Fatalf("chunk of %d bytes", len(c))
		}
	}
	for _, sp := range sps {
		if string(a.at(sp)) != string(rec) {
			t.Fatalf("record at %+v: %q", sp, a.at(sp))
		}
	}
	big := make([]byte, 1<<arenaShift+10)
	if sp := a.add(big); len(a.at(sp)) != len(big) {
		t.Fatal("record longer than a chunk not kept")
	}
	if sp := a.add(rec); string(a.at(sp)) != string(rec) {
		t.Fatal("record after a long one not kept")
	}
}

// TestLinkSetEntries drives a set as a lease table does, with entry numbers
// (lease.Change.Entry) that stay with a key until it is deleted and are then
// reused, mixed with changes without a number, renumberings (bindAll, as
// after a table is made anew) and numbers reused without a deletion seen.
// The set must always hold exactly the last record of every live key, once.
func TestLinkSetEntries(t *testing.T) {
	seed := maphash.MakeSeed()
	ls := newLinkSet("ve-a")
	want := map[string]string{}  // key -> record
	entry := map[string]uint32{} // key -> its number in the "table"
	byEntry := map[uint32]string{}
	var free []uint32
	next := uint32(1)
	gen := uint64(1)
	maxBound := 0
	number := func(k string) uint32 {
		if e, ok := entry[k]; ok {
			return e
		}
		var e uint32
		if n := len(free); n > 0 {
			e, free = free[n-1], free[:n-1]
		} else {
			e, next = next, next+1
		}
		entry[k], byEntry[e] = e, k
		return e
	}
	forget := func(k string) {
		if e, ok := entry[k]; ok {
			delete(entry, k)
			delete(byEntry, e)
			free = append(free, e)
		}
	}
	check := func(step int) {
		t.Helper()
		got := map[string]string{}
		ls.each(func(r []byte) {
			k := strings.Fields(string(r))[2]
			if _, dup := got[k]; dup {
				t.Fatalf("step %d: %s stored twice", step, k)
			}
			got[k] = string(r)
		})
		if len(got) != len(want) || ls.len() != len(want) {
			t.Fatalf("step %d: %d records (len %d), want %d", step, len(got), ls.len(), len(want))
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("step %d: %s = %q, want %q", step, k, got[k], v)
			}
		}
		maxBound = max(maxBound, ls.bound)
		if ls.bound+len(ls.byHash)+len(ls.clash) != len(want) {
			t.Fatalf("step %d: %d bound + %d hashed + %d clashing for %d records", step, ls.bound, len(ls.byHash), len(ls.clash), len(want))
		}
	}
	rnd := uint64(1)
	rand := func(n int) int { rnd = rnd*6364136223846793005 + 1442695040888963407; return int(rnd>>33) % n }
	retired := map[string]bool{} // keys the table dropped without a deletion
	for step := 0; step < 30000; step++ {
		k := fmt.Sprintf("hw:%04x", rand(300))
		if retired[k] {
			continue
		}
		switch op := rand(100); {
		case op < 60: // the table records a change
			e := number(k)
			if rand(20) == 0 {
				e = 0 // a caller without numbers
			}
			r := rec(k, strings.Repeat("y", rand(40)))
			if isNew := ls.put(seed, k, r, e, gen); isNew != (want[k] == "") {
				t.Fatalf("step %d: put %s reported new=%v", step, k, isNew)
			}
			want[k] = string(r)
		case op < 90: // the table deletes the key
			e := number(k)
			if rand(20) == 0 {
				e = 0
			}
			if had := ls.del(seed, k, e, gen); had != (want[k] != "") {
				t.Fatalf("step %d: del %s reported %v", step, k, had)
			}
			delete(want, k)
			forget(k)
		case op < 92: // a table made anew: every key numbered afresh, told
			// to the set (Store.Bind) or not
			gen++
			entry, byEntry, free, next = map[string]uint32{}, map[uint32]string{}, nil, 1
			for k := range want {
				if rand(10) > 0 { // some stored keys the new table does not hold
					number(k)
				}
			}
			if rand(2) == 0 {
				ls.bindAll(seed, gen, func(key string) uint32 { return entry[key] })
			}
		case op < 93: // the table dropped k without a deletion (as Restore
			// may) and gave its number to a new key; k's record stays
			k2 := fmt.Sprintf("hw:%04x", 300+step)
			if e, ok := entry[k]; ok && want[k] != "" {
				delete(entry, k)
				retired[k] = true
				entry[k2], byEntry[e] = e, k2
				r := rec(k2, "reused")
				if !ls.put(seed, k2, r, e, gen) {
					t.Fatalf("step %d: put %s not new", step, k2)
				}
				want[k2] = string(r)
			}
		default:
			check(step)
		}
	}
	check(-1)
	if maxBound < 100 {
		t.Fatalf("at most %d records bound by number at once", maxBound)
	}
}
