package dns

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Cache limits.
const (
	DefaultCacheSize = 10000
	maxPositiveTTL   = time.Hour
	maxNegativeTTL   = 5 * time.Minute
	// DefaultMaxStale is how long past its TTL an answer is kept to be
	// served stale when the upstreams fail (RFC 8767 suggests one to
	// three days).
	DefaultMaxStale = 24 * time.Hour
	// StaleTTL is the TTL of stale answers (RFC 8767, section 4: 30 s),
	// so that clients ask again soon.
	StaleTTL = 30
)

type cacheKey struct {
	name          string // lower case
	qtype, qclass uint16
	do, cd        bool
}

type cacheEntry struct {
	msg        *dns.Msg
	stored     time.Time
	expires    time.Time
	staleUntil time.Time // expires + the cache's max stale
	// recheck: until then, a refresh having failed, the stale answer is
	// served without asking upstream (guarded by the cache's mu).
	recheck time.Time
	// The answer in wire format for the UDP fast path (fastCached):
	// upstream's reply without its OPT record, ID 0; ttls holds the
	// offset of each record's TTL and that TTL as received.
	wire []byte
	ttls []ttlField
	qend int
}

type ttlField struct {
	off uint16
	ttl uint32
}

// Cache is a small TTL-respecting cache of upstream answers: positive
// answers live for their smallest TTL, negative ones (NXDOMAIN, NODATA)
// for the SOA's negative TTL (RFC 2308). Errors and truncated answers are
// not cached. Expired answers are kept for a bounded time (max stale) so
// that they can be served stale, with TTL StaleTTL, when the upstreams
// do not answer (RFC 8767). Safe for concurrent use.
type Cache struct {
	max      int
	maxStale time.Duration
	now      func() time.Time

	mu sync.Mutex
	m  map[cacheKey]*cacheEntry

	stale atomic.Int64 // stale answers handed out
}

// NewCache returns a cache holding at most size answers (DefaultCacheSize
// when size <= 0), keeping expired answers for DefaultMaxStale.
func NewCache(size int) *Cache {
	return NewStaleCache(size, DefaultMaxStale)
}

// NewStaleCache returns a cache holding at most size answers
// (DefaultCacheSize when size <= 0) that keeps expired answers for
// maxStale past their TTL to serve them stale; maxStale <= 0 turns
// serve-stale off (expired answers are dropped).
func NewStaleCache(size int, maxStale time.Duration) *Cache {
	if size <= 0 {
		size = DefaultCacheSize
	}
	return &Cache{max: size, maxStale: max(maxStale, 0), now: time.Now, m: make(map[cacheKey]*cacheEntry)}
}

func keyOf(req *dns.Msg) (cacheKey, bool) {
	if len(req.Question) != 1 {
		return cacheKey{}, false
	}
	q := req.Question[0]
	k := cacheKey{name: strings.ToLower(q.Name), qtype: q.Qtype, qclass: q.Qclass, cd: req.CheckingDisabled}
	if opt := req.IsEdns0(); opt != nil {
		k.do = opt.Do()
	}
	return k, true
}

// lookup returns the entry for k: fresh, stale (expired but within the
// stale window) or absent. Entries past the stale window are dropped.
func (c *Cache) lookup(k cacheKey, now time.Time) (e *cacheEntry, fresh bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		return nil, false
	}
	if now.Before(e.expires) {
		return e, true
	}
	if now.Before(e.staleUntil) {
		return e, false
	}
	delete(c.m, k)
	return nil, false
}

// has reports whether the cache holds an entry for k, fresh or stale.
func (c *Cache) has(k cacheKey) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.m[k]
	return ok
}

// Get returns a copy of the fresh cached answer to req with its ID and
// RD bit set to req's and TTLs lowered by the time spent in the cache.
// Expired answers are not returned (see Stale).
func (c *Cache) Get(req *dns.Msg) (*dns.Msg, bool) {
	k, ok := keyOf(req)
	if !ok {
		return nil, false
	}
	now := c.now()
	e, fresh := c.lookup(k, now)
	if e == nil || !fresh {
		return nil, false
	}
	age := uint32(now.Sub(e.stored) / time.Second)
	return e.reply(req, func(ttl uint32) uint32 {
		if ttl > age {
			return ttl - age
		}
		return 0
	}), true
}

// Stale returns the cached answer to req when it has expired but is
// within the stale window, with every TTL set to StaleTTL (RFC 8767); a
// fresh answer is returned as Get would. It is what the forwarder answers
// when the upstreams fail or are too slow.
func (c *Cache) Stale(req *dns.Msg) (*dns.Msg, bool) {
	k, ok := keyOf(req)
	if !ok {
		return nil, false
	}
	now := c.now()
	e, fresh := c.lookup(k, now)
	if e == nil {
		return nil, false
	}
	if fresh {
		return c.Get(req)
	}
	c.stale.Add(1)
	return e.reply(req, func(uint32) uint32 { return StaleTTL }), true
}

// StaleRecheck is RFC 8767's failure recheck timer: once refreshing a
// stale answer has failed, the stale answer is served for this long
// without asking the upstreams again.
const StaleRecheck = StaleTTL * time.Second

