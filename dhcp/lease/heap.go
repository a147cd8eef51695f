package lease

// The expiry heap: a min-heap of entries by expiry in Table.exp, with each
// entry's position kept in the entry, so that renewals move an entry instead
// of adding stale items. It holds refs, not pointers.

func (t *Table) heapLess(i, j int) bool {
	return t.ents.at(t.exp[i]).expiry < t.ents.at(t.exp[j]).expiry
}

func (t *Table) heapSwap(i, j int) {
	t.exp[i], t.exp[j] = t.exp[j], t.exp[i]
	t.ents.at(t.exp[i]).heapIdx = int32(i)
	t.ents.at(t.exp[j]).heapIdx = int32(j)
}

func (t *Table) heapUp(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !t.heapLess(i, p) {
			return
		}
		t.heapSwap(i, p)
		i = p
	}
}

func (t *Table) heapDown(i int) {
	n := len(t.exp)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && t.heapLess(r, l) {
			m = r
		}
		if !t.heapLess(m, i) {
			return
		}
		t.heapSwap(i, m)
		i = m
	}
}

// inHeap reports whether entry r is in the heap.
func (t *Table) inHeap(r ref) bool {
	i := t.ents.at(r).heapIdx
	return i >= 0 && int(i) < len(t.exp) && t.exp[i] == r
}

// heapSet inserts r or moves it after its expiry changed.
func (t *Table) heapSet(r ref) {
	if !t.inHeap(r) {
		t.ents.at(r).heapIdx = int32(len(t.exp))
		t.exp = append(t.exp, r)
		t.heapUp(len(t.exp) - 1)
		return
	}
	i := int(t.ents.at(r).heapIdx)
	t.heapUp(i)
	t.heapDown(int(t.ents.at(r).heapIdx))
}

// heapRemove takes r out of the heap if it is in it.
func (t *Table) heapRemove(r ref) {
	if !t.inHeap(r) {
		t.ents.at(r).heapIdx = -1
		return
	}
	i := int(t.ents.at(r).heapIdx)
	last := len(t.exp) - 1
	if i != last {
		t.heapSwap(i, last)
	}
	t.exp = t.exp[:last]
	t.ents.at(r).heapIdx = -1
	if i != last {
		t.heapUp(i)
		t.heapDown(i)
	}
}
