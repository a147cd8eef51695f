package lease

import "testing"

func TestIPIndex(t *testing.T) {
	const start = 0x0a000010
	x := newIPIndex(start, 3000)
	cases := []struct {
		ip uint32
		r  ref
	}{
		{start, 1},              // first pool address
		{start + ipPage - 1, 2}, // last of the first page
		{start + ipPage, 3},     // first of the second page
		{start + 2999, 4},       // last pool address
		{start + 3000, 5},       // just past the pool: map
		{start - 1, 6},          // just before the pool: map
		{0xc0a80001, 7},         // elsewhere
	}
	for _, c := range cases {
		if got := x.get(c.ip); got != 0 {
			t.Fatalf("get(%#x) before set = %d", c.ip, got)
		}
		x.set(c.ip, c.r)
	}
	x.set(start, 1) // again: no second count
	if x.len() != len(cases) {
		t.Fatalf("len = %d, want %d", x.len(), len(cases))
	}
	for _, c := range cases {
		if got := x.get(c.ip); got != c.r {
			t.Errorf("get(%#x) = %d, want %d", c.ip, got, c.r)
		}
	}
	if got := x.get(start + 1); got != 0 {
		t.Errorf("unset neighbour = %d", got)
	}
	if got := x.get(start + 2*ipPage + 1); got != 0 { // page never made
		t.Errorf("untouched page = %d", got)
	}
	for _, c := range cases {
		x.del(c.ip)
		x.del(c.ip) // twice: no second count
		if got := x.get(c.ip); got != 0 {
			t.Errorf("get(%#x) after del = %d", c.ip, got)
		}
	}
	if x.len() != 0 {
		t.Fatalf("len after deleting all = %d", x.len())
	}
}

// A pool larger than maxPaged is paged up to the bound and mapped above it.
func TestIPIndexHugePool(t *testing.T) {
	x := newIPIndex(0, 1<<31)
	if len(x.pages) != maxPaged/ipPage {
		t.Fatalf("%d page slots, want %d", len(x.pages), maxPaged/ipPage)
	}
	x.set(maxPaged-1, 1)
	x.set(maxPaged, 2)
	if x.get(maxPaged-1) != 1 || x.get(maxPaged) != 2 || len(x.other) != 1 || x.len() != 2 {
		t.Fatalf("paged %d mapped %d other %v", x.get(maxPaged-1), x.get(maxPaged), x.other)
	}
}
