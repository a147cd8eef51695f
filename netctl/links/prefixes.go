package links

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Prefixes is a live view of the host's IPv4 address and route prefixes,
// kept current by rtnetlink notifications, so that picking a free subnet
// does not dump every address and route of the host each time (that cost
// grows with the number of containers).
type Prefixes struct {
	ach     chan netlink.AddrUpdate
	rch     chan netlink.RouteUpdate
	mu      sync.Mutex
	entries map[string]entry
	stale   atomic.Bool
	done    chan struct{}
	wg      sync.WaitGroup
}

type entry struct {
	p   netip.Prefix
	idx int
}

// WatchPrefixes subscribes to address and route changes in the current
// network namespace, then loads the current state.
func (h *Handle) WatchPrefixes() (*Prefixes, error) {
	ach := make(chan netlink.AddrUpdate, 256)
	rch := make(chan netlink.RouteUpdate, 256)
	p := &Prefixes{entries: map[string]entry{}, done: make(chan struct{}), ach: ach, rch: rch}
	onErr := func(error) { p.stale.Store(true) }
	if err := netlink.AddrSubscribeWithOptions(ach, p.done, netlink.AddrSubscribeOptions{ErrorCallback: onErr, ReceiveBufferSize: 1 << 20}); err != nil {
		return nil, fmt.Errorf("subscribe to address changes: %w", err)
	}
	if err := netlink.RouteSubscribeWithOptions(rch, p.done, netlink.RouteSubscribeOptions{ErrorCallback: onErr, ReceiveBufferSize: 1 << 20}); err != nil {
		close(p.done)
		return nil, fmt.Errorf("subscribe to route changes: %w", err)
	}
	p.wg.Add(1)
	go p.loop(ach, rch)
	// Load what exists; events that raced with this dump can only leave a
	// deleted prefix behind (blocking a subnet needlessly), never hide one.
	addrs, err := retry(func() ([]netlink.Addr, error) { return h.h.AddrList(nil, unix.AF_UNSPEC) })
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	routes, err := retry(func() ([]netlink.Route, error) {
		return h.h.RouteListFiltered(unix.AF_UNSPEC, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("list routes: %w", err)
	}
	p.mu.Lock()
	for _, a := range addrs {
		p.addAddr(a.IPNet, a.LinkIndex, true)
	}
	for _, r := range routes {
		p.addRoute(r, true)
	}
	p.mu.Unlock()
	return p, nil
}

func (p *Prefixes) addAddr(n *net.IPNet, idx int, add bool) {
	pn, ok := prefixOf(n)
	if !ok || !pn.Addr().Is4() && !usable6(pn) {
		return
	}
	k := fmt.Sprintf("a|%d|%s", idx, pn)
	if add {
		p.entries[k] = entry{pn.Masked(), idx}
	} else {
		delete(p.entries, k)
	}
}

func (p *Prefixes) addRoute(r netlink.Route, add bool) {
	pr, ok := routePrefix(r)
	if !ok {
		pr, ok = routePrefix6(r)
	}
	if !ok {
		return
	}
	k := fmt.Sprintf("r|%d|%d|%s|%d|%d", r.Table, r.LinkIndex, pr, r.Priority, r.Tos)
	if add {
		p.entries[k] = entry{pr, r.LinkIndex}
	} else {
		delete(p.entries, k)
	}
}

func (p *Prefixes) loop(ach <-chan netlink.AddrUpdate, rch <-chan netlink.RouteUpdate) {
	defer p.wg.Done()
	for {
		select {
		case <-p.done:
			return
		case u, ok := <-ach:
			if !ok {
				p.stale.Store(true)
				ach = nil
				continue
			}
			p.mu.Lock()
			p.addAddr(&u.LinkAddress, u.LinkIndex, u.NewAddr)
			p.mu.Unlock()
		case u, ok := <-rch:
			if !ok {
				p.stale.Store(true)
				rch = nil
				continue
			}
			p.mu.Lock()
			p.addRoute(u.Route, u.Type == unix.RTM_NEWROUTE)
			p.mu.Unlock()
		}
	}
}

// InUse returns the IPv4 prefixes outside the links skip selects. ok is
// false when the view may be incomplete (a notification was lost); the
// caller then dumps with Handle.InUse.
func (p *Prefixes) InUse(skip func(index int) bool) (out []netip.Prefix, ok bool) {
	return p.inUse(true, skip)
}

// InUse6 is InUse for IPv6 (what Handle.InUse6 dumps).
func (p *Prefixes) InUse6(skip func(index int) bool) (out []netip.Prefix, ok bool) {
	return p.inUse(false, skip)
}

func (p *Prefixes) inUse(v4 bool, skip func(index int) bool) (out []netip.Prefix, ok bool) {
	if p.stale.Load() {
		return nil, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drain()
	for _, e := range p.entries {
		if e.p.Addr().Is4() == v4 && (skip == nil || !skip(e.idx)) {
			out = append(out, e.p)
		}
	}
	return out, true
}

// drain applies updates already queued (the caller holds p.mu), so that a
// change made just before a registration is seen by it.
func (p *Prefixes) drain() {
	for {
		select {
		case u, ok := <-p.ach:
			if !ok {
				return
			}
			p.addAddr(&u.LinkAddress, u.LinkIndex, u.NewAddr)
		case u, ok := <-p.rch:
			if !ok {
				return
			}
			p.addRoute(u.Route, u.Type == unix.RTM_NEWROUTE)
		default:
			return
		}
	}
}

// Forget drops everything recorded for a deleted link (the kernel does not
// announce every route it flushes with a link).
func (p *Prefixes) Forget(index int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, e := range p.entries {
		if e.idx == index {
			delete(p.entries, k)
		}
	}
}

// Close stops the subscriptions.
func (p *Prefixes) Close() {
	select {
	case <-p.done:
	default:
		close(p.done)
	}
	p.wg.Wait()
}
