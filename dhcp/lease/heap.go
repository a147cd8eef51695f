package lease

// The expiry queue: a min-heap of (time, entry) items in Table.exp. It is
// lazy: every entry that holds its address (a hard state) has an item at or
// before its expiry. An entry whose expiry moves later keeps its item; when
// that item reaches the top, Reclaim finds the entry's expiry still ahead
// and queues it again at that time. An entry whose expiry moves earlier
// gets a second item; an item whose entry no longer holds its address is
// dropped when it reaches the top. Items carry their time, so ordering them
// never reads the entries. A REQUEST (an offer's 30 s becoming the lease's
// hour) does no work here at all.
//
// The heap used to hold refs and keep each entry's position in the entry.
// With 200,000 leases, each comparison was then a cache miss into the
// table, and each REQUEST moved its entry down 18 levels, writing every
// swapped entry's position back into the table.

// expItem is one item of the queue: entry r expires at at (Unix ns).
type expItem struct {
	at int64
	r  ref
}

// expHeld reports whether the entry of it still holds its address (the
// item may have been queued for an earlier holder of the slot: Reclaim
// checks the entry's own expiry).
func (t *Table) expHeld(it expItem) bool {
	return int(it.r) < t.ents.len() && t.ents.at(it.r).state.hard()
}

// expPush queues entry r to expire at at.
func (t *Table) expPush(r ref, at int64) {
	if len(t.exp) >= 1024 && len(t.exp) > 2*t.byKey.len() {
		t.expCompact()
	}
	t.exp = append(t.exp, expItem{at: at, r: r})
	i := len(t.exp) - 1
	for i > 0 {
		p := (i - 1) / 2
		if t.exp[p].at <= t.exp[i].at {
			return
		}
		t.exp[i], t.exp[p] = t.exp[p], t.exp[i]
		i = p
	}
}

// expPop takes the earliest item off the queue (which must not be empty).
func (t *Table) expPop() expItem {
	top := t.exp[0]
	last := len(t.exp) - 1
	t.exp[0] = t.exp[last]
	t.exp = t.exp[:last]
	t.expDown(0)
	return top
}

func (t *Table) expDown(i int) {
	n := len(t.exp)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && t.exp[r].at < t.exp[l].at {
			m = r
		}
		if t.exp[i].at <= t.exp[m].at {
			return
		}
		t.exp[i], t.exp[m] = t.exp[m], t.exp[i]
		i = m
	}
}

// expCompact drops the items of entries that no longer hold their address
// once the queue is twice the table's size (a released lease's item stays
// until its time comes), so that the queue stays within that bound.
func (t *Table) expCompact() {
	live := t.exp[:0]
	for _, it := range t.exp {
		if t.expHeld(it) {
			live = append(live, it)
		}
	}
	clear(t.exp[len(live):])
	t.exp = live
	for i := len(t.exp)/2 - 1; i >= 0; i-- {
		t.expDown(i)
	}
}
