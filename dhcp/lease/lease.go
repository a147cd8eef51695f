// Package lease is the pure DHCPv4 lease state machine of one link: it decides
// which address a client is offered, whether a request is acknowledged or
// refused, and when leases expire. It does no I/O; every change it makes is
// recorded so that the caller can persist it before answering the client.
package lease

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// State is where a lease is in its life.
type State uint8

// Lease states. Offered leases are never persisted; Released and Expired
// leases keep their address associated with the client (so that it gets the
// same one back) until another client needs it.
const (
	Offered State = iota + 1
	Bound
	Released
	Expired
	Declined
)

var stateNames = [...]string{"", "offered", "bound", "released", "expired", "declined"}

func (s State) String() string {
	if int(s) < len(stateNames) && s != 0 {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// ParseState is the inverse of State.String.
func ParseState(s string) (State, error) {
	for i, n := range stateNames {
		if i > 0 && n == s {
			return State(i), nil
		}
	}
	return 0, fmt.Errorf("unknown lease state %q", s)
}

// hard reports whether a lease in this state holds its address exclusively.
func (s State) hard() bool { return s == Offered || s == Bound || s == Declined }

// Lease is one client's claim on one address of a link.
type Lease struct {
	Link     string
	IP       netip.Addr
	MAC      net.HardwareAddr
	ClientID []byte
	Hostname string
	Expiry   time.Time
	State    State
}

// Key is the identity under which the lease is kept: the client identifier
// (option 61) when the client sent one, its hardware address otherwise.
func (l Lease) Key() string {
	if l.State == Declined && len(l.MAC) == 0 && len(l.ClientID) == 0 {
		return declinedKey(l.IP)
	}
	return Key(l.ClientID, l.MAC)
}

// Key builds a lease key from a client identifier and a hardware address.
func Key(clientID []byte, mac net.HardwareAddr) string {
	if len(clientID) > 0 {
		return "id:" + hex.EncodeToString(clientID)
	}
	return "hw:" + hex.EncodeToString(mac)
}

func declinedKey(ip netip.Addr) string { return "declined:" + ip.String() }

// Client identifies the sender of a message.
type Client struct {
	MAC      net.HardwareAddr
	ClientID []byte
	Hostname string // option 12 sent by the client, if any
}

func (c Client) key() string { return Key(c.ClientID, c.MAC) }

// Change is one modification of the table, in the order it happened.
type Change struct {
	Lease   Lease
	Deleted bool
}

// Verdict is the answer to a REQUEST.
type Verdict uint8

// Verdicts of Table.Request.
const (
	Ignore Verdict = iota // stay silent
	ACK
	NAK
)

func (v Verdict) String() string {
	switch v {
	case ACK:
		return "ACK"
	case NAK:
		return "NAK"
	}
	return "ignore"
}

// Config describes the addresses a table hands out.
type Config struct {
	Link               string
	Subnet             netip.Prefix
	ServerIP           netip.Addr
	PoolStart, PoolEnd netip.Addr // dynamic range; invalid or unset: reservations only
	LeaseTime          time.Duration
	OfferTime          time.Duration // how long an offered address is held (default 30s)
	DeclineTime        time.Duration // how long a declined address is set aside (default 10m)
}

type reservation struct {
	mac      string // raw bytes of the hardware address
	ip       netip.Addr
	hostname string
}

type entry struct {
	Lease
	key     string
	heapIdx int // index in the expiry heap; -1 when not in it
}

// Table holds the leases of one link. It is not safe for concurrent use.
type Table struct {
	cfg      Config
	byKey    map[string]*entry
	byIP     map[netip.Addr]*entry
	resByMAC map[string]*reservation
	resByIP  map[netip.Addr]*reservation

	poolStart uint32
	poolSize  uint32
	hwm       uint32   // offsets below hwm have been handed out at least once
	free      []uint32 // freed offsets, oldest first (may hold stale ones)
	freeHead  int
	queued    []uint64 // bit per offset: already in free
	exp       expHeap
	changes   []Change
}

// New makes an empty table.
func New(cfg Config) (*Table, error) {
	if !cfg.Subnet.IsValid() || !cfg.Subnet.Addr().Is4() {
		return nil, fmt.Errorf("lease table %s: subnet %v is not an IPv4 prefix", cfg.Link, cfg.Subnet)
	}
	cfg.Subnet = cfg.Subnet.Masked()
	if !cfg.Subnet.Contains(cfg.ServerIP) {
		return nil, fmt.Errorf("lease table %s: server address %v outside %v", cfg.Link, cfg.ServerIP, cfg.Subnet)
	}
	if cfg.LeaseTime <= 0 {
		cfg.LeaseTime = time.Hour
	}
	if cfg.OfferTime <= 0 {
		cfg.OfferTime = 30 * time.Second
	}
	if cfg.DeclineTime <= 0 {
		cfg.DeclineTime = 10 * time.Minute
	}
	t := &Table{
		cfg:      cfg,
		byKey:    make(map[string]*entry),
		byIP:     make(map[netip.Addr]*entry),
		resByMAC: make(map[string]*reservation),
		resByIP:  make(map[netip.Addr]*reservation),
	}
	if cfg.PoolStart.IsValid() || cfg.PoolEnd.IsValid() {
		if !cfg.Subnet.Contains(cfg.PoolStart) || !cfg.Subnet.Contains(cfg.PoolEnd) || cfg.PoolEnd.Less(cfg.PoolStart) {
			return nil, fmt.Errorf("lease table %s: pool %v-%v not a range inside %v", cfg.Link, cfg.PoolStart, cfg.PoolEnd, cfg.Subnet)
		}
		t.poolStart = u32(cfg.PoolStart)
		t.poolSize = u32(cfg.PoolEnd) - t.poolStart + 1
		t.queued = make([]uint64, (t.poolSize+63)/64)
	}
	return t, nil
}

// Config returns the table's configuration (with defaults filled in).
func (t *Table) Config() Config { return t.cfg }

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// usable reports whether ip may be given to a client at all on this link.
func (t *Table) usable(ip netip.Addr) bool {
	if !ip.Is4() || !t.cfg.Subnet.Contains(ip) || ip == t.cfg.ServerIP {
		return false
	}
	if t.cfg.Subnet.Bits() <= 30 {
		v := u32(ip)
		mask := ^uint32(0) >> t.cfg.Subnet.Bits()
		if v&mask == 0 || v&mask == mask {
			return false // network or broadcast address
		}
	}
	return true
}

func (t *Table) inPool(ip netip.Addr) bool {
	if t.poolSize == 0 || !ip.Is4() {
		return false
	}
	return u32(ip)-t.poolStart < t.poolSize
}

// TakeChanges returns the changes made since the last call and forgets them.
func (t *Table) TakeChanges() []Change {
	c := t.changes
	t.changes = nil
	return c
}

func (t *Table) record(e *entry) { t.changes = append(t.changes, Change{Lease: e.snapshot()}) }

func (e *entry) snapshot() Lease {
	l := e.Lease
	l.MAC = append(net.HardwareAddr(nil), e.MAC...)
	l.ClientID = append([]byte(nil), e.ClientID...)
	return l
}

// Get returns the lease held under a client's key.
func (t *Table) Get(c Client) (Lease, bool) {
	e := t.byKey[c.key()]
	if e == nil {
		return Lease{}, false
	}
	return e.snapshot(), true
}

// Holder returns the lease associated with an address.
func (t *Table) Holder(ip netip.Addr) (Lease, bool) {
	e := t.byIP[ip]
	if e == nil {
		return Lease{}, false
	}
	return e.snapshot(), true
}

// Leases returns every lease of the table.
func (t *Table) Leases() []Lease {
	out := make([]Lease, 0, len(t.byKey))
	for _, e := range t.byKey {
		out = append(out, e.snapshot())
	}
	return out
}

// Len is the number of leases in the table.
func (t *Table) Len() int { return len(t.byKey) }

// --- address bookkeeping ---

func (t *Table) pushFree(ip netip.Addr) {
	if !t.inPool(ip) {
		return
	}
	off := u32(ip) - t.poolStart
	if t.queued[off/64]&(1<<(off%64)) != 0 {
		return
	}
	t.queued[off/64] |= 1 << (off % 64)
	if t.freeHead > 0 && t.freeHead*2 >= len(t.free) {
		n := copy(t.free, t.free[t.freeHead:])
		t.free = t.free[:n]
		t.freeHead = 0
	}
	t.free = append(t.free, off)
}

// takeable reports whether ip can be given to a new client: not reserved
// and not held exclusively.
func (t *Table) takeable(ip netip.Addr, for_ string) bool {
	if r := t.resByIP[ip]; r != nil {
		return false
	}
	if h := t.byIP[ip]; h != nil && h.key != for_ && h.State.hard() {
		return false
	}
	return t.usable(ip)
}

// allocate finds a free pool address: never-used ones first, then the ones
// freed longest ago. Amortised O(1): each offset is skipped at most once per
// time it is queued.
func (t *Table) allocate(key string, now time.Time) (netip.Addr, bool) {
	for pass := 0; pass < 2; pass++ {
		for t.hwm < t.poolSize {
			ip := addr(t.poolStart + t.hwm)
			t.hwm++
			if t.takeable(ip, key) {
				return ip, true
			}
		}
		for t.freeHead < len(t.free) {
			off := t.free[t.freeHead]
			t.freeHead++
			t.queued[off/64] &^= 1 << (off % 64)
			ip := addr(t.poolStart + off)
			if t.takeable(ip, key) {
				return ip, true
			}
		}
		if pass == 0 && !t.Reclaim(now) {
			break
		}
	}
	return netip.Addr{}, false
}

// claim associates ip with entry e, detaching whatever was there before.
func (t *Table) claim(e *entry, ip netip.Addr) {
	if e.IP == ip && t.byIP[ip] == e {
		return
	}
	if h := t.byIP[ip]; h != nil && h != e {
		t.drop(h) // a soft holder loses its association
	}
	if e.IP.IsValid() && t.byIP[e.IP] == e {
		delete(t.byIP, e.IP)
		t.pushFree(e.IP)
	}
	e.IP = ip
	t.byIP[ip] = e
}

// drop deletes an entry entirely.
func (t *Table) drop(e *entry) {
	if t.byKey[e.key] == e {
		delete(t.byKey, e.key)
	}
	if e.IP.IsValid() && t.byIP[e.IP] == e {
		delete(t.byIP, e.IP)
		t.pushFree(e.IP)
	}
	t.exp.remove(e)
	t.changes = append(t.changes, Change{Lease: e.snapshot(), Deleted: true})
}

func (t *Table) entryFor(c Client) *entry {
	k := c.key()
	e := t.byKey[k]
	if e == nil {
		e = &entry{key: k, heapIdx: -1}
		e.Link = t.cfg.Link
		t.byKey[k] = e
	}
	e.MAC = append(e.MAC[:0], c.MAC...)
	if len(c.ClientID) > 0 {
		e.ClientID = append(e.ClientID[:0], c.ClientID...)
	}
	return e
}

func (t *Table) setState(e *entry, s State, expiry time.Time) {
	e.State = s
	e.Expiry = expiry
	if s.hard() {
		t.exp.set(e)
	} else {
		t.exp.remove(e)
	}
}

func (t *Table) hostnameFor(c Client) string {
	if r := t.resByMAC[string(c.MAC)]; r != nil && r.hostname != "" {
		return r.hostname
	}
	return c.Hostname
}

// --- protocol operations ---

// Offer picks the address to offer a client in answer to DISCOVER: its
// reservation, else the address it already has, else the one it asks for
// (option 50) when that is free, else a free pool address. It holds the
// address for OfferTime. ok is false when there is nothing to offer.
func (t *Table) Offer(c Client, requested netip.Addr, now time.Time) (Lease, bool) {
	t.Reclaim(now)
	key := c.key()
	var ip netip.Addr
	if r := t.resByMAC[string(c.MAC)]; r != nil {
		ip = r.ip
	} else if e := t.byKey[key]; e != nil && e.IP.IsValid() && t.byIP[e.IP] == e && t.inPool(e.IP) && t.resByIP[e.IP] == nil {
		ip = e.IP
	} else if requested.IsValid() && t.inPool(requested) && t.takeable(requested, key) {
		ip = requested
	} else {
		var ok bool
		if ip, ok = t.allocate(key, now); !ok {
			return Lease{}, false
		}
	}
	e := t.entryFor(c)
	if h := t.byIP[ip]; h != nil && h != e && h.State.hard() {
		// Only a reservation gets here: it always wins.
		t.drop(h)
	}
	t.claim(e, ip)
	e.Hostname = t.hostnameFor(c)
	if e.State != Bound || !e.Expiry.After(now) {
		t.setState(e, Offered, now.Add(t.cfg.OfferTime))
	}
	return e.snapshot(), true
}

// Request decides a REQUEST for address ip (option 50, or ciaddr when
// renewing or rebinding). The server is authoritative for its link: it NAKs
// addresses outside the subnet, addresses reserved for another client or
// held by one, and addresses it would not hand out; it acknowledges the
// client's own address, or a free one of the pool.
func (t *Table) Request(c Client, ip netip.Addr, now time.Time) (Lease, Verdict) {
	t.Reclaim(now)
	if !ip.IsValid() {
		return Lease{}, Ignore
	}
	if !t.usable(ip) {
		return Lease{}, NAK
	}
	key := c.key()
	if r := t.resByMAC[string(c.MAC)]; r != nil {
		if r.ip != ip {
			return Lease{}, NAK
		}
	} else {
		if t.resByIP[ip] != nil {
			return Lease{}, NAK
		}
		if !t.inPool(ip) {
			// Outside the pool, only an address the client already holds
			// (a reservation since removed) is kept until it expires.
			e := t.byKey[key]
			if e == nil || e.IP != ip || e.State != Bound || !e.Expiry.After(now) {
				return Lease{}, NAK
			}
		}
	}
	if h := t.byIP[ip]; h != nil && h.key != key && h.State.hard() {
		if t.resByMAC[string(c.MAC)] == nil {
			return Lease{}, NAK
		}
		t.drop(h) // reservation wins
	}
	e := t.entryFor(c)
	t.claim(e, ip)
	e.Hostname = t.hostnameFor(c)
	t.setState(e, Bound, now.Add(t.cfg.LeaseTime))
	t.record(e)
	return e.snapshot(), ACK
}

// Release ends a client's lease on ip. The address stays associated with the
// client until another one needs it.
func (t *Table) Release(c Client, ip netip.Addr) (Lease, bool) {
	e := t.byKey[c.key()]
	if e == nil || e.IP != ip || t.byIP[ip] != e || (e.State != Bound && e.State != Offered) {
		return Lease{}, false
	}
	t.setState(e, Released, e.Expiry)
	t.pushFree(ip)
	t.record(e)
	return e.snapshot(), true
}

// Decline sets ip aside for DeclineTime after a client found it in use, and
// forgets the client's claim on it so that its next DISCOVER gets another.
func (t *Table) Decline(c Client, ip netip.Addr, now time.Time) bool {
	e := t.byKey[c.key()]
	if e == nil || e.IP != ip || t.byIP[ip] != e {
		return false
	}
	t.drop(e)
	d := &entry{key: declinedKey(ip), heapIdx: -1}
	d.Link = t.cfg.Link
	t.byKey[d.key] = d
	t.claim(d, ip)
	t.setState(d, Declined, now.Add(t.cfg.DeclineTime))
	t.record(d)
	return true
}

// Reclaim expires every lease whose time has come and reports whether any
// address was freed.
func (t *Table) Reclaim(now time.Time) bool {
	freed := false
	for t.exp.Len() > 0 && !t.exp.items[0].Expiry.After(now) {
		e := t.exp.items[0]
		t.exp.remove(e)
		freed = true
		switch e.State {
		case Declined:
			t.drop(e)
		case Bound:
			e.State = Expired
			t.pushFree(e.IP)
			t.record(e)
		default: // Offered
			e.State = Expired
			t.pushFree(e.IP)
		}
	}
	return freed
}

// Reserve ties ip to a hardware address: that client always gets it, with
// hostname as its host name. Another client holding ip loses it.
func (t *Table) Reserve(mac net.HardwareAddr, ip netip.Addr, hostname string) error {
	if !t.usable(ip) {
		return fmt.Errorf("reserve %v on %s: address not usable in %v", ip, t.cfg.Link, t.cfg.Subnet)
	}
	if len(mac) == 0 {
		return fmt.Errorf("reserve %v on %s: empty hardware address", ip, t.cfg.Link)
	}
	if old := t.resByIP[ip]; old != nil && old.mac != string(mac) {
		delete(t.resByMAC, old.mac)
	}
	if old := t.resByMAC[string(mac)]; old != nil {
		delete(t.resByIP, old.ip)
		t.pushFree(old.ip)
	}
	r := &reservation{mac: string(mac), ip: ip, hostname: hostname}
	t.resByMAC[r.mac] = r
	t.resByIP[ip] = r
	if h := t.byIP[ip]; h != nil && !bytes.Equal(h.MAC, mac) {
		t.drop(h)
	}
	return nil
}

// Unreserve removes the reservation of a hardware address. A lease bound to
// it runs until it expires.
func (t *Table) Unreserve(mac net.HardwareAddr) {
	r := t.resByMAC[string(mac)]
	if r == nil {
		return
	}
	delete(t.resByMAC, r.mac)
	delete(t.resByIP, r.ip)
	if t.byIP[r.ip] == nil {
		t.pushFree(r.ip)
	}
}

// Restore puts back a persisted lease (at start). Hard leases win over soft
// ones on the same address; a later record for the same key replaces an
// earlier one.
func (t *Table) Restore(l Lease, now time.Time) {
	if !l.IP.IsValid() || !t.cfg.Subnet.Contains(l.IP) || l.State == Offered || l.State == 0 {
		return
	}
	if l.State.hard() && !l.Expiry.After(now) {
		if l.State == Declined {
			return
		}
		l.State = Expired
	}
	key := l.Key()
	if old := t.byKey[key]; old != nil {
		t.exp.remove(old)
		if t.byIP[old.IP] == old {
			delete(t.byIP, old.IP)
		}
		delete(t.byKey, key)
	}
	if h := t.byIP[l.IP]; h != nil {
		if h.State.hard() && !l.State.hard() {
			return
		}
		t.exp.remove(h)
		delete(t.byKey, h.key)
		delete(t.byIP, l.IP)
	}
	e := &entry{Lease: l, key: key, heapIdx: -1}
	e.Link = t.cfg.Link
	t.byKey[key] = e
	t.byIP[l.IP] = e
	if l.State.hard() {
		t.exp.set(e)
	} else {
		t.pushFree(l.IP)
	}
}
