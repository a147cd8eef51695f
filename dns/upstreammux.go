package dns

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// Upstream UDP exchanges share one connected socket per upstream. Queries
// are written by whoever starts (or moves on) an exchange; one reader
// goroutine per socket reads the replies in recvmmsg batches, matches
// each to its exchange by ID and question, and finishes the exchange
// right there (cache, waiters). Timeouts are one deadline queue swept by
// one timer, not a timer per exchange. So an exchange costs no goroutine,
// no poller wakeup and no timer of its own.
//
// RFC 5452: every query has a random 16-bit ID (crypto/rand, never one
// in use on the socket), a reply must come from the upstream's address
// and port (the socket is connected), carry a pending ID and repeat the
// query's question (name compared case-insensitively, type, class);
// anything else is dropped and the exchange goes on waiting. The
// trade-off: all queries to an upstream leave from one source port for a
// while, instead of a port per socket in use, so a spoofer who learns
// the port has only the ID to guess. The socket is therefore replaced
// after muxMaxQueries queries or muxMaxAge, whichever comes first (the
// old one stays open until its pending replies are in or timed out), and
// the port is the kernel's random ephemeral choice each time.
const (
	muxMaxQueries = 500
	muxMaxAge     = 10 * time.Second
	// muxReadBatch datagrams of at most muxReadSize bytes per recvmmsg.
	muxReadBatch = 32
	muxReadSize  = 4096
)

// errTransportClosed ends the exchanges in flight when the forwarder is
// closed.
var errTransportClosed = errors.New("forwarder closed")

// exchange is one flight's journey through the upstreams: the packed
// query, which upstream is next, and what the earlier ones answered.
// The fields below "guarded" belong to the transport's mu.
type exchange struct {
	k     cacheKey
	fl    *flight
	req   *dns.Msg // the client's query (cache key, waiters)
	out   *dns.Msg // the query sent upstream (TCP)
	q     []byte   // out packed; the ID is set per send
	qend  int      // end of the question in q
	ups   []netip.AddrPort
	next  int      // index in ups of the next upstream to try
	last  *dns.Msg // the last answer (SERVFAIL or REFUSED)
	errs  []error
	stale *time.Timer // the client-response timer, if any
	sent  time.Time   // when it was last sent (for the Observer)

	// guarded
	sock    *muxSock // where the exchange waits for a reply; nil otherwise
	id      uint16
	gen     uint32 // incremented per send; deadline entries carry it
	aborted bool   // ended by the transport's close
}

// upstream returns the upstream the exchange was last sent to.
func (ex *exchange) upstream() netip.AddrPort { return ex.ups[ex.next-1] }

type deadline struct {
	at  time.Time
	ex  *exchange
	gen uint32
}

// udpTransport holds the shared sockets of a forwarder.
type udpTransport struct {
	timeout time.Duration
	// A socket takes at most maxQueries queries, for at most maxAge
	// (muxMaxQueries and muxMaxAge; tests lower them).
	maxQueries int
	maxAge     time.Duration
	// done takes an upstream's answer to ex, or its failure; raw is
	// the answer as received over UDP (nil otherwise), valid only until
	// done returns.
	done func(ex *exchange, resp *dns.Msg, raw []byte, err error)
	log  *slog.Logger
	// ctx ends TCP fallbacks in flight when the transport is closed.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	socks   map[netip.AddrPort]*muxSock // the current socket per upstream
	live    map[*muxSock]struct{}       // every open socket, current or retired
	queue   []deadline                  // in deadline order (one timeout for all)
	qhead   int
	timer   *time.Timer
	armed   bool
	closed  bool
	closeBy error
	ids     [256]byte // random bytes for IDs
	idn     int       // unused bytes left in ids
	opened  int       // sockets opened so far (for tests)
}

// muxSock is one connected UDP socket to an upstream.
type muxSock struct {
	addr    netip.AddrPort
	conn    *net.UDPConn
	pending map[uint16]*exchange // guarded by the transport's mu
	sent    int
	born    time.Time
	retired bool // no new queries; closed once pending is empty
}

