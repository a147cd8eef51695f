package dns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Forwarder defaults.
const (
	// DefaultUpstreamTimeout is the time given to one upstream: three of
	// them fit in glibc's 5 s default with room to spare.
	DefaultUpstreamTimeout = 1500 * time.Millisecond
	// DefaultMaxForwards caps concurrent upstream queries (dnsmasq's
	// dns-forward-max default).
	DefaultMaxForwards = 150
	// upstreamUDPSize is the EDNS0 buffer size we announce upstream
	// (the DNS flag day 2020 value).
	upstreamUDPSize = 1232
)

// ErrBusy is returned when too many queries are already being forwarded.
var ErrBusy = errors.New("dns: too many concurrent forwards")

// ErrNoUpstream is returned when no usable upstream resolver is known
// (none listed, or only this server itself).
var ErrNoUpstream = errors.New("dns: no upstream resolver (resolv.conf lists none but this server)")

// DefaultStaleAfter is the client-response timer of RFC 8767: when the
// upstreams have not answered a query within it and the cache holds a
// stale answer, that answer goes to the client (the refresh goes on).
// RFC 8767 suggests 1.8 s: below the 2 s many stub resolvers wait before
// they retry, well below glibc's 5 s timeout.
const DefaultStaleAfter = 1800 * time.Millisecond

// maxWaiters bounds the queries waiting for one upstream exchange.
const maxWaiters = 1024

// ForwarderOptions configure a Forwarder.
type ForwarderOptions struct {
	// Upstreams returns the current upstream resolvers; at most
	// MaxUpstreams of them are used, in order.
	Upstreams func() ([]netip.AddrPort, error)
	// Self reports addresses the forwarder must never send to (the
	// server's own listeners). May be nil.
	Self func(netip.AddrPort) bool
	// Timeout per upstream; DefaultUpstreamTimeout when zero.
	Timeout time.Duration
	// MaxConcurrent caps upstream exchanges in flight (identical queries
	// share one); DefaultMaxForwards when zero.
	MaxConcurrent int
	// Cache, when non-nil, holds upstream answers; its stale answers are
	// served when the upstreams fail or are slow.
	Cache *Cache
	// StaleAfter is the client-response timer: how long a query whose
	// stale answer is cached waits for the upstreams before it gets the
	// stale answer. DefaultStaleAfter when zero; negative serves stale
	// answers only once the upstreams have failed.
	StaleAfter time.Duration
	// Context bounds every upstream exchange (cancel it to stop them
	// all); context.Background() when nil.
	Context context.Context
	// Observer, when set, times every upstream exchange (see Observer).
	Observer Observer
}

// Forwarder is the stage that sends queries that are not ours to the
// host's upstream resolvers: UDP first, TCP when the answer is
// truncated, the next upstream on timeout, SERVFAIL or REFUSED. Identical
// queries share one upstream exchange. When the upstreams fail (timeout,
// SERVFAIL, REFUSED) or take longer than StaleAfter, a stale cached
// answer is served instead (RFC 8767), and after a failure that stale
// answer is served for StaleRecheck without asking again. After an
// exchange that no upstream answered, every query with a stale answer
// gets it at once (and a refresh is tried in the background) until an
// upstream answers again or StaleRecheck has passed.
type Forwarder struct {
	opts ForwarderOptions
	sem  chan struct{}

	mu       sync.Mutex
	inflight map[cacheKey]*flight
	udp      *udpTransport
	joined   atomic.Int64 // queries that waited for another's exchange
	// downUntil (unix nanoseconds): the last exchange got no answer from
	// any upstream; until then (or until an upstream answers), queries
	// with a stale answer get it at once while a refresh is tried.
	downUntil atomic.Int64
	probing   atomic.Bool // a background refresh is in flight
}

// flight is one upstream exchange; identical queries arriving meanwhile
// wait for it instead of asking again. Its fields are guarded by the
// forwarder's mu.
type flight struct {
	waiters []waiter
	// staleOut is set once the client-response timer has fired with a
	// stale answer cached: later identical queries get it at once.
	staleOut bool
	probe    bool // the background refresh (see refresh)
}

type waiter struct {
	req  *dns.Msg
	done func(*dns.Msg, error)
	// pkt and wire, when set (the UDP path): the query as received and
	// a function that sends a finished reply. A fresh answer then goes
	// out in wire form, built from the cache's copy (see fastGet).
	pkt  []byte
	wire func([]byte)
}

