package links

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Prefixes is a live view of the host's IPv4 address and route prefixes,
// kept current by rtnetlink notifications, so that picking a free subnet
// does not dump every address and route of the host each time (that cost
// grows with the number of containers).
//
// The notifications come on a socket of its own, read by one goroutine. A
// reader of the view first sends a no-op request with an acknowledgement on
// that socket and waits until the reader meets the acknowledgement: the
// kernel queues it behind every notification already queued, so a change
// made before the caller asked (a route added just before a container
// starts) is always in the view it gets.
type Prefixes struct {
	f       *os.File // the notification socket, non-blocking
	seq     atomic.Uint32
	mu      sync.Mutex
	entries map[string]entry
	acked   uint32 // the last no-op acknowledged (under mu)
	cond    *sync.Cond
	stale   atomic.Bool
	done    chan struct{}
	wg      sync.WaitGroup
}

type entry struct {
	p   netip.Prefix
	idx int
}

// syncTimeout bounds the wait for the reader to reach a no-op's
// acknowledgement; past it the view counts as incomplete.
const syncTimeout = 2 * time.Second

// WatchPrefixes subscribes to address and route changes in the current
// network namespace, then loads the current state.
func (h *Handle) WatchPrefixes() (*Prefixes, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open rtnetlink socket for address and route changes: %w", err)
	}
	groups := uint32(0)
	for _, g := range []uint32{unix.RTNLGRP_IPV4_IFADDR, unix.RTNLGRP_IPV6_IFADDR, unix.RTNLGRP_IPV4_ROUTE, unix.RTNLGRP_IPV6_ROUTE} {
		groups |= 1 << (g - 1)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("subscribe to address and route changes: %w", err)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 1<<20) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	}
	p := &Prefixes{f: os.NewFile(uintptr(fd), "rtnetlink"), entries: map[string]entry{}, done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	// Load what exists, holding the view's lock until the dump is in: the
	// events since the subscription above wait for it and are applied
	// after it, in order. Applied before it, a deletion that raced with
	// the dump was undone by it, and the deleted prefix stayed in the view
	// for good: a machine whose old link was being deleted when netspawnd
	// started then found its own subnet "in use on the host" and was moved
	// to another, and its old one given to the next machine.
	p.mu.Lock()
	p.wg.Add(1)
	go p.loop()
	addrs, err := retry(func() ([]netlink.Addr, error) { return h.h.AddrList(nil, unix.AF_UNSPEC) })
	if err != nil {
		p.mu.Unlock()
		p.Close()
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	routes, err := retry(func() ([]netlink.Route, error) {
		return h.h.RouteListFiltered(unix.AF_UNSPEC, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		p.mu.Unlock()
		p.Close()
		return nil, fmt.Errorf("list routes: %w", err)
	}
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

// loop reads notifications and acknowledgements until Close.
func (p *Prefixes) loop() {
	defer p.wg.Done()
	buf := make([]byte, 1<<16)
	for {
		n, err := p.f.Read(buf)
		if err != nil {
			select {
			case <-p.done:
				return
			default:
			}
			if errors.Is(err, unix.ENOBUFS) {
				// Notifications were lost: the view is incomplete for good
				// (callers dump instead).
				p.stale.Store(true)
				continue
			}
			if errors.Is(err, os.ErrClosed) {
				return
			}
			p.stale.Store(true)
			p.wakeAll()
			return
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			p.stale.Store(true)
			continue
		}
		p.mu.Lock()
		for i := range msgs {
			p.apply(&msgs[i])
		}
		p.mu.Unlock()
	}
}

// apply records one message (the caller holds p.mu).
func (p *Prefixes) apply(m *syscall.NetlinkMessage) {
	switch m.Header.Type {
	case unix.NLMSG_ERROR:
		// The acknowledgement of a no-op sent by sync. Two syncs may send
		// in the other order than they numbered: acked only moves on.
		if m.Header.Seq != 0 && int32(m.Header.Seq-p.acked) > 0 {
			p.acked = m.Header.Seq
			p.cond.Broadcast()
		}
	case unix.RTM_NEWADDR, unix.RTM_DELADDR:
		if n, idx, ok := parseAddr(m); ok {
			p.addAddr(n, idx, m.Header.Type == unix.RTM_NEWADDR)
		}
	case unix.RTM_NEWROUTE, unix.RTM_DELROUTE:
		if r, ok := parseRoute(m); ok {
			p.addRoute(r, m.Header.Type == unix.RTM_NEWROUTE)
		}
	}
}

// parseAddr reads an address notification: its prefix (the local address
// where there is one, as netlink.AddrList reports it) and its link.
func parseAddr(m *syscall.NetlinkMessage) (*net.IPNet, int, bool) {
	if len(m.Data) < unix.SizeofIfAddrmsg {
		return nil, 0, false
	}
	msg := (*unix.IfAddrmsg)(unsafe.Pointer(&m.Data[0]))
	attrs, err := syscall.ParseNetlinkRouteAttr(m)
	if err != nil {
		return nil, 0, false
	}
	var ip net.IP
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.IFA_LOCAL:
			ip = net.IP(a.Value)
		case unix.IFA_ADDRESS:
			if ip == nil {
				ip = net.IP(a.Value)
			}
		}
	}
	bits := 8 * len(ip)
	if (bits != 32 && bits != 128) || int(msg.Prefixlen) > bits {
		return nil, 0, false
	}
	return &net.IPNet{IP: ip, Mask: net.CIDRMask(int(msg.Prefixlen), bits)}, int(msg.Index), true
}

// parseRoute reads what addRoute uses of a route notification.
func parseRoute(m *syscall.NetlinkMessage) (netlink.Route, bool) {
	if len(m.Data) < unix.SizeofRtMsg {
		return netlink.Route{}, false
	}
	msg := (*unix.RtMsg)(unsafe.Pointer(&m.Data[0]))
	attrs, err := syscall.ParseNetlinkRouteAttr(m)
	if err != nil {
		return netlink.Route{}, false
	}
	r := netlink.Route{Table: int(msg.Table), Tos: int(msg.Tos), Family: int(msg.Family)}
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.RTA_DST:
			bits := 8 * len(a.Value)
			if (bits == 32 || bits == 128) && int(msg.Dst_len) <= bits {
				r.Dst = &net.IPNet{IP: net.IP(a.Value), Mask: net.CIDRMask(int(msg.Dst_len), bits)}
			}
		case unix.RTA_TABLE:
			if len(a.Value) == 4 {
				r.Table = int(binary.NativeEndian.Uint32(a.Value))
			}
		case unix.RTA_OIF:
			if len(a.Value) == 4 {
				r.LinkIndex = int(binary.NativeEndian.Uint32(a.Value))
			}
		case unix.RTA_PRIORITY:
			if len(a.Value) == 4 {
				r.Priority = int(binary.NativeEndian.Uint32(a.Value))
			}
		}
	}
	return r, true
}