func newUDPTransport(timeout time.Duration, done func(*exchange, *dns.Msg, []byte, error)) *udpTransport {
	t := &udpTransport{timeout: timeout, done: done, log: slog.Default(), maxQueries: muxMaxQueries, maxAge: muxMaxAge,
		socks: map[netip.AddrPort]*muxSock{}, live: map[*muxSock]struct{}{}}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.timer = time.AfterFunc(time.Hour, t.sweep)
	t.timer.Stop()
	return t
}

// randIDLocked returns a random ID not pending on s.
func (t *udpTransport) randIDLocked(s *muxSock) (uint16, error) {
	for {
		if t.idn < 2 {
			if _, err := rand.Read(t.ids[:]); err != nil {
				return 0, fmt.Errorf("random query ID: %w", err)
			}
			t.idn = len(t.ids)
		}
		id := binary.BigEndian.Uint16(t.ids[t.idn-2:])
		t.idn -= 2
		if _, used := s.pending[id]; !used {
			return id, nil
		}
	}
}

// sockLocked returns the socket for new queries to u, replacing one that
// has served its queries or its time.
func (t *udpTransport) sockLocked(u netip.AddrPort, now time.Time) (*muxSock, error) {
	s := t.socks[u]
	if s != nil && s.sent < t.maxQueries && now.Sub(s.born) < t.maxAge {
		return s, nil
	}
	if s != nil {
		t.retireLocked(s)
	}
	network := "udp4"
	if u.Addr().Is6() && !u.Addr().Is4In6() {
		network = "udp6"
	}
	conn, err := net.DialUDP(network, nil, net.UDPAddrFromAddrPort(u))
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", u, err)
	}
	s = &muxSock{addr: u, conn: conn, pending: map[uint16]*exchange{}, born: now}
	t.socks[u] = s
	t.live[s] = struct{}{}
	t.opened++
	go t.read(s)
	return s, nil
}

// retireLocked stops new queries on s and closes it once nothing waits.
func (t *udpTransport) retireLocked(s *muxSock) {
	s.retired = true
	if t.socks[s.addr] == s {
		delete(t.socks, s.addr)
	}
	if len(s.pending) == 0 {
		t.closeSockLocked(s)
	}
}

func (t *udpTransport) closeSockLocked(s *muxSock) {
	if _, ok := t.live[s]; !ok {
		return
	}
	delete(t.live, s)
	if t.socks[s.addr] == s {
		delete(t.socks, s.addr)
	}
	_ = s.conn.Close()
}

// unpendLocked removes ex from the socket it waits on.
func (t *udpTransport) unpendLocked(ex *exchange) {
	s := ex.sock
	if s == nil {
		return
	}
	delete(s.pending, ex.id)
	ex.sock = nil
	if s.retired && len(s.pending) == 0 {
		t.closeSockLocked(s)
	}
}

// send sends ex to u over u's shared socket. It returns an error when
// the query could not be sent; the exchange then waits for nothing and
// the caller goes on with it. Otherwise whoever ends the wait (a reply,
// the deadline sweep, close) calls done.
func (t *udpTransport) send(ex *exchange, u netip.AddrPort) error {
	now := time.Now()
	t.mu.Lock()
	if t.closed {
		ex.aborted = true
		t.mu.Unlock()
		return t.closeBy
	}
	s, err := t.sockLocked(u, now)
	if err != nil {
		t.mu.Unlock()
		return err
	}
	id, err := t.randIDLocked(s)
	if err != nil {
		t.mu.Unlock()
		return err
	}
	s.sent++
	s.pending[id] = ex
	ex.sock, ex.id = s, id
	ex.gen++
	ex.sent = now
	gen := ex.gen
	t.queue = append(t.queue, deadline{at: now.Add(t.timeout), ex: ex, gen: ex.gen})
	if !t.armed {
		t.armed = true
		t.timer.Reset(t.timeout)
	}
	// A copy per send: a late timeout may send ex again elsewhere while
	// this write is still under way.
	pkt := append(make([]byte, 0, len(ex.q)), ex.q...)
	t.mu.Unlock()
	binary.BigEndian.PutUint16(pkt, id)
	if _, err := s.conn.Write(pkt); err != nil {
		t.mu.Lock()
		mine := ex.gen == gen && ex.sock == s
		if mine {
			t.unpendLocked(ex)
			ex.gen++
		}
		t.mu.Unlock()
		if !mine {
			// Timed out or closed meanwhile: ended elsewhere.
			return nil
		}
		return fmt.Errorf("upstream %s: %w", u, err)
	}
	return nil
}