// NewForwarder returns a forwarder.
func NewForwarder(opts ForwarderOptions) *Forwarder {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultUpstreamTimeout
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = DefaultMaxForwards
	}
	if opts.StaleAfter == 0 {
		opts.StaleAfter = DefaultStaleAfter
	}
	if opts.Upstreams == nil {
		opts.Upstreams = func() ([]netip.AddrPort, error) { return nil, nil }
	}
	if opts.Context == nil {
		opts.Context = context.Background()
	}
	f := &Forwarder{opts: opts, sem: make(chan struct{}, opts.MaxConcurrent), inflight: map[cacheKey]*flight{}}
	f.udp = newUDPTransport(opts.Timeout, f.answered)
	ctx := opts.Context
	context.AfterFunc(ctx, func() { f.udp.close(ctx.Err()) })
	return f
}

// Cached returns the fresh cached answer to req, if any.
func (f *Forwarder) Cached(req *dns.Msg) (*dns.Msg, bool) {
	if f.opts.Cache == nil {
		return nil, false
	}
	return f.opts.Cache.Get(req)
}

// stale returns the stale cached answer to req, if any.
func (f *Forwarder) stale(req *dns.Msg) (*dns.Msg, bool) {
	if f.opts.Cache == nil {
		return nil, false
	}
	return f.opts.Cache.Stale(req)
}

// Immediate returns a stale answer to req that is to be served without
// waiting: its refresh failed moments ago (the failure recheck timer), or
// no upstream answered the last exchange (then a refresh is tried in the
// background). The server answers these inline, like cache hits.
func (f *Forwarder) Immediate(req *dns.Msg) (*dns.Msg, bool) {
	c := f.opts.Cache
	if c == nil {
		return nil, false
	}
	if resp, ok := c.StaleHeld(req); ok {
		return resp, true
	}
	if c.now().UnixNano() >= f.downUntil.Load() {
		return nil, false
	}
	k, ok := keyOf(req)
	if !ok {
		return nil, false
	}
	resp, ok := c.Stale(req)
	if ok {
		f.refresh(k, req)
	}
	return resp, ok
}

// Forward answers req from the cache or the upstreams, waiting at most
// until ctx is done (then a stale answer, if any, or ctx's error). It
// returns ErrBusy at once when MaxConcurrent exchanges are in flight and
// no stale answer is cached.
func (f *Forwarder) Forward(ctx context.Context, req *dns.Msg) (*dns.Msg, error) {
	if resp, ok := f.Cached(req); ok {
		return resp, nil
	}
	type result struct {
		resp *dns.Msg
		err  error
	}
	ch := make(chan result, 1)
	if err := f.ForwardAsync(req, func(resp *dns.Msg, err error) { ch <- result{resp, err} }); err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		return r.resp, r.err
	case <-ctx.Done():
		if resp, ok := f.stale(req); ok {
			return resp, nil
		}
		return nil, ctx.Err()
	}
}

// ForwardAsync answers req like Forward without waiting: done is called
// once, from another goroutine or before ForwardAsync returns, with the
// answer or the error. It returns ErrBusy (and does not call done) when
// MaxConcurrent exchanges are in flight, none is for req and no stale
// answer is cached, so a flood never piles up goroutines.
func (f *Forwarder) ForwardAsync(req *dns.Msg, done func(*dns.Msg, error)) error {
	if resp, ok := f.Immediate(req); ok {
		done(resp, nil)
		return nil
	}
	return f.forwardAsync(req, done)
}

// forwardAsync is ForwardAsync for a query that Cached and Immediate have
// already missed (the server's path, after Handler.Local).
func (f *Forwarder) forwardAsync(req *dns.Msg, done func(*dns.Msg, error)) error {
	return f.forwardWaiter(waiter{req: req, done: done})
}