// sync waits until every notification the kernel had queued for the view
// when it was called has been applied. It reports false when it could not
// tell (the view is then treated as incomplete).
func (p *Prefixes) sync() bool {
	seq := p.seq.Add(1)
	if seq == 0 {
		seq = p.seq.Add(1)
	}
	hdr := unix.NlMsghdr{Len: unix.SizeofNlMsghdr, Type: unix.NLMSG_NOOP, Flags: unix.NLM_F_REQUEST | unix.NLM_F_ACK, Seq: seq}
	req := (*[unix.SizeofNlMsghdr]byte)(unsafe.Pointer(&hdr))[:]
	rc, err := p.f.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return serr != unix.EAGAIN
	}); err != nil || serr != nil {
		return false
	}
	deadline := time.AfterFunc(syncTimeout, p.wakeAll)
	defer deadline.Stop()
	start := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	// Sequence numbers are compared as a window, so wrapping is harmless.
	for int32(p.acked-seq) < 0 {
		if p.stale.Load() || time.Since(start) >= syncTimeout {
			return false
		}
		p.cond.Wait()
	}
	return true
}

func (p *Prefixes) wakeAll() {
	p.mu.Lock()
	p.cond.Broadcast()
	p.mu.Unlock()
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
	if p.stale.Load() || !p.sync() {
		return nil, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.entries {
		if e.p.Addr().Is4() == v4 && (skip == nil || !skip(e.idx)) {
			out = append(out, e.p)
		}
	}
	return out, true
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

// Close stops the subscription.
func (p *Prefixes) Close() {
	select {
	case <-p.done:
		return
	default:
		close(p.done)
	}
	p.f.Close() // wakes the reader
	p.wg.Wait()
}