// sweep ends the exchanges whose upstream did not answer in time.
func (t *udpTransport) sweep() {
	now := time.Now()
	var expired []*exchange
	t.mu.Lock()
	for t.qhead < len(t.queue) {
		d := t.queue[t.qhead]
		if d.ex.sock != nil && d.ex.gen == d.gen {
			if d.at.After(now) {
				break
			}
			t.unpendLocked(d.ex)
			d.ex.gen++
			expired = append(expired, d.ex)
		}
		t.queue[t.qhead] = deadline{}
		t.qhead++
	}
	if t.qhead == len(t.queue) {
		t.queue, t.qhead = t.queue[:0], 0
	} else if t.qhead > len(t.queue)/2 {
		n := copy(t.queue, t.queue[t.qhead:])
		clear(t.queue[n:])
		t.queue, t.qhead = t.queue[:n], 0
	}
	t.armed = false
	if len(t.queue) > 0 && !t.closed {
		t.armed = true
		t.timer.Reset(t.queue[t.qhead].at.Sub(now))
	}
	t.mu.Unlock()
	for _, ex := range expired {
		t.done(ex, nil, nil, fmt.Errorf("upstream %s: timeout", ex.upstream()))
	}
}

// read is the reader of one socket: it matches replies to exchanges and
// finishes them, until the socket is closed.
func (t *udpTransport) read(s *muxSock) {
	var pc batchConn
	if s.addr.Addr().Is4() || s.addr.Addr().Is4In6() {
		pc = ipv4.NewPacketConn(s.conn)
	} else {
		pc = ipv6.NewPacketConn(s.conn)
	}
	ms := make([]ipv4.Message, muxReadBatch)
	for i := range ms {
		ms[i].Buffers = [][]byte{make([]byte, muxReadSize)}
	}
	type match struct {
		ex  *exchange
		pkt []byte
		tc  bool
	}
	var got []match
	for {
		n, err := pc.ReadBatch(ms, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if errors.Is(err, syscall.ECONNREFUSED) {
				// The upstream's port is closed: whatever waits on
				// this socket waits in vain.
				t.refused(s, err)
				continue
			}
			t.log.Debug("dns: upstream read", "upstream", s.addr, "err", err)
			continue
		}
		got = got[:0]
		t.mu.Lock()
		for i := 0; i < n; i++ {
			pkt := ms[i].Buffers[0][:ms[i].N]
			if len(pkt) < hdrLen || pkt[2]&0x80 == 0 {
				continue
			}
			ex := s.pending[binary.BigEndian.Uint16(pkt)]
			if ex == nil || !sameQuestion(pkt, ex.q[hdrLen:ex.qend]) {
				// Late, stray or forged: dropped (RFC 5452).
				continue
			}
			t.unpendLocked(ex)
			ex.gen++
			got = append(got, match{ex, pkt, ms[i].Flags&unix.MSG_TRUNC != 0})
		}
		t.mu.Unlock()
		for _, m := range got {
			resp := new(dns.Msg)
			err := resp.Unpack(m.pkt)
			switch {
			case err != nil && !m.tc:
				t.done(m.ex, nil, nil, fmt.Errorf("upstream %s: bad answer: %w", s.addr, err))
			case m.tc || resp.Truncated:
				go t.tcp(m.ex)
			default:
				t.done(m.ex, resp, m.pkt, nil)
			}
		}
		for i := range got {
			got[i] = match{}
		}
	}
}

