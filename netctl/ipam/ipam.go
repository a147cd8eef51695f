// Package ipam hands out container subnets the way networkd's
// Address=0.0.0.0/N does for container links (a free subnet from
// 192.168.0.0/16, then 172.16.0.0/12, then 10.0.0.0/8, skipping anything
// already on the host), except that allocations persist: an owner (a machine
// or a zone) gets the same subnet and addresses every time while they stay
// free. It is pure: the caller supplies the prefixes in use on the host and
// persists the state.
package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"
)

// DefaultPools are networkd's IPv4 container pools, in the order it tries them.
var DefaultPools = []netip.Prefix{
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("10.0.0.0/8"),
}

// Sizes of the subnets handed out.
const (
	LinkBits = 28 // one ve- link: gateway .1, container .2
	ZoneBits = 24 // one zone bridge
)

// ErrExhausted is returned (wrapped) when no pool has a free subnet.
var ErrExhausted = errors.New("address pools exhausted")

// Allocation is one owner's subnet.
type Allocation struct {
	Subnet   netip.Prefix `json:"subnet"`
	Gateway  netip.Addr   `json:"gateway"`           // first host address (.1), on the host side
	Address  netip.Addr   `json:"address,omitempty"` // second host address (.2), the container's (link subnets only)
	LastUsed time.Time    `json:"last_used"`
}

// Allocator is the set of allocations over a list of pools. It is not safe
// for concurrent use; the caller serialises.
type Allocator struct {
	pools  []netip.Prefix
	allocs map[string]Allocation
}

// ParsePools parses a comma- or space-separated list of IPv4 prefixes.
func ParsePools(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("pool %q: %w", f, err)
		}
		if !p.Addr().Is4() {
			return nil, fmt.Errorf("pool %q: only IPv4 pools are supported", f)
		}
		if p.Bits() > LinkBits {
			return nil, fmt.Errorf("pool %q: smaller than one /%d link subnet", f, LinkBits)
		}
		out = append(out, p.Masked())
	}
	if len(out) == 0 {
		return nil, errors.New("no address pools given")
	}
	return out, nil
}

// New returns an allocator over pools (DefaultPools when empty) holding the
// saved allocations.
func New(pools []netip.Prefix, saved map[string]Allocation) *Allocator {
	if len(pools) == 0 {
		pools = DefaultPools
	}
	a := &Allocator{pools: pools, allocs: make(map[string]Allocation, len(saved))}
	for k, v := range saved {
		a.allocs[k] = v
	}
	return a
}

// Pools returns the pools in order.
func (a *Allocator) Pools() []netip.Prefix { return append([]netip.Prefix(nil), a.pools...) }

// Get returns owner's allocation, if any.
func (a *Allocator) Get(owner string) (Allocation, bool) {
	al, ok := a.allocs[owner]
	return al, ok
}

// All returns a copy of every allocation.
func (a *Allocator) All() map[string]Allocation {
	out := make(map[string]Allocation, len(a.allocs))
	for k, v := range a.allocs {
		out[k] = v
	}
	return out
}

// Restore records an allocation known from elsewhere (a running machine's
// saved state) when the owner has none.
func (a *Allocator) Restore(owner string, al Allocation) {
	if _, ok := a.allocs[owner]; !ok {
		a.allocs[owner] = al
	}
}

// Release forgets owner's allocation so its subnet can be handed out again.
func (a *Allocator) Release(owner string) { delete(a.allocs, owner) }

// Request describes one allocation.
type Request struct {
	Owner string
	Bits  int            // LinkBits or ZoneBits
	InUse []netip.Prefix // addresses and routes on the host, outside our own links
	// Active reports whether an owner is running now. When the pools are full,
	// the least recently used subnet of an owner that is not active is
	// reclaimed. Nil means every owner is active (no reclaim).
	Active func(owner string) bool
	Now    time.Time
	// Want, when valid, is the address the owner asks for: the subnet is
	// the one of Bits that holds it, and Want is the owner's address in it
	// (link subnets only). It needs no pool, only a subnet free on the host
	// and of other owners.
	Want netip.Addr
}

// ErrTaken says a wanted address's subnet is not free.
var ErrTaken = errors.New("address not available")

// Allocate returns owner's subnet: the saved one when it still is free on
// the host, else the first free subnet of the requested size, trying the
// pools in order.
func (a *Allocator) Allocate(r Request) (Allocation, error) {
	if r.Bits < 8 || r.Bits > 30 {
		return Allocation{}, fmt.Errorf("allocate for %s: invalid subnet size /%d", r.Owner, r.Bits)
	}
	if r.Now.IsZero() {
		r.Now = time.Now()
	}
	if r.Want.IsValid() {
		return a.allocateWanted(r)
	}
	if al, ok := a.allocs[r.Owner]; ok && al.Subnet.Bits() == r.Bits && !OverlapsAny(al.Subnet, r.InUse) {
		al.LastUsed = r.Now
		a.allocs[r.Owner] = al
		return al, nil
	}
	for {
		p, ok := a.firstFree(r.Owner, r.Bits, r.InUse)
		if ok {
			al := newAllocation(p, r.Bits, r.Now)
			a.allocs[r.Owner] = al
			return al, nil
		}
		if !a.reclaim(r) {
			return Allocation{}, fmt.Errorf("allocate a /%d for %s: %w (pools %s, %d subnets allocated); "+
				"configure larger pools or remove stale machines", r.Bits, r.Owner, ErrExhausted, joinPrefixes(a.pools), len(a.allocs))
		}
	}
}

