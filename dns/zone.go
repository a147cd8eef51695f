package dns

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// Record is what a Source knows about one machine name.
type Record struct {
	// Name is the machine name as registered (lower case, no domain).
	Name string
	// IPv4 and IPv6 are the machine's managed addresses, each family in
	// the order the controller gave them.
	IPv4 []netip.Addr
	IPv6 []netip.Addr
	// View is the zone the machine belongs to ("" for plain ve- links).
	View string
}

// Source is the name source the controller implements (or feeds through
// a Zone). Lookups must be cheap and safe for concurrent use.
type Source interface {
	// Lookup finds a machine by its bare name (one label, lower case).
	Lookup(name string) (Record, bool)
	// LookupAddr finds the machine that owns a managed address.
	LookupAddr(ip netip.Addr) (Record, bool)
}

// Zone is a thread-safe in-memory Source. The controller calls Set and
// Delete on every change; lookups see changes at once.
type Zone struct {
	mu     sync.RWMutex
	names  map[string]*Record
	byAddr map[netip.Addr]*Record
}

// NewZone returns an empty zone.
func NewZone() *Zone {
	return &Zone{names: map[string]*Record{}, byAddr: map[netip.Addr]*Record{}}
}

// Canonical returns the lookup key for a machine name: lower case,
// without a trailing dot.
func Canonical(name string) string {
	name = strings.TrimSuffix(name, ".")
	for i := 0; i < len(name); i++ {
		if c := name[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(name)
		}
	}
	return name
}

// Set publishes (or replaces) name with addrs in view. Invalid and
// unspecified addresses are ignored; IPv4-mapped IPv6 addresses count as
// IPv4. An empty name is ignored.
func (z *Zone) Set(name string, addrs []netip.Addr, view string) {
	name = Canonical(name)
	if name == "" {
		return
	}
	r := &Record{Name: name, View: view}
	for _, a := range addrs {
		a = a.Unmap().WithZone("")
		if !a.IsValid() || a.IsUnspecified() {
			continue
		}
		if a.Is4() {
			if !slices.Contains(r.IPv4, a) {
				r.IPv4 = append(r.IPv4, a)
			}
		} else if !slices.Contains(r.IPv6, a) {
			r.IPv6 = append(r.IPv6, a)
		}
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	z.deleteLocked(name)
	z.names[name] = r
	for _, a := range r.IPv4 {
		z.byAddr[a] = r
	}
	for _, a := range r.IPv6 {
		z.byAddr[a] = r
	}
}

// Delete removes name; deleting an unknown name does nothing.
func (z *Zone) Delete(name string) {
	name = Canonical(name)
	z.mu.Lock()
	defer z.mu.Unlock()
	z.deleteLocked(name)
}

func (z *Zone) deleteLocked(name string) {
	old, ok := z.names[name]
	if !ok {
		return
	}
	delete(z.names, name)
	for _, list := range [][]netip.Addr{old.IPv4, old.IPv6} {
		for _, a := range list {
			if z.byAddr[a] == old {
				delete(z.byAddr, a)
			}
		}
	}
}

// Len returns the number of names.
func (z *Zone) Len() int {
	z.mu.RLock()
	defer z.mu.RUnlock()
	return len(z.names)
}

// Lookup implements Source. The returned record's slices must not be
// modified by the caller.
func (z *Zone) Lookup(name string) (Record, bool) {
	name = Canonical(name)
	z.mu.RLock()
	r, ok := z.names[name]
	z.mu.RUnlock()
	if !ok {
		return Record{}, false
	}
	return *r, true
}

// LookupAddr implements Source.
func (z *Zone) LookupAddr(ip netip.Addr) (Record, bool) {
	ip = ip.Unmap().WithZone("")
	z.mu.RLock()
	r, ok := z.byAddr[ip]
	z.mu.RUnlock()
	if !ok {
		return Record{}, false
	}
	return *r, true
}
