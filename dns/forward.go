package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
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
	// MaxConcurrent caps in-flight forwards; DefaultMaxForwards when zero.
	MaxConcurrent int
	// Cache, when non-nil, holds upstream answers.
	Cache *Cache
}

// Forwarder is the stage that sends queries that are not ours to the
// host's upstream resolvers: UDP first, TCP when the answer is
// truncated, the next upstream on timeout, SERVFAIL or REFUSED.
type Forwarder struct {
	opts ForwarderOptions
	sem  chan struct{}

	mu       sync.Mutex
	inflight map[cacheKey]*flight
	joined   atomic.Int64 // queries answered by another's flight
}

// flight is one upstream exchange that identical queries arriving
// meanwhile wait for instead of asking again.
type flight struct {
	done chan struct{}
	resp *dns.Msg // upstream's answer, shared read-only
	err  error
}

// NewForwarder returns a forwarder.
func NewForwarder(opts ForwarderOptions) *Forwarder {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultUpstreamTimeout
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = DefaultMaxForwards
	}
	if opts.Upstreams == nil {
		opts.Upstreams = func() ([]netip.AddrPort, error) { return nil, nil }
	}
	return &Forwarder{opts: opts, sem: make(chan struct{}, opts.MaxConcurrent), inflight: map[cacheKey]*flight{}}
}

// Cached returns the cached answer to req, if any.
func (f *Forwarder) Cached(req *dns.Msg) (*dns.Msg, bool) {
	if f.opts.Cache == nil {
		return nil, false
	}
	return f.opts.Cache.Get(req)
}

// Forward answers req from the cache or the upstreams. It returns ErrBusy
// at once when MaxConcurrent forwards are in flight.
func (f *Forwarder) Forward(ctx context.Context, req *dns.Msg) (*dns.Msg, error) {
	if resp, ok := f.Cached(req); ok {
		return resp, nil
	}
	select {
	case f.sem <- struct{}{}:
	default:
		return nil, ErrBusy
	}
	defer func() { <-f.sem }()
	return f.exchange(ctx, req)
}

// ForwardAsync is Forward in a new goroutine, calling done with the
// answer or error. It returns ErrBusy (and does not call done) when
// MaxConcurrent forwards are in flight, so a flood never piles up
// goroutines.
func (f *Forwarder) ForwardAsync(ctx context.Context, req *dns.Msg, done func(*dns.Msg, error)) error {
	select {
	case f.sem <- struct{}{}:
	default:
		return ErrBusy
	}
	go func() {
		defer func() { <-f.sem }()
		done(f.exchange(ctx, req))
	}()
	return nil
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

// exchange asks the upstreams, or waits for an identical query already
// in flight, and returns a reply with req's ID and question.
func (f *Forwarder) exchange(ctx context.Context, req *dns.Msg) (*dns.Msg, error) {
	k, ok := keyOf(req)
	if !ok {
		return nil, fmt.Errorf("forward: %d questions", len(req.Question))
	}
	f.mu.Lock()
	if fl := f.inflight[k]; fl != nil {
		f.mu.Unlock()
		f.joined.Add(1)
		select {
		case <-fl.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if fl.err != nil {
			return nil, fl.err
		}
		return replyFor(req, fl.resp), nil
	}
	fl := &flight{done: make(chan struct{})}
	f.inflight[k] = fl
	f.mu.Unlock()

	fl.resp, fl.err = f.ask(ctx, req)
	f.mu.Lock()
	delete(f.inflight, k)
	f.mu.Unlock()
	close(fl.done)
	if fl.err != nil {
		return nil, fl.err
	}
	if f.opts.Cache != nil {
		f.opts.Cache.Put(req, fl.resp)
	}
	return replyFor(req, fl.resp), nil
}

// replyFor copies an upstream answer for req.
func replyFor(req, upstream *dns.Msg) *dns.Msg {
	resp := upstream.Copy()
	resp.Id = req.Id
	resp.Question = append(resp.Question[:0], req.Question...)
	return resp
}

// ask tries the upstreams in order.
func (f *Forwarder) ask(ctx context.Context, req *dns.Msg) (*dns.Msg, error) {
	ups, err := f.Upstreams()
	if err != nil {
		return nil, err
	}
	if len(ups) == 0 {
		return nil, ErrNoUpstream
	}
	out := upstreamQuery(req)
	var last *dns.Msg
	var errs []error
	for _, u := range ups {
		resp, err := f.exchangeOne(ctx, out, u)
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		last = resp
		if resp.Rcode != dns.RcodeServerFailure && resp.Rcode != dns.RcodeRefused {
			break
		}
	}
	if last == nil {
		return nil, fmt.Errorf("forward %s: %w", req.Question[0].Name, errors.Join(errs...))
	}
	return last, nil
}

// upstreamQuery builds the query we send upstream: the client's question
// and flags, our own EDNS0 buffer size, the client's DO bit.
func upstreamQuery(req *dns.Msg) *dns.Msg {
	out := new(dns.Msg)
	out.Id = dns.Id()
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

func (f *Forwarder) exchangeOne(ctx context.Context, q *dns.Msg, u netip.AddrPort) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	defer cancel()
	addr := u.String()
	c := &dns.Client{Net: "udp", UDPSize: upstreamUDPSize, Timeout: f.opts.Timeout}
	resp, _, err := c.ExchangeContext(ctx, q, addr)
	if err == nil && resp.Truncated {
		c = &dns.Client{Net: "tcp", Timeout: f.opts.Timeout}
		resp, _, err = c.ExchangeContext(ctx, q, addr)
	}
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, fmt.Errorf("upstream %s: timeout", addr)
		}
		return nil, fmt.Errorf("upstream %s: %w", addr, err)
	}
	if len(resp.Question) != 1 || resp.Question[0].Qtype != q.Question[0].Qtype ||
		!strings.EqualFold(resp.Question[0].Name, q.Question[0].Name) {
		return nil, fmt.Errorf("upstream %s: answer does not match the question", addr)
	}
	return resp, nil
}
