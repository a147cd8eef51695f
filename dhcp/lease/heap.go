package lease

// expHeap is a min-heap of entries by expiry with positions kept in the
// entries, so that renewals move an entry instead of adding stale items.
type expHeap struct{ items []*entry }

func (h *expHeap) Len() int { return len(h.items) }

func (h *expHeap) less(i, j int) bool { return h.items[i].Expiry.Before(h.items[j].Expiry) }

func (h *expHeap) swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].heapIdx = i
	h.items[j].heapIdx = j
}

func (h *expHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h *expHeap) down(i int) {
	n := len(h.items)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			return
		}
		h.swap(i, m)
		i = m
	}
}

// set inserts e or moves it after its expiry changed.
func (h *expHeap) set(e *entry) {
	if e.heapIdx < 0 || e.heapIdx >= len(h.items) || h.items[e.heapIdx] != e {
		e.heapIdx = len(h.items)
		h.items = append(h.items, e)
		h.up(e.heapIdx)
		return
	}
	h.up(e.heapIdx)
	h.down(e.heapIdx)
}

// remove takes e out of the heap if it is in it.
func (h *expHeap) remove(e *entry) {
	i := e.heapIdx
	if i < 0 || i >= len(h.items) || h.items[i] != e {
		e.heapIdx = -1
		return
	}
	last := len(h.items) - 1
	if i != last {
		h.swap(i, last)
	}
	h.items[last] = nil
	h.items = h.items[:last]
	e.heapIdx = -1
	if i != last {
		h.up(i)
		h.down(i)
	}
}
