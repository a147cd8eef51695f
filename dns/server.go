package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// DefaultResolvConf is where the host's upstream resolvers are read.
const DefaultResolvConf = "/etc/resolv.conf"

// Options configure a Server. Only Source is required.
type Options struct {
	// Source provides the machine names.
	Source Source
	// Domain is the machines' domain; DefaultDomain when empty.
	Domain string
	// TTL of machine answers; DefaultTTL when zero.
	TTL uint32
	// ViewOf maps a client address to the names it may see; nil lets
	// every client see every name. Loopback clients always see all; the
	// host querying a gateway address from the host itself comes from a
	// host address, which ViewOf should map to View{All: true} too.
	ViewOf ViewFunc
	// ResolvConf is the file listing the upstream resolvers, followed
	// when it changes; DefaultResolvConf when empty.
	ResolvConf string
	// Upstreams, when set, replaces ResolvConf with a fixed list.
	Upstreams []netip.AddrPort
	// NoForward answers only machine names and REFUSES everything else.
	NoForward bool
	// UpstreamTimeout per upstream; DefaultUpstreamTimeout when zero.
	UpstreamTimeout time.Duration
	// MaxForwards caps concurrent upstream queries; DefaultMaxForwards
	// when zero.
	MaxForwards int
	// CacheSize is the number of cached upstream answers;
	// DefaultCacheSize when zero, no cache when negative.
	CacheSize int
	// MaxStale is how long past their TTL cached answers are kept to be
	// served stale (TTL StaleTTL) when the upstreams fail or are slow
	// (RFC 8767); DefaultMaxStale when zero, no serve-stale when
	// negative.
	MaxStale time.Duration
	// StaleAfter is how long a query whose stale answer is cached waits
	// for the upstreams before it gets the stale answer (RFC 8767's
	// client-response timer); DefaultStaleAfter when zero; negative
	// serves stale answers only once the upstreams have failed.
	StaleAfter time.Duration
	// UDPReaders is the number of goroutines reading each UDP socket
	// (each reads and writes batches of datagrams); GOMAXPROCS/2 (at
	// least 1) when zero.
	UDPReaders int
	// Logger; slog.Default() when nil.
	Logger *slog.Logger
	// Observer, when set, counts queries and upstream exchanges for
	// metrics (see Observer).
	Observer Observer
}

// Server is the DNS server for machine names. Listeners are added and
// removed while it runs; each binds one specific address (never a
// wildcard), so the server answers on nothing else.
type Server struct {
	h       *Handler
	readers int
	log     *slog.Logger
	ctx     context.Context
	cancel  context.CancelFunc

	mu        sync.Mutex
	listeners map[netip.AddrPort]*listener
	closed    bool
	wg        sync.WaitGroup
}

type listener struct {
	addr netip.AddrPort
	udp  *net.UDPConn
	tcp  *dns.Server
	wg   sync.WaitGroup
	// Answers of forwarded queries, sent in batches by writeAsync.
	async     chan asyncReply
	done      chan struct{}
	closeOnce sync.Once
}

type asyncReply struct {
	b  []byte
	to netip.AddrPort
}

// asyncQueue is the number of forwarded answers waiting to be sent; more
// are dropped (the client asks again), as the kernel drops datagrams.
const asyncQueue = 1024

