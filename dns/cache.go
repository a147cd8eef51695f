package dns

import (
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Cache limits.
const (
	DefaultCacheSize = 10000
	maxPositiveTTL   = time.Hour
	maxNegativeTTL   = 5 * time.Minute
)

type cacheKey struct {
	name          string // lower case
	qtype, qclass uint16
	do, cd        bool
}

type cacheEntry struct {
	msg     *dns.Msg
	stored  time.Time
	expires time.Time
}

// Cache is a small TTL-respecting cache of upstream answers: positive
// answers live for their smallest TTL, negative ones (NXDOMAIN, NODATA)
// for the SOA's negative TTL (RFC 2308). Errors and truncated answers are
// not cached. Safe for concurrent use.
type Cache struct {
	max int
	now func() time.Time

	mu sync.Mutex
	m  map[cacheKey]*cacheEntry
}

// NewCache returns a cache holding at most size answers.
func NewCache(size int) *Cache {
	if size <= 0 {
		size = DefaultCacheSize
	}
	return &Cache{max: size, now: time.Now, m: make(map[cacheKey]*cacheEntry)}
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

// Get returns a copy of the cached answer to req with its ID set to
// req's and TTLs lowered by the time spent in the cache.
func (c *Cache) Get(req *dns.Msg) (*dns.Msg, bool) {
	k, ok := keyOf(req)
	if !ok {
		return nil, false
	}
	now := c.now()
	c.mu.Lock()
	e, ok := c.m[k]
	if ok && !now.Before(e.expires) {
		delete(c.m, k)
		ok = false
	}
	c.mu.Unlock()
	if !ok {
		return nil, false
	}
	resp := e.msg.Copy()
	resp.Id = req.Id
	resp.Question = append(resp.Question[:0], req.Question...)
	age := uint32(now.Sub(e.stored) / time.Second)
	for _, sec := range [][]dns.RR{resp.Answer, resp.Ns, resp.Extra} {
		for _, rr := range sec {
			h := rr.Header()
			if h.Rrtype == dns.TypeOPT {
				continue
			}
			if h.Ttl > age {
				h.Ttl -= age
			} else {
				h.Ttl = 0
			}
		}
	}
	return resp, true
}

// Put stores resp as the answer to req when it is cacheable.
func (c *Cache) Put(req, resp *dns.Msg) {
	k, ok := keyOf(req)
	if !ok {
		return
	}
	ttl, ok := cacheTTL(resp)
	if !ok {
		return
	}
	now := c.now()
	e := &cacheEntry{msg: resp.Copy(), stored: now, expires: now.Add(ttl)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, exists := c.m[k]; !exists && len(c.m) >= c.max {
		c.evictLocked(now)
	}
	c.m[k] = e
}

// Len returns the number of entries, expired ones included.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// evictLocked drops expired entries, and when that frees too little, an
// arbitrary eighth of the cache (map order is unspecified).
func (c *Cache) evictLocked(now time.Time) {
	for k, e := range c.m {
		if !now.Before(e.expires) {
			delete(c.m, k)
		}
	}
	n := c.max / 8
	if n < 1 {
		n = 1
	}
	for k := range c.m {
		if len(c.m) < c.max-n+1 {
			break
		}
		delete(c.m, k)
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