// markFailed starts the failure recheck timer of req's stale answer.
func (c *Cache) markFailed(req *dns.Msg) {
	k, ok := keyOf(req)
	if !ok {
		return
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[k]; ok && !now.Before(e.expires) {
		e.recheck = now.Add(StaleRecheck)
	}
}

// StaleHeld returns req's stale answer while its failure recheck timer
// runs: the upstreams failed to refresh it moments ago, so it is served
// at once instead of being asked for again.
func (c *Cache) StaleHeld(req *dns.Msg) (*dns.Msg, bool) {
	k, ok := keyOf(req)
	if !ok {
		return nil, false
	}
	now := c.now()
	c.mu.Lock()
	e, ok := c.m[k]
	ok = ok && !now.Before(e.expires) && now.Before(e.staleUntil) && now.Before(e.recheck)
	c.mu.Unlock()
	if !ok {
		return nil, false
	}
	c.stale.Add(1)
	return e.reply(req, func(uint32) uint32 { return StaleTTL }), true
}

// StaleServed returns the number of stale answers handed out.
func (c *Cache) StaleServed() int64 { return c.stale.Load() }

// reply copies the entry's answer for req, with TTLs mapped by ttl.
func (e *cacheEntry) reply(req *dns.Msg, ttl func(uint32) uint32) *dns.Msg {
	resp := e.msg.Copy()
	resp.Id = req.Id
	resp.RecursionDesired = req.RecursionDesired
	resp.Question = append(resp.Question[:0], req.Question...)
	for _, sec := range [][]dns.RR{resp.Answer, resp.Ns, resp.Extra} {
		for _, rr := range sec {
			h := rr.Header()
			if h.Rrtype == dns.TypeOPT {
				continue
			}
			h.Ttl = ttl(h.Ttl)
		}
	}
	return resp
}

// Put stores resp as the answer to req when it is cacheable.
func (c *Cache) Put(req, resp *dns.Msg) { c.put(req, resp, true, nil) }

// put stores resp, or a copy of it when cp is set (without, the cache
// owns resp from then on: the caller must not change it). raw, when set,
// is resp as received, from which the wire form is cut (see
// wireFromReply) instead of packing resp again.
func (c *Cache) put(req, resp *dns.Msg, cp bool, raw []byte) {
	k, ok := keyOf(req)
	if !ok {
		return
	}
	ttl, ok := cacheTTL(resp)
	if !ok {
		return
	}
	now := c.now()
	if cp {
		resp = resp.Copy()
	}
	e := &cacheEntry{msg: resp, stored: now, expires: now.Add(ttl)}
	e.staleUntil = e.expires.Add(c.maxStale)
	ok = false
	if raw != nil {
		e.wire, e.ttls, e.qend, ok = wireFromReply(raw)
	}
	if !ok {
		e.wire, e.ttls, e.qend = wireOf(e.msg)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, exists := c.m[k]; !exists && len(c.m) >= c.max {
		c.evictLocked(now)
	}
	c.m[k] = e
}

// Len returns the number of entries, stale ones included.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// evictLocked makes room for an eighth of the cache: it drops entries
// past their stale window, then stale entries, then arbitrary fresh
// ones (map order is unspecified).
func (c *Cache) evictLocked(now time.Time) {
	n := max(c.max/8, 1)
	room := func() bool { return len(c.m) <= c.max-n }
	for k, e := range c.m {
		if !now.Before(e.staleUntil) {
			delete(c.m, k)
		}
	}
	if room() {
		return
	}
	for k, e := range c.m {
		if !now.Before(e.expires) {
			delete(c.m, k)
			if room() {
				return
			}
		}
	}
	for k := range c.m {
		delete(c.m, k)
		if room() {
			return
		}
	}
}

// cacheTTL says how long resp may be cached.
func cacheTTL(resp *dns.Msg) (time.Duration, bool) {
	if resp.Truncated || len(resp.Question) != 1 {
		return 0, false
	}
	switch resp.Rcode {
	case dns.RcodeSuccess:
		if len(resp.Answer) > 0 {
			ttl := minTTL(resp.Answer, resp.Ns)
			return clampTTL(ttl, maxPositiveTTL)
		}
	case dns.RcodeNameError:
	default:
		return 0, false
	}
	// Negative answer: the SOA in the authority section decides.
	for _, rr := range resp.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			ttl := min(soa.Hdr.Ttl, soa.Minttl)
			return clampTTL(ttl, maxNegativeTTL)
		}
	}
	return 0, false
}

func minTTL(sections ...[]dns.RR) uint32 {
	ttl := uint32(1<<32 - 1)
	for _, sec := range sections {
		for _, rr := range sec {
			if h := rr.Header(); h.Rrtype != dns.TypeOPT && h.Ttl < ttl {
				ttl = h.Ttl
			}
		}
	}
	return ttl
}

func clampTTL(ttl uint32, limit time.Duration) (time.Duration, bool) {
	if ttl == 0 {
		return 0, false
	}
	d := time.Duration(ttl) * time.Second
	return min(d, limit), true
}