// NewServer builds a server; it listens nowhere until Listen.
func NewServer(opts Options) (*Server, error) {
	if opts.Source == nil {
		return nil, errors.New("dns: Options.Source is nil")
	}
	if opts.Domain != "" {
		if _, ok := dns.IsDomainName(opts.Domain); !ok {
			return nil, fmt.Errorf("dns: bad domain %q", opts.Domain)
		}
	}
	s := &Server{
		readers:   opts.UDPReaders,
		log:       opts.Logger,
		listeners: map[netip.AddrPort]*listener{},
	}
	if s.readers <= 0 {
		s.readers = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.h = &Handler{Authority: NewAuthority(opts.Domain, opts.Source, opts.TTL), ViewOf: opts.ViewOf, Logger: s.log, Observer: opts.Observer}
	if !opts.NoForward {
		var ups func() ([]netip.AddrPort, error)
		if opts.Upstreams != nil {
			fixed := append([]netip.AddrPort(nil), opts.Upstreams...)
			ups = func() ([]netip.AddrPort, error) { return fixed, nil }
		} else {
			path := opts.ResolvConf
			if path == "" {
				path = DefaultResolvConf
			}
			uf := &upstreamFile{path: path}
			ups = func() ([]netip.AddrPort, error) { return uf.get(time.Now()) }
		}
		var cache *Cache
		if opts.CacheSize >= 0 {
			maxStale := opts.MaxStale
			if maxStale == 0 {
				maxStale = DefaultMaxStale
			}
			cache = NewStaleCache(opts.CacheSize, maxStale)
		}
		s.h.Forwarder = NewForwarder(ForwarderOptions{
			Upstreams:     ups,
			Self:          s.isSelf,
			Timeout:       opts.UpstreamTimeout,
			MaxConcurrent: opts.MaxForwards,
			Cache:         cache,
			StaleAfter:    opts.StaleAfter,
			Context:       s.ctx,
			Observer:      opts.Observer,
		})
	}
	return s, nil
}

// Handler returns the server's handler chain (for tests and for callers
// with their own sockets).
func (s *Server) Handler() *Handler { return s.h }

// isSelf reports whether u is one of our listeners: a resolv.conf that
// names us must not make us query ourselves.
func (s *Server) isSelf(u netip.AddrPort) bool {
	u = netip.AddrPortFrom(u.Addr().Unmap(), u.Port())
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.listeners[u]
	return ok
}

// Listen starts answering on addr over UDP and TCP. addr must be a
// specific address (not 0.0.0.0 or ::); it may not be configured yet
// (the sockets use IP_FREEBIND). Port 0 picks a free port, the same for
// UDP and TCP; the bound address is returned.
func (s *Server) Listen(addr netip.AddrPort) (netip.AddrPort, error) {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	if !addr.Addr().IsValid() || addr.Addr().IsUnspecified() || addr.Addr().IsMulticast() {
		return netip.AddrPort{}, fmt.Errorf("dns: listen %s: need a specific unicast address", addr)
	}
	s.mu.Lock()
	closed := s.closed
	_, dup := s.listeners[addr]
	s.mu.Unlock()
	if closed {
		return netip.AddrPort{}, errors.New("dns: server closed")
	}
	if dup {
		return netip.AddrPort{}, fmt.Errorf("dns: already listening on %s", addr)
	}
	var l *listener
	var err error
	for try := 0; try < 10; try++ {
		l, err = bind(addr)
		if err == nil || addr.Port() != 0 {
			break
		}
	}
	if err != nil {
		return netip.AddrPort{}, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.close()
		return netip.AddrPort{}, errors.New("dns: server closed")
	}
	if _, dup := s.listeners[l.addr]; dup {
		s.mu.Unlock()
		l.close()
		return netip.AddrPort{}, fmt.Errorf("dns: already listening on %s", l.addr)
	}
	s.listeners[l.addr] = l
	s.mu.Unlock()
	s.start(l)
	s.log.Debug("dns: listening", "addr", l.addr)
	return l.addr, nil
}

func bind(addr netip.AddrPort) (*listener, error) {
	lc := net.ListenConfig{Control: freebind}
	udpNet, tcpNet := "udp4", "tcp4"
	if addr.Addr().Is6() {
		udpNet, tcpNet = "udp6", "tcp6"
	}
	pc, err := lc.ListenPacket(context.Background(), udpNet, addr.String())
	if err != nil {
		return nil, fmt.Errorf("dns: listen udp %s: %w", addr, err)
	}
	udp := pc.(*net.UDPConn)
	bound := udp.LocalAddr().(*net.UDPAddr).AddrPort()
	bound = netip.AddrPortFrom(bound.Addr().Unmap().WithZone(addr.Addr().Zone()), bound.Port())
	tl, err := lc.Listen(context.Background(), tcpNet, bound.String())
	if err != nil {
		udp.Close()
		return nil, fmt.Errorf("dns: listen tcp %s: %w", bound, err)
	}
	return &listener{addr: bound, udp: udp, tcp: &dns.Server{Listener: tl},
		async: make(chan asyncReply, asyncQueue), done: make(chan struct{})}, nil
}

// freebind lets a listener bind a gateway address before (or while) the
// link that carries it is configured.
func freebind(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if network == "udp6" || network == "tcp6" {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

func (s *Server) start(l *listener) {
	l.tcp.Handler = s.h
	l.tcp.MaxTCPQueries = -1
	l.tcp.IdleTimeout = func() time.Duration { return 10 * time.Second }
	l.wg.Add(2 + s.readers)
	s.wg.Add(2 + s.readers)
	go func() {
		defer s.wg.Done()
		defer l.wg.Done()
		s.writeAsync(l)
	}()
	go func() {
		defer s.wg.Done()
		defer l.wg.Done()
		if err := l.tcp.ActivateAndServe(); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Warn("dns: tcp listener stopped", "addr", l.addr, "err", err)
		}
	}()
	for i := 0; i < s.readers; i++ {
		go func() {
			defer s.wg.Done()
			defer l.wg.Done()
			s.serveUDP(l)
		}()
	}
}

func (l *listener) close() {
	l.closeOnce.Do(func() { close(l.done) })
	_ = l.udp.Close()
	_ = l.tcp.Shutdown()
	if l.tcp.Listener != nil {
		_ = l.tcp.Listener.Close()
	}
}

// Unlisten stops answering on addr (as returned by Listen).
func (s *Server) Unlisten(addr netip.AddrPort) error {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	s.mu.Lock()
	l, ok := s.listeners[addr]
	delete(s.listeners, addr)
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("dns: not listening on %s", addr)
	}
	l.close()
	l.wg.Wait()
	return nil
}

// Addrs returns the addresses the server listens on.
func (s *Server) Addrs() []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]netip.AddrPort, 0, len(s.listeners))
	for a := range s.listeners {
		out = append(out, a)
	}
	return out
}

