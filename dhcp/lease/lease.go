// Package lease is the pure DHCPv4 lease state machine of one link: it decides
// which address a client is offered, whether a request is acknowledged or
// refused, and when leases expire. It does no I/O; every change it makes is
// recorded so that the caller can persist it before answering the client.
package lease

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
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

func (c Client) ikey() ikey { return keyOf(c.ClientID, c.MAC) }

// Change is one modification of the table, in the order it happened.
type Change struct {
	Lease   Lease
	Deleted bool
	// Entry is the lease's number in its table: the same in every change
	// of one key for as long as the table keeps the key, and given to
	// another key only after this key's Deleted change (or, in Restore,
	// before any change is recorded). A store can index its records by it.
	Entry uint32
	// Numbering names the table whose numbers Entry is in: every table
	// made in the process has its own, and numbers anew (see EntryOf).
	Numbering uint64
}

// numberings gives each table its Numbering.
var numberings atomic.Uint64

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

// The table keeps its leases in pointer-free values: entries in one slice,
// their client ids and host names in one byte arena, the indexes in maps and
// arrays of plain values. The garbage collector then has nothing to trace
// per lease, which is what made a table of many thousands of leases cost
// every request (see docs/dhcp.md).

// ref names an entry: its index in Table.ents. 0 is no entry.
type ref = uint32

// entryChunk is how many entries a chunk of the table holds. The entries
// live in chunks so that growing the table never copies it: as one slice, a
// table of 200,000 leases grew by copying 18 MB to new memory, 50-220 ms of
// CPU under the link's lock, a stall of up to a second at a quarter of a
// core. Only a chunk being filled grows (by append), at most this many
// entries.
const entryChunk = 1024

// entries is the table's entries by ref: chunks of plain values, each a
// heap object without pointers.
type entries struct {
	chunks [][]entry
	n      int
}

func (es *entries) at(r ref) *entry { return &es.chunks[r/entryChunk][r%entryChunk] }

func (es *entries) len() int { return es.n }

// add appends a zero entry and returns its ref.
func (es *entries) add() ref {
	if es.n%entryChunk == 0 {
		var c []entry
		if es.n > 0 {
			c = make([]entry, 0, entryChunk) // the first grows from small
		}
		es.chunks = append(es.chunks, c)
	}
	last := &es.chunks[len(es.chunks)-1]
	*last = append(*last, entry{})
	es.n++
	return ref(es.n - 1)
}

// maxMAC is the longest hardware address kept (chaddr is 16 bytes).
const maxMAC = 16

// entry is one lease of the table.
type entry struct {
	key     ikey
	expiry  int64 // Unix nanoseconds; noExpiry for the zero time
	ip      uint32
	varOff  uint32
	idLen   uint16 // client id: blob[varOff:varOff+idLen]
	hostLen uint16 // host name: next hostLen bytes
	state   State
	macLen  uint8
	mac     [maxMAC]byte
}