// forwardWaiter starts or joins the exchange for w.req.
func (f *Forwarder) forwardWaiter(w waiter) error {
	req, done := w.req, w.done
	k, ok := keyOf(req)
	if !ok {
		return fmt.Errorf("forward: %d questions", len(req.Question))
	}
	f.mu.Lock()
	if fl := f.inflight[k]; fl != nil {
		if !fl.staleOut && len(fl.waiters) < maxWaiters {
			fl.waiters = append(fl.waiters, w)
			f.mu.Unlock()
			f.joined.Add(1)
			return nil
		}
		f.mu.Unlock()
		if resp, ok := f.stale(req); ok {
			done(resp, nil)
			return nil
		}
		return ErrBusy
	}
	select {
	case f.sem <- struct{}{}:
	default:
		f.mu.Unlock()
		if resp, ok := f.stale(req); ok {
			done(resp, nil)
			return nil
		}
		return ErrBusy
	}
	fl := &flight{waiters: []waiter{w}}
	f.inflight[k] = fl
	f.mu.Unlock()
	f.start(k, fl, req)
	return nil
}

// refresh starts an exchange for req that nobody waits for, unless one
// is in flight or the cap is reached: it refreshes the cache (or finds
// the upstreams still down) after a stale answer went out at once.
func (f *Forwarder) refresh(k cacheKey, req *dns.Msg) {
	// One at a time: while the upstreams are down, refreshes are probes
	// and must not fill the forward cap that new names need.
	if !f.probing.CompareAndSwap(false, true) {
		return
	}
	f.mu.Lock()
	if f.inflight[k] != nil {
		f.mu.Unlock()
		f.probing.Store(false)
		return
	}
	select {
	case f.sem <- struct{}{}:
	default:
		f.mu.Unlock()
		f.probing.Store(false)
		return
	}
	fl := &flight{probe: true}
	f.inflight[k] = fl
	f.mu.Unlock()
	f.start(k, fl, req.Copy())
}

// start begins a flight's upstream exchange: the first upstream is
// asked now; answered (or the deadline sweep) takes it from there, and
// land ends the flight. Nothing waits in a goroutine of its own.
func (f *Forwarder) start(k cacheKey, fl *flight, req *dns.Msg) {
	ex := &exchange{k: k, fl: fl, req: req}
	// The client-response timer, when there is a stale answer to give.
	if c := f.opts.Cache; c != nil && f.opts.StaleAfter > 0 && c.has(k) {
		ex.stale = time.AfterFunc(f.opts.StaleAfter, func() { f.staleTimer(k, fl) })
	}
	ups, err := f.Upstreams()
	if err == nil && len(ups) == 0 {
		err = ErrNoUpstream
	}
	if err == nil {
		ex.out = upstreamQuery(req)
		ex.q, err = ex.out.Pack()
		if err == nil {
			if off, ok := skipName(ex.q, hdrLen); ok && off+4 <= len(ex.q) {
				ex.qend = off + 4
			} else {
				err = errors.New("packed query has no question")
			}
		}
		if err != nil {
			err = fmt.Errorf("forward %s: pack: %w", req.Question[0].Name, err)
		}
	}
	if err != nil {
		f.land(ex, nil, nil, err)
		return
	}
	ex.ups = ups
	f.advance(ex)
}

// advance sends ex to its next upstream, or lands the flight when none
// is left.
func (f *Forwarder) advance(ex *exchange) {
	for ex.next < len(ex.ups) && !ex.aborted {
		u := ex.ups[ex.next]
		ex.next++
		err := f.udp.send(ex, u)
		if err == nil {
			return
		}
		ex.errs = append(ex.errs, err)
	}
	if ex.last != nil {
		f.land(ex, ex.last, nil, nil)
		return
	}
	f.land(ex, nil, nil, fmt.Errorf("forward %s: %w", ex.req.Question[0].Name, errors.Join(ex.errs...)))
}

// answered takes an upstream's answer (or its failure) to ex: the next
// upstream on failure, SERVFAIL or REFUSED, else the flight lands.
func (f *Forwarder) answered(ex *exchange, resp *dns.Msg, raw []byte, err error) {
	if o := f.opts.Observer; o != nil && !ex.aborted && !ex.sent.IsZero() {
		rcode := -1
		if err == nil {
			rcode = resp.Rcode
		}
		o.Upstream(time.Since(ex.sent), rcode, err)
	}
	switch {
	case err != nil:
		ex.errs = append(ex.errs, err)
	case resp.Rcode == dns.RcodeServerFailure || resp.Rcode == dns.RcodeRefused:
		ex.last = resp
	default:
		f.land(ex, resp, raw, nil)
		return
	}
	f.advance(ex)
}