// Run serves until ctx is done, then closes the server.
func (s *Server) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-s.ctx.Done():
	}
	return s.Close()
}

// Close stops every listener and waits for the readers to exit. In-flight
// forwards are cancelled.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ls := s.listeners
	s.listeners = map[netip.AddrPort]*listener{}
	s.mu.Unlock()
	s.cancel()
	for _, l := range ls {
		l.close()
	}
	s.wg.Wait()
	if s.h.Forwarder != nil {
		s.h.Forwarder.Close()
	}
	return nil
}

// udpBatch is the number of datagrams read (recvmmsg) and written
// (sendmmsg) per system call.
const udpBatch = 32

// udpReqSize is the largest query read; longer datagrams are dropped.
const udpReqSize = 4096

type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// serveUDP is one reader of a UDP socket: it reads queries in batches,
// answers local ones inline into reused buffers, writes the answers in
// one batch and hands forwards to goroutines.
func (s *Server) serveUDP(l *listener) {
	var pc batchConn
	if l.addr.Addr().Is4() {
		pc = ipv4.NewPacketConn(l.udp)
	} else {
		pc = ipv6.NewPacketConn(l.udp)
	}
	in := make([]ipv4.Message, udpBatch)
	inBufs := make([][]byte, udpBatch)
	out := make([]ipv4.Message, udpBatch)
	outBufs := make([][]byte, udpBatch)
	for i := range in {
		inBufs[i] = make([]byte, udpReqSize)
		in[i].Buffers = [][]byte{inBufs[i]}
		outBufs[i] = make([]byte, 0, 1024)
		out[i].Buffers = make([][]byte, 1)
	}
	for {
		n, err := pc.ReadBatch(in, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Debug("dns: udp read", "addr", l.addr, "err", err)
			continue
		}
		k := 0
		for i := 0; i < n; i++ {
			m := &in[i]
			ua, ok := m.Addr.(*net.UDPAddr)
			if !ok || m.Flags&unix.MSG_TRUNC != 0 {
				continue
			}
			from := ua.AddrPort()
			b := s.reply(l, outBufs[k][:0], inBufs[i][:m.N], from)
			if b == nil {
				continue
			}
			if cap(b) <= 65535 {
				outBufs[k] = b[:0]
			}
			out[k].Buffers[0] = b
			out[k].Addr = m.Addr
			k++
		}
		for sent := 0; sent < k; {
			w, err := pc.WriteBatch(out[sent:k], 0)
			if err != nil {
				s.log.Debug("dns: udp write", "addr", l.addr, "err", err)
				break
			}
			sent += w
		}
	}
}