const noExpiry = int64(-1 << 63)

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return noExpiry
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == noExpiry {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// ikey is Key in a fixed-size, comparable form: the kind of key and its
// bytes. A client id longer than the array is represented by its SHA-256.
type ikey struct {
	kind byte // 'i' client id, 'h' hardware address, 'H' hashed long client id, 'd' declined address
	n    uint8
	b    [32]byte
}

func keyOf(clientID []byte, mac net.HardwareAddr) ikey {
	var k ikey
	switch {
	case len(clientID) > len(k.b):
		k.kind, k.n, k.b = 'H', 32, sha256.Sum256(clientID)
	case len(clientID) > 0:
		k.kind, k.n = 'i', uint8(len(clientID))
		copy(k.b[:], clientID)
	default:
		k.kind, k.n = 'h', uint8(min(len(mac), len(k.b)))
		copy(k.b[:], mac)
	}
	return k
}

func declinedIKey(ip uint32) ikey {
	k := ikey{kind: 'd', n: 4}
	binary.BigEndian.PutUint32(k.b[:], ip)
	return k
}

// Table holds the leases of one link. It is not safe for concurrent use.
type Table struct {
	cfg      Config
	ents     entries // entry 0 is unused: ref 0 is no entry
	freeEnts []ref   // unused slots of ents
	blob     []byte  // client ids and host names of the entries
	garbage  int     // bytes of blob no entry refers to any more
	byKey    keyIndex
	byIP     ipIndex
	resByMAC map[string]*reservation
	resByIP  map[netip.Addr]*reservation

	poolStart uint32
	poolSize  uint32
	hwm       uint32   // offsets below hwm have been handed out at least once
	free      []uint32 // freed offsets, oldest first (may hold stale ones)
	freeHead  int
	queued    []uint64  // bit per offset: already in free
	exp       []expItem // min-heap by expiry, lazy (heap.go)
	changes   []Change
	numbering uint64
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
		numbering: numberings.Add(1),
		cfg:       cfg,
		byKey:     newKeyIndex(),
		resByMAC:  make(map[string]*reservation),
		resByIP:   make(map[netip.Addr]*reservation),
	}
	t.ents.add() // ref 0: no entry
	if cfg.PoolStart.IsValid() || cfg.PoolEnd.IsValid() {
		if !cfg.Subnet.Contains(cfg.PoolStart) || !cfg.Subnet.Contains(cfg.PoolEnd) || cfg.PoolEnd.Less(cfg.PoolStart) {
			return nil, fmt.Errorf("lease table %s: pool %v-%v not a range inside %v", cfg.Link, cfg.PoolStart, cfg.PoolEnd, cfg.Subnet)
		}
		t.poolStart = u32(cfg.PoolStart)
		t.poolSize = u32(cfg.PoolEnd) - t.poolStart + 1
		t.queued = make([]uint64, (t.poolSize+63)/64)
	}
	t.byIP = newIPIndex(t.poolStart, t.poolSize)
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

func (t *Table) record(r ref) { t.changes = append(t.changes, t.change(r, false)) }

// change is entry r's change as it stands.
func (t *Table) change(r ref, deleted bool) Change {
	return Change{Lease: t.snapshot(r), Deleted: deleted, Entry: r, Numbering: t.numbering}
}

// Numbering is the value of Change.Numbering in this table's changes.
func (t *Table) Numbering() uint64 { return t.numbering }

// --- entries ---

// ipOf is the entry's address (invalid when it has none).
func (t *Table) ipOf(r ref) netip.Addr {
	if e := t.ents.at(r); e.ip != 0 {
		return addr(e.ip)
	}
	return netip.Addr{}
}

func (t *Table) clientID(e *entry) []byte { return t.blob[e.varOff : e.varOff+uint32(e.idLen)] }

func (t *Table) hostname(e *entry) []byte {
	o := e.varOff + uint32(e.idLen)
	return t.blob[o : o+uint32(e.hostLen)]
}

// snapshot returns entry r as a Lease that shares no memory with the table.
func (t *Table) snapshot(r ref) Lease {
	e := t.ents.at(r)
	l := Lease{Link: t.cfg.Link, IP: t.ipOf(r), Expiry: fromUnixNano(e.expiry), State: e.state}
	if e.macLen > 0 {
		l.MAC = append(net.HardwareAddr(nil), e.mac[:e.macLen]...)
	}
	if e.idLen > 0 {
		l.ClientID = append([]byte(nil), t.clientID(e)...)
	}
	if e.hostLen > 0 {
		l.Hostname = string(t.hostname(e))
	}
	return l
}

// newEntry makes an empty entry under key k.
func (t *Table) newEntry(k ikey) ref {
	var r ref
	if n := len(t.freeEnts); n > 0 {
		r = t.freeEnts[n-1]
		t.freeEnts = t.freeEnts[:n-1]
	} else {
		r = t.ents.add()
	}
	*t.ents.at(r) = entry{key: k}
	t.byKey.set(&t.ents, k, r)
	return r
}

// freeEntry gives entry r's slot back; it is in no index any more.
func (t *Table) freeEntry(r ref) {
	e := t.ents.at(r)
	t.garbage += int(e.idLen) + int(e.hostLen)
	*e = entry{}
	t.freeEnts = append(t.freeEnts, r)
}

func (t *Table) setMAC(r ref, mac net.HardwareAddr) {
	e := t.ents.at(r)
	e.macLen = uint8(copy(e.mac[:], mac))
}

// setVar stores an entry's client id and host name in the arena.
func (t *Table) setVar(r ref, clientID, hostname []byte) {
	if len(clientID) > 0xffff {
		clientID = nil // never used as a key (see Client); not kept
	}
	if len(hostname) > 0xffff {
		hostname = hostname[:0xffff]
	}
	e := t.ents.at(r)
	if bytes.Equal(t.clientID(e), clientID) && bytes.Equal(t.hostname(e), hostname) {
		return
	}
	if len(clientID) == int(e.idLen) && len(hostname) == int(e.hostLen) {
		copy(t.blob[e.varOff:], clientID)
		copy(t.blob[e.varOff+uint32(e.idLen):], hostname)
		return
	}
	t.garbage += int(e.idLen) + int(e.hostLen)
	if t.garbage > 1<<16 && t.garbage > len(t.blob)/2 {
		t.compactBlob()
		e = t.ents.at(r)
		t.garbage += int(e.idLen) + int(e.hostLen)
	}
	e.varOff = uint32(len(t.blob))
	e.idLen, e.hostLen = uint16(len(clientID)), uint16(len(hostname))
	t.blob = append(t.blob, clientID...)
	t.blob = append(t.blob, hostname...)
}

// compactBlob rewrites the arena with only what entries refer to.
func (t *Table) compactBlob() {
	nb := make([]byte, 0, len(t.blob)-t.garbage+1<<12)
	for i := 1; i < t.ents.len(); i++ {
		e := t.ents.at(ref(i))
		n := uint32(e.idLen) + uint32(e.hostLen)
		if n == 0 {
			e.varOff = 0
			continue
		}
		off := uint32(len(nb))
		nb = append(nb, t.blob[e.varOff:e.varOff+n]...)
		e.varOff = off
	}
	t.blob, t.garbage = nb, 0
}

// Get returns the lease held under a client's key.
func (t *Table) Get(c Client) (Lease, bool) {
	r := t.byKey.get(&t.ents, c.ikey())
	if r == 0 {
		return Lease{}, false
	}
	return t.snapshot(r), true
}

// Holder returns the lease associated with an address.
func (t *Table) Holder(ip netip.Addr) (Lease, bool) {
	if !ip.Is4() {
		return Lease{}, false
	}
	r := t.byIP.get(u32(ip))
	if r == 0 {
		return Lease{}, false
	}
	return t.snapshot(r), true
}

// EntryOf is the entry number (as in Change.Entry) of the lease held under
// key, a Lease.Key; 0 when the table holds none.
func (t *Table) EntryOf(key string) uint32 {
	var k ikey
	switch {
	case strings.HasPrefix(key, "id:"):
		id, err := hex.DecodeString(key[len("id:"):])
		if err != nil || len(id) == 0 {
			return 0
		}
		k = keyOf(id, nil)
	case strings.HasPrefix(key, "hw:"):
		mac, err := hex.DecodeString(key[len("hw:"):])
		if err != nil || len(mac) > maxMAC {
			return 0
		}
		k = keyOf(nil, mac)
	case strings.HasPrefix(key, "declined:"):
		ip, err := netip.ParseAddr(key[len("declined:"):])
		if err != nil || !ip.Is4() {
			return 0
		}
		k = declinedIKey(u32(ip))
	default:
		return 0
	}
	return t.byKey.get(&t.ents, k)
}

// Leases returns every lease of the table.
func (t *Table) Leases() []Lease {
	out := make([]Lease, 0, t.byKey.len())
	t.byKey.each(func(r ref) { out = append(out, t.snapshot(r)) })
	return out
}

// Len is the number of leases in the table.
func (t *Table) Len() int { return t.byKey.len() }

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

// holder is the entry associated with ip (0: none).
func (t *Table) holder(ip netip.Addr) ref {
	if !ip.Is4() {
		return 0
	}
	return t.byIP.get(u32(ip))
}

// owns reports whether entry r is the one associated with its address.
func (t *Table) owns(r ref) bool {
	e := t.ents.at(r)
	return e.ip != 0 && t.byIP.get(e.ip) == r
}

// takeable reports whether ip can be given to a new client: not reserved
// and not held exclusively.
func (t *Table) takeable(ip netip.Addr, for_ ikey) bool {
	if r := t.resByIP[ip]; r != nil {
		return false
	}
	if h := t.holder(ip); h != 0 && t.ents.at(h).key != for_ && t.ents.at(h).state.hard() {
		return false
	}
	return t.usable(ip)
}

// allocate finds a free pool address: never-used ones first, then the ones
// freed longest ago. Amortised O(1): each offset is skipped at most once per
// time it is queued.
func (t *Table) allocate(key ikey, now time.Time) (netip.Addr, bool) {
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

// claim associates ip with entry r, detaching whatever was there before.
func (t *Table) claim(r ref, ip netip.Addr) {
	v := u32(ip)
	e := t.ents.at(r)
	if e.ip == v && t.byIP.get(v) == r {
		return
	}
	if h := t.byIP.get(v); h != 0 && h != r {
		t.drop(h) // a soft holder loses its association
	}
	e = t.ents.at(r)
	if t.owns(r) {
		old := e.ip
		t.byIP.del(old)
		t.pushFree(addr(old))
	}
	e.ip = v
	t.byIP.set(v, r)
}

// drop deletes an entry entirely.
func (t *Table) drop(r ref) {
	e := t.ents.at(r)
	t.byKey.del(&t.ents, e.key, r)
	if t.owns(r) {
		t.byIP.del(e.ip)
		t.pushFree(addr(e.ip))
	}
	t.changes = append(t.changes, t.change(r, true))
	t.freeEntry(r)
}

func (t *Table) entryFor(c Client) ref {
	k := c.ikey()
	r := t.byKey.get(&t.ents, k)
	if r == 0 {
		r = t.newEntry(k)
	}
	t.setClient(r, c)
	return r
}

// setClient brings entry r, which carries c's key, up to date with what
// the client sent.
func (t *Table) setClient(r ref, c Client) {
	t.setMAC(r, c.MAC)
	if len(c.ClientID) > 0 {
		t.setVar(r, c.ClientID, t.hostname(t.ents.at(r)))
	}
}

func (t *Table) setHostname(r ref, h string) {
	e := t.ents.at(r)
	if string(t.hostname(e)) == h {
		return
	}
	t.setVar(r, t.clientID(e), []byte(h))
}

func (t *Table) setState(r ref, s State, expiry time.Time) {
	e := t.ents.at(r)
	was, old := e.state.hard(), e.expiry
	e.state = s
	e.expiry = unixNano(expiry)
	// A hard entry has an item at or before its expiry already, unless its
	// expiry moved earlier (see heap.go).
	if s.hard() && (!was || e.expiry < old) {
		t.expPush(r, e.expiry)
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
	key := c.ikey()
	var ip netip.Addr
	if res := t.resByMAC[string(c.MAC)]; res != nil {
		ip = res.ip
	} else if r := t.byKey.get(&t.ents, key); r != 0 && t.owns(r) && t.inPool(t.ipOf(r)) && t.resByIP[t.ipOf(r)] == nil {
		ip = t.ipOf(r)
	} else if requested.IsValid() && t.inPool(requested) && t.takeable(requested, key) {
		ip = requested
	} else {
		var ok bool
		if ip, ok = t.allocate(key, now); !ok {
			return Lease{}, false
		}
	}
	r := t.entryFor(c)
	if h := t.holder(ip); h != 0 && h != r && t.ents.at(h).state.hard() {
		// Only a reservation gets here: it always wins.
		t.drop(h)
	}
	t.claim(r, ip)
	t.setHostname(r, t.hostnameFor(c))
	if e := t.ents.at(r); e.state != Bound || e.expiry <= unixNano(now) {
		t.setState(r, Offered, now.Add(t.cfg.OfferTime))
	}
	return t.snapshot(r), true
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
	key := c.ikey()
	if res := t.resByMAC[string(c.MAC)]; res != nil {
		if res.ip != ip {
			return Lease{}, NAK
		}
	} else {
		if t.resByIP[ip] != nil {
			return Lease{}, NAK
		}
		if !t.inPool(ip) {
			// Outside the pool, only an address the client already holds
			// (a reservation since removed) is kept until it expires.
			r := t.byKey.get(&t.ents, key)
			if r == 0 || t.ipOf(r) != ip || t.ents.at(r).state != Bound || t.ents.at(r).expiry <= unixNano(now) {
				return Lease{}, NAK
			}
		}
	}
	h := t.holder(ip)
	if h != 0 && t.ents.at(h).key != key && t.ents.at(h).state.hard() {
		if t.resByMAC[string(c.MAC)] == nil {
			return Lease{}, NAK
		}
		t.drop(h) // reservation wins
		h = 0
	}
	// The entry holding the address is usually the client's own (its
	// OFFER's): found through the address, it needs no lookup by key.
	var r ref
	if h != 0 && t.ents.at(h).key == key {
		r = h
		t.setClient(r, c)
	} else {
		r = t.entryFor(c)
	}
	t.claim(r, ip)
	t.setHostname(r, t.hostnameFor(c))
	t.setState(r, Bound, now.Add(t.cfg.LeaseTime))
	t.record(r)
	return t.snapshot(r), ACK
}

// Release ends a client's lease on ip. The address stays associated with the
// client until another one needs it.
func (t *Table) Release(c Client, ip netip.Addr) (Lease, bool) {
	r := t.byKey.get(&t.ents, c.ikey())
	if r == 0 || t.ipOf(r) != ip || !t.owns(r) {
		return Lease{}, false
	}
	e := t.ents.at(r)
	if e.state != Bound && e.state != Offered {
		return Lease{}, false
	}
	t.setState(r, Released, fromUnixNano(e.expiry))
	t.pushFree(ip)
	t.record(r)
	return t.snapshot(r), true
}

// Decline sets ip aside for DeclineTime after a client found it in use, and
// forgets the client's claim on it so that its next DISCOVER gets another.
func (t *Table) Decline(c Client, ip netip.Addr, now time.Time) bool {
	r := t.byKey.get(&t.ents, c.ikey())
	if r == 0 || t.ipOf(r) != ip || !t.owns(r) {
		return false
	}
	t.drop(r)
	d := t.newEntry(declinedIKey(u32(ip)))
	t.claim(d, ip)
	t.setState(d, Declined, now.Add(t.cfg.DeclineTime))
	t.record(d)
	return true
}

// Reclaim expires every lease whose time has come and reports whether any
// address was freed.
func (t *Table) Reclaim(now time.Time) bool {
	freed := false
	n := unixNano(now)
	for len(t.exp) > 0 && t.exp[0].at <= n {
		it := t.expPop()
		if !t.expHeld(it) {
			continue
		}
		r := it.r
		if e := t.ents.at(r); e.expiry > n {
			t.expPush(r, e.expiry) // renewed since it was queued
			continue
		}
		freed = true
		e := t.ents.at(r)
		switch e.state {
		case Declined:
			t.drop(r)
		case Bound:
			e.state = Expired
			t.pushFree(t.ipOf(r))
			t.record(r)
		default: // Offered
			e.state = Expired
			t.pushFree(t.ipOf(r))
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
	res := &reservation{mac: string(mac), ip: ip, hostname: hostname}
	t.resByMAC[res.mac] = res
	t.resByIP[ip] = res
	if h := t.holder(ip); h != 0 && !bytes.Equal(t.ents.at(h).mac[:t.ents.at(h).macLen], mac) {
		t.drop(h)
	}
	return nil
}

// Unreserve removes the reservation of a hardware address. A lease bound to
// it runs until it expires.
func (t *Table) Unreserve(mac net.HardwareAddr) {
	res := t.resByMAC[string(mac)]
	if res == nil {
		return
	}
	delete(t.resByMAC, res.mac)
	delete(t.resByIP, res.ip)
	if t.holder(res.ip) == 0 {
		t.pushFree(res.ip)
	}
}

// Restore puts back a persisted lease (at start). Hard leases win over soft
// ones on the same address; a later record for the same key replaces an
// earlier one. A lease with an IPv6 address or a hardware address longer
// than DHCP's 16 bytes (which no packet carries) is skipped.
func (t *Table) Restore(l Lease, now time.Time) {
	if !l.IP.Is4() || !t.cfg.Subnet.Contains(l.IP) || l.State == Offered || l.State == 0 || len(l.MAC) > maxMAC {
		return
	}
	if l.State.hard() && !l.Expiry.After(now) {
		if l.State == Declined {
			return
		}
		l.State = Expired
	}
	key := keyOf(l.ClientID, l.MAC)
	if l.State == Declined && len(l.MAC) == 0 && len(l.ClientID) == 0 {
		key = declinedIKey(u32(l.IP))
	}
	v := u32(l.IP)
	if old := t.byKey.get(&t.ents, key); old != 0 {
		if t.owns(old) {
			t.byIP.del(t.ents.at(old).ip)
		}
		t.byKey.del(&t.ents, key, old)
		t.freeEntry(old)
	}
	if h := t.byIP.get(v); h != 0 {
		if t.ents.at(h).state.hard() && !l.State.hard() {
			return
		}
		t.byKey.del(&t.ents, t.ents.at(h).key, h)
		t.byIP.del(v)
		t.freeEntry(h)
	}
	r := t.newEntry(key)
	t.setMAC(r, l.MAC)
	t.setVar(r, l.ClientID, []byte(l.Hostname))
	e := t.ents.at(r)
	e.ip, e.state, e.expiry = v, l.State, unixNano(l.Expiry)
	t.byIP.set(v, r)
	if l.State.hard() {
		t.expPush(r, e.expiry)
	} else {
		t.pushFree(l.IP)
	}
}