// land ends a flight: the cache, the down state and the waiters.
// raw, when set, is resp as received (see Cache.put).
func (f *Forwarder) land(ex *exchange, resp *dns.Msg, raw []byte, err error) {
	k, fl, req := ex.k, ex.fl, ex.req
	defer func() { <-f.sem }()
	if fl.probe {
		defer f.probing.Store(false)
	}
	if ex.stale != nil {
		ex.stale.Stop()
	}
	if err != nil && !ex.aborted {
		// No upstream answered (and the forwarder was not stopped).
		now := time.Now
		if f.opts.Cache != nil {
			now = f.opts.Cache.now
		}
		f.downUntil.Store(now().Add(StaleRecheck).UnixNano())
	} else if err == nil {
		f.downUntil.Store(0)
	}
	failed := err != nil || resp.Rcode == dns.RcodeServerFailure || resp.Rcode == dns.RcodeRefused
	if !failed && f.opts.Cache != nil {
		// Into the cache before the flight ends, so that an identical
		// query arriving now finds one or the other. The cache keeps resp
		// itself: from here on it is only copied (replyFor).
		f.opts.Cache.put(req, resp, false, raw)
	}
	f.mu.Lock()
	delete(f.inflight, k)
	ws := fl.waiters
	fl.waiters = nil
	f.mu.Unlock()
	if failed && f.opts.Cache != nil {
		f.opts.Cache.markFailed(req)
	}
	for _, w := range ws {
		if failed {
			if st, ok := f.stale(w.req); ok {
				w.done(st, nil)
				continue
			}
		}
		if err != nil {
			w.done(nil, err)
			continue
		}
		if w.wire != nil && !failed && f.opts.Cache != nil {
			var q wireQuery
			if parseQuery(w.pkt, &q) {
				if b, ok := f.opts.Cache.fastGet(nil, w.pkt, &q); ok {
					w.wire(b)
					continue
				}
			}
		}
		w.done(replyFor(w.req, resp), nil)
	}
}

// staleTimer is the client-response timer of a flight: when a stale
// answer is cached, the queries waiting for the flight get it, and so do
// identical queries arriving later, while the exchange goes on to
// refresh the cache.
func (f *Forwarder) staleTimer(k cacheKey, fl *flight) {
	c := f.opts.Cache
	f.mu.Lock()
	if f.inflight[k] != fl {
		f.mu.Unlock()
		return
	}
	if e, fresh := c.lookup(k, c.now()); e == nil || fresh {
		f.mu.Unlock()
		return
	}
	ws := fl.waiters
	fl.waiters = nil
	fl.staleOut = true
	f.mu.Unlock()
	for _, w := range ws {
		if st, ok := f.stale(w.req); ok {
			w.done(st, nil)
		} else {
			// Evicted this very moment.
			w.done(nil, fmt.Errorf("forward %s: upstreams slow and the stale answer is gone", w.req.Question[0].Name))
		}
	}
}

// Upstreams returns the upstreams a query would go to now.
func (f *Forwarder) Upstreams() ([]netip.AddrPort, error) {
	all, err := f.opts.Upstreams()
	if err != nil {
		return nil, err
	}
	out := make([]netip.AddrPort, 0, MaxUpstreams)
	for _, u := range all {
		if f.opts.Self != nil && f.opts.Self(u) {
			continue
		}
		out = append(out, u)
		if len(out) == MaxUpstreams {
			break
		}
	}
	return out, nil
}

// replyFor copies an upstream answer for req.
func replyFor(req, upstream *dns.Msg) *dns.Msg {
	resp := upstream.Copy()
	resp.Id = req.Id
	resp.Question = append(resp.Question[:0], req.Question...)
	return resp
}

// upstreamQuery builds the query we send upstream: the client's question
// and flags, our own EDNS0 buffer size, the client's DO bit.
func upstreamQuery(req *dns.Msg) *dns.Msg {
	out := new(dns.Msg) // the ID is set per send
	out.Opcode = dns.OpcodeQuery
	out.RecursionDesired = req.RecursionDesired
	out.CheckingDisabled = req.CheckingDisabled
	out.AuthenticatedData = req.AuthenticatedData
	out.Question = []dns.Question{req.Question[0]}
	do := false
	if opt := req.IsEdns0(); opt != nil {
		do = opt.Do()
	}
	out.SetEdns0(upstreamUDPSize, do)
	return out
}

// Close ends the exchanges in flight (their waiters get an error or a
// stale answer) and closes the upstream sockets; later forwards fail.
func (f *Forwarder) Close() { f.udp.close(errTransportClosed) }