// writeAsync sends the answers of forwarded queries: whatever has queued
// up goes out in one sendmmsg, so the answers of one upstream exchange
// to the clients that waited for it (and of exchanges ending together)
// cost one system call.
func (s *Server) writeAsync(l *listener) {
	var pc batchConn
	if l.addr.Addr().Is4() {
		pc = ipv4.NewPacketConn(l.udp)
	} else {
		pc = ipv6.NewPacketConn(l.udp)
	}
	out := make([]ipv4.Message, udpBatch)
	for i := range out {
		out[i].Buffers = make([][]byte, 1)
	}
	for {
		var r asyncReply
		select {
		case r = <-l.async:
		case <-l.done:
			return
		}
		n := 0
		for {
			out[n].Buffers[0] = r.b
			out[n].Addr = net.UDPAddrFromAddrPort(r.to)
			n++
			if n == udpBatch {
				break
			}
			select {
			case r = <-l.async:
				continue
			default:
			}
			break
		}
		for sent := 0; sent < n; {
			w, err := pc.WriteBatch(out[sent:n], 0)
			if err != nil {
				s.log.Debug("dns: udp write", "addr", l.addr, "err", err)
				break
			}
			sent += w
		}
		for i := 0; i < n; i++ {
			out[i].Buffers[0], out[i].Addr = nil, nil
		}
	}
}

// reply answers one datagram into dst, or returns nil when there is
// nothing to send now (dropped, or forwarded asynchronously).
func (s *Server) reply(l *listener, dst, pkt []byte, from netip.AddrPort) []byte {
	client := from.Addr().Unmap()
	h := s.h
	// The wire fast paths, on one parse of the query: machine names,
	// then cached upstream answers.
	var q wireQuery
	if parseQuery(pkt, &q) {
		if b, ok := h.Authority.fastAnswerParsed(dst, pkt, &q, h.view(client)); ok {
			if h.Observer != nil {
				h.Observer.Query(q.qtype, dns.RcodeSuccess)
			}
			return b
		}
		if f := h.Forwarder; f != nil && f.opts.Cache != nil && q.qclass == classINET && !h.Authority.claims(&q) {
			if b, ok := f.opts.Cache.fastGet(dst, pkt, &q); ok {
				if h.Observer != nil && len(b) >= hdrLen {
					h.Observer.Query(q.qtype, int(b[3]&0x0F))
				}
				return b
			}
		}
	}
	resp, req, forward := h.packet(pkt, client)
	if forward {
		send := func(b []byte) {
			select {
			case l.async <- asyncReply{b, from}:
			default:
			}
		}
		err := h.Forwarder.forwardWaiter(waiter{req: req, pkt: append([]byte(nil), pkt...), wire: func(b []byte) {
			h.countWire(b)
			send(b)
		}, done: func(resp *dns.Msg, err error) {
			if err != nil {
				h.forwardFailed(req, err)
				resp = errorReply(req, dns.RcodeServerFailure)
			}
			Finish(req, resp, true)
			if b, err := resp.Pack(); err == nil {
				h.countMsg(req, resp)
				send(b)
			}
		}})
		if err == nil {
			return nil
		}
		resp = errorReply(req, dns.RcodeServerFailure)
		Finish(req, resp, true)
	}
	if resp == nil {
		return nil
	}
	b, err := resp.PackBuffer(dst)
	if err != nil {
		s.log.Debug("dns: pack", "err", err)
		return nil
	}
	h.countMsg(req, resp)
	return b
}

// packet handles one UDP datagram: it returns the finished reply, or the
// parsed request and forward=true when it must go upstream. Malformed
// packets with a readable header get FORMERR; others are dropped.
func (h *Handler) packet(pkt []byte, client netip.Addr) (resp, req *dns.Msg, forward bool) {
	req = new(dns.Msg)
	if err := req.Unpack(pkt); err != nil {
		var hdr dns.MsgHdr
		if len(pkt) < 12 || pkt[2]&0x80 != 0 {
			return nil, nil, false
		}
		hdr.Id = uint16(pkt[0])<<8 | uint16(pkt[1])
		hdr.Opcode = int(pkt[2]>>3) & 0xF
		resp = &dns.Msg{MsgHdr: hdr}
		resp.Response = true
		resp.Rcode = dns.RcodeFormatError
		return resp, nil, false
	}
	resp, forward = h.Local(req, client)
	if forward {
		return nil, req, true
	}
	if resp != nil {
		Finish(req, resp, true)
	}
	return resp, req, false
}