// allocateWanted allocates the link subnet that holds r.Want.
func (a *Allocator) allocateWanted(r Request) (Allocation, error) {
	if !r.Want.Is4() || r.Bits <= ZoneBits {
		return Allocation{}, fmt.Errorf("allocate %s for %s: only an IPv4 address in a link subnet can be asked for", r.Want, r.Owner)
	}
	p := netip.PrefixFrom(r.Want, r.Bits).Masked()
	al := newAllocation(p, r.Bits, r.Now)
	last := addr(spanOf(p).hi)
	if r.Want == p.Addr() || r.Want == al.Gateway || r.Want == last {
		return Allocation{}, fmt.Errorf("allocate %s for %s: it is the network, gateway (%s) or broadcast address of %s; ask for one of %s to %s: %w",
			r.Want, r.Owner, al.Gateway, p, al.Gateway.Next(), addr(spanOf(p).hi-1), ErrTaken)
	}
	if OverlapsAny(p, r.InUse) {
		return Allocation{}, fmt.Errorf("allocate %s for %s: its subnet %s is in use on the host: %w", r.Want, r.Owner, p, ErrTaken)
	}
	for o, other := range a.allocs {
		if o != r.Owner && other.Subnet.Overlaps(p) {
			if r.Active != nil && !r.Active(o) {
				delete(a.allocs, o) // a stopped owner's: reclaimed
				continue
			}
			return Allocation{}, fmt.Errorf("allocate %s for %s: its subnet %s belongs to %s: %w", r.Want, r.Owner, p, o, ErrTaken)
		}
	}
	al.Address = r.Want
	a.allocs[r.Owner] = al
	return al, nil
}

// HasRoom reports whether Allocate would find a new owner a subnet of
// bits now (a free one, or one to reclaim).
func (a *Allocator) HasRoom(bits int, inUse []netip.Prefix, active func(string) bool) bool {
	if _, ok := a.firstFree("", bits, inUse); ok {
		return true
	}
	if active == nil {
		return false
	}
	for o := range a.allocs {
		if !active(o) {
			return true
		}
	}
	return false
}

func newAllocation(p netip.Prefix, bits int, now time.Time) Allocation {
	gw := p.Addr().Next()
	al := Allocation{Subnet: p, Gateway: gw, LastUsed: now}
	if bits > ZoneBits {
		al.Address = gw.Next()
	}
	return al
}

// reclaim drops the least recently used allocation of an inactive owner.
func (a *Allocator) reclaim(r Request) bool {
	if r.Active == nil {
		return false
	}
	victim := ""
	var oldest time.Time
	for owner, al := range a.allocs {
		if owner == r.Owner || r.Active(owner) {
			continue
		}
		if victim == "" || al.LastUsed.Before(oldest) {
			victim, oldest = owner, al.LastUsed
		}
	}
	if victim == "" {
		return false
	}
	delete(a.allocs, victim)
	return true
}

type span struct{ lo, hi uint32 } // inclusive

func spanOf(p netip.Prefix) span {
	p = p.Masked()
	lo := u32(p.Addr())
	size := uint32(1)<<(32-p.Bits()) - 1
	if p.Bits() == 0 {
		size = ^uint32(0)
	}
	return span{lo, lo + size}
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// firstFree walks each pool in address order, jumping past blocked spans.
func (a *Allocator) firstFree(owner string, bits int, inUse []netip.Prefix) (netip.Prefix, bool) {
	var blocked []span
	for _, p := range inUse {
		if p.Addr().Is4() || p.Addr().Is4In6() {
			blocked = append(blocked, spanOf(netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmapBits(p))))
		}
	}
	for o, al := range a.allocs {
		if o != owner {
			blocked = append(blocked, spanOf(al.Subnet))
		}
	}
	sort.Slice(blocked, func(i, j int) bool { return blocked[i].lo < blocked[j].lo })
	size := uint64(1) << (32 - bits)
	for _, pool := range a.pools {
		if pool.Bits() > bits {
			continue
		}
		ps := spanOf(pool)
		cur := uint64(ps.lo)
		for _, b := range blocked {
			if cur+size-1 > uint64(ps.hi) {
				break
			}
			if uint64(b.hi) < cur {
				continue
			}
			if uint64(b.lo) > cur+size-1 {
				break // the candidate ends before this block
			}
			// overlap: move past the block, aligned
			cur = (uint64(b.hi) + 1 + size - 1) &^ (size - 1)
		}
		if cur+size-1 <= uint64(ps.hi) {
			return netip.PrefixFrom(addr(uint32(cur)), bits), true
		}
	}
	return netip.Prefix{}, false
}

func unmapBits(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return 96
	}
	return 0
}

// OverlapsAny reports whether p overlaps a prefix of list (IPv4-mapped
// IPv6 prefixes count as IPv4).
func OverlapsAny(p netip.Prefix, list []netip.Prefix) bool {
	for _, q := range list {
		if q.Addr().Is4In6() {
			q = netip.PrefixFrom(q.Addr().Unmap(), q.Bits()-96)
		}
		if q.Overlaps(p) {
			return true
		}
	}
	return false
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}