// refused ends every exchange waiting on s with err.
func (t *udpTransport) refused(s *muxSock, err error) {
	var ended []*exchange
	t.mu.Lock()
	for _, ex := range s.pending {
		ended = append(ended, ex)
	}
	for _, ex := range ended {
		t.unpendLocked(ex)
		ex.gen++
	}
	t.mu.Unlock()
	for _, ex := range ended {
		t.done(ex, nil, nil, fmt.Errorf("upstream %s: %w", s.addr, err))
	}
}

// tcp asks ex's upstream again over TCP (its UDP answer was truncated).
func (t *udpTransport) tcp(ex *exchange) {
	u := ex.upstream()
	ctx, cancel := context.WithTimeout(t.ctx, t.timeout)
	defer cancel()
	t.mu.Lock()
	if t.closed {
		ex.aborted = true
		t.mu.Unlock()
		t.done(ex, nil, nil, t.closeBy)
		return
	}
	t.mu.Unlock()
	c := &dns.Client{Net: "tcp", Timeout: t.timeout}
	out := ex.out.Copy()
	out.Id = dns.Id()
	resp, _, err := c.ExchangeContext(ctx, out, u.String())
	if err != nil && t.ctx.Err() != nil {
		t.mu.Lock()
		ex.aborted = true
		closeBy := t.closeBy
		t.mu.Unlock()
		t.done(ex, nil, nil, closeBy)
		return
	}
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			err = errors.New("timeout")
		}
		t.done(ex, nil, nil, fmt.Errorf("upstream %s (tcp): %w", u, err))
		return
	}
	if len(resp.Question) != 1 || resp.Question[0].Qtype != out.Question[0].Qtype ||
		resp.Question[0].Qclass != out.Question[0].Qclass || !equalFoldASCII(resp.Question[0].Name, out.Question[0].Name) {
		t.done(ex, nil, nil, fmt.Errorf("upstream %s (tcp): answer does not match the question", u))
		return
	}
	t.done(ex, resp, nil, nil)
}

// close ends every exchange in flight with err and closes the sockets;
// later sends fail with err.
func (t *udpTransport) close(err error) {
	var ended []*exchange
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	t.closed, t.closeBy = true, err
	t.cancel()
	t.timer.Stop()
	t.armed = false
	for s := range t.live {
		for _, ex := range s.pending {
			ended = append(ended, ex)
		}
	}
	for _, ex := range ended {
		t.unpendLocked(ex)
		ex.gen++
		ex.aborted = true
	}
	for s := range t.live {
		t.closeSockLocked(s)
	}
	t.queue, t.qhead = nil, 0
	t.mu.Unlock()
	for _, ex := range ended {
		t.done(ex, nil, nil, err)
	}
}

// sockets returns the number of open upstream sockets and of sockets
// opened so far (for tests).
func (t *udpTransport) sockets() (open, opened int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.live), t.opened
}

// setLimits changes the socket replacement limits (for tests).
func (t *udpTransport) setLimits(queries int, age time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.maxQueries, t.maxAge = queries, age
}

// sameQuestion reports whether the reply pkt has one question equal to
// q (a question section in wire form, uncompressed): the name compared
// case-insensitively, type and class exactly.
func sameQuestion(pkt, q []byte) bool {
	if binary.BigEndian.Uint16(pkt[4:]) != 1 || len(pkt) < hdrLen+len(q) {
		return false
	}
	got := pkt[hdrLen : hdrLen+len(q)]
	n := len(q) - 4
	// Label lengths are compared as bytes too: they are below 64, out of
	// the letters' range, so folding never changes them.
	return equalFoldASCII(got[:n], q[:n]) && string(got[n:]) == string(q[n:])
}

// equalFoldASCII compares domain names ignoring ASCII case only (other
// bytes must be equal).
func equalFoldASCII[T string | []byte](a, b T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
