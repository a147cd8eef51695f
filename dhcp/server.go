// Package dhcp is netspawn's DHCPv4 server. It serves only the links it is
// given (bound to each with SO_BINDTODEVICE, and checking the arrival
// interface of every packet), hands out reserved addresses to known MACs and
// pool addresses to others, and keeps leases crash-safe in an append-only
// log (package leasestore) written before each reply leaves. The lease
// decisions live in package lease, free of I/O; the reply options are built
// by a CoreDHCP-style chain of small handlers over a pre-built reply.
//
// The package knows nothing of the controller: it is driven through
// AddLink/RemoveLink/UpdateLink, Reserve/Unreserve and read with Leases and
// the OnLease callback.
package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netspawn/netspawn/dhcp/lease"
	"github.com/netspawn/netspawn/dhcp/leasestore"
)

// Lease is one client's lease on a link.
type Lease = lease.Lease

// LeaseState is where a lease is in its life (lease.Bound, lease.Released...).
type LeaseState = lease.State

// LinkConfig describes one served link.
type LinkConfig struct {
	Name               string // interface name
	Index              int    // interface index (0: looked up by name)
	Subnet             netip.Prefix
	ServerIP           netip.Addr // our address on the link: server identifier (and usually the router)
	PoolStart, PoolEnd netip.Addr // dynamic range; unset: reservations only
	Routers, DNS       []netip.Addr
	Domain             string
	Search             []string
	MTU                int
	LeaseTime          time.Duration // default 1h
}

// Options configure a Server.
type Options struct {
	StateDir string           // lease log directory (required)
	Logger   *slog.Logger     // default slog.Default()
	Now      func() time.Time // clock, for tests (default time.Now)
	// OnLease, if set, is called after every lease change has been persisted
	// (bound, released, expired, declined). It runs on the serving goroutine:
	// keep it short.
	OnLease func(Lease)
	// SyncInterval is the group-commit period of the lease log (default 5ms).
	SyncInterval time.Duration
	// Workers is the number of goroutines reading each link (default 1:
	// one reader takes what is queued in batches).
	Workers int
	// Observer, when set, counts packets per link and outcome (metrics).
	Observer Observer
}

// Server is a DHCPv4 server for a changing set of links.
type Server struct {
	opts  Options
	log   *slog.Logger
	drops *limiter
	debug bool // log every packet (logger enabled at debug level)
	store *leasestore.Store

	// Counters of the serving goroutines (see Stats).
	batches, packets, replies atomic.Uint64
	batchMax                  atomic.Int64 // nanoseconds

	mu      sync.Mutex
	links   map[string]*link
	running bool
	closed  bool
	wg      sync.WaitGroup
}

type reservation struct {
	mac      net.HardwareAddr
	ip       netip.Addr
	hostname string
}

type link struct {
	mu       sync.Mutex
	cfg      LinkConfig
	table    *lease.Table
	chain    []Handler
	reserved map[string]reservation // by MAC bytes
	conn     *conn                  // nil in tests without sockets
	obs      LinkObserver           // nil: not counted
}

// New opens the lease store and makes a server with no links.
func New(opts Options) (*Server, error) {
	if opts.StateDir == "" {
		return nil, errors.New("dhcp: Options.StateDir is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Workers <= 0 {
		opts.Workers = 1
	}
	st, err := leasestore.Open(opts.StateDir, leasestore.Options{SyncInterval: opts.SyncInterval})
	if err != nil {
		return nil, fmt.Errorf("dhcp: %w", err)
	}
	if st.Corrupt > 0 {
		opts.Logger.Warn("dhcp: skipped unreadable lease records", "count", st.Corrupt, "dir", opts.StateDir)
	}
	return &Server{
		debug: opts.Logger.Enabled(context.Background(), slog.LevelDebug),
		opts:  opts,
		log:   opts.Logger,
		drops: newLimiter(10, 20),
		store: st,
		links: map[string]*link{},
	}, nil
}

func (s *Server) newTable(cfg LinkConfig) (*lease.Table, error) {
	return lease.New(lease.Config{
		Link: cfg.Name, Subnet: cfg.Subnet, ServerIP: cfg.ServerIP,
		PoolStart: cfg.PoolStart, PoolEnd: cfg.PoolEnd, LeaseTime: cfg.LeaseTime,
	})
}

func checkConfig(cfg *LinkConfig) error {
	if cfg.Name == "" || len(cfg.Name) >= 16 || strings.ContainsAny(cfg.Name, " /\t\n") {
		return fmt.Errorf("dhcp: bad link name %q", cfg.Name)
	}
	if cfg.LeaseTime <= 0 {
		cfg.LeaseTime = time.Hour
	}
	if cfg.LeaseTime > 365*24*time.Hour {
		return fmt.Errorf("dhcp: link %s: lease time %v too long", cfg.Name, cfg.LeaseTime)
	}
	return nil
}

// AddLink starts serving a link. The link's sockets are opened in the
// network namespace of the calling thread.
func (s *Server) AddLink(cfg LinkConfig) error {
	return s.addLink(cfg, true)
}

// ErrLinkServed is AddLink's error for a link already served (UpdateLink
// changes a served link's configuration).
var ErrLinkServed = errors.New("already served")

func (s *Server) addLink(cfg LinkConfig, sockets bool) error {
	if err := checkConfig(&cfg); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("dhcp: server closed")
	}
	if _, ok := s.links[cfg.Name]; ok {
		return fmt.Errorf("dhcp: link %s: %w", cfg.Name, ErrLinkServed)
	}
	t, err := s.newTable(cfg)
	if err != nil {
		return fmt.Errorf("dhcp: %w", err)
	}
	now := s.opts.Now()
	for _, l := range s.store.Leases(cfg.Name) {
		t.Restore(l, now)
	}
	s.store.Bind(cfg.Name, t.Numbering(), t.EntryOf)
	l := &link{cfg: cfg, table: t, chain: buildChain(cfg), reserved: map[string]reservation{}}
	if sockets {
		if l.cfg.Index == 0 {
			ifi, err := net.InterfaceByName(cfg.Name)
			if err != nil {
				return fmt.Errorf("dhcp: link %s: %w", cfg.Name, err)
			}
			l.cfg.Index = ifi.Index
		}
		c, err := openConn(l.cfg.Name, l.cfg.Index)
		if err != nil {
			return fmt.Errorf("dhcp: link %s: %w", cfg.Name, err)
		}
		l.conn = c
		if s.running {
			s.startServing(l, c)
		}
	}
	if s.opts.Observer != nil {
		l.obs = s.opts.Observer.Link(cfg.Name)
	}
	s.links[cfg.Name] = l
	s.log.Info("dhcp: serving link", "link", cfg.Name, "subnet", cfg.Subnet, "pool_start", cfg.PoolStart, "pool_end", cfg.PoolEnd)
	return nil
}

func buildChain(cfg LinkConfig) []Handler {
	return append(optionHandlers(cfg), leaseTimeHandler(cfg.LeaseTime))
}

// RemoveLink stops serving a link. Its leases stay in the store and come
// back when the link is added again.
func (s *Server) RemoveLink(name string) error {
	s.mu.Lock()
	l, ok := s.links[name]
	delete(s.links, name)
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("dhcp: link %s not served", name)
	}
	if s.opts.Observer != nil {
		s.opts.Observer.LinkRemoved(name)
	}
	l.mu.Lock()
	c := l.conn
	l.conn = nil
	l.mu.Unlock()
	if c != nil {
		c.Close()
	}
	return nil
}

// UpdateLink changes a served link's configuration, keeping its leases and
// reservations (those no longer valid are dropped by the lease table's
// rules at the client's next request). A changed interface index (the link
// was recreated) reopens its sockets.
func (s *Server) UpdateLink(cfg LinkConfig) error {
	if err := checkConfig(&cfg); err != nil {
		return err
	}
	s.mu.Lock()
	l, ok := s.links[cfg.Name]
	running := s.running
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("dhcp: link %s not served", cfg.Name)
	}
	t, err := s.newTable(cfg)
	if err != nil {
		return fmt.Errorf("dhcp: %w", err)
	}
	if cfg.Index == 0 && l.conn != nil {
		ifi, err := net.InterfaceByName(cfg.Name)
		if err != nil {
			return fmt.Errorf("dhcp: link %s: %w", cfg.Name, err)
		}
		cfg.Index = ifi.Index
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := s.opts.Now()
	for _, le := range l.table.Leases() {
		t.Restore(le, now)
	}
	for _, r := range l.reserved {
		if err := t.Reserve(r.mac, r.ip, r.hostname); err != nil {
			s.log.Warn("dhcp: reservation dropped by link update", "link", cfg.Name, "mac", r.mac, "ip", r.ip, "err", err)
			delete(l.reserved, string(r.mac))
		}
	}
	if l.conn != nil && cfg.Index != l.cfg.Index {
		c, err := openConn(cfg.Name, cfg.Index)
		if err != nil {
			return fmt.Errorf("dhcp: link %s: %w", cfg.Name, err)
		}
		l.conn.Close()
		l.conn = c
		if running {
			s.startServing(l, c)
		}
	}
	s.store.Bind(cfg.Name, t.Numbering(), t.EntryOf)
	l.cfg, l.table, l.chain = cfg, t, buildChain(cfg)
	s.persist(l.table.TakeChanges())
	return nil
}

func (s *Server) link(name string) (*link, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.links[name]
	if !ok {
		return nil, fmt.Errorf("dhcp: link %s not served", name)
	}
	return l, nil
}

// Reserve ties ip to a MAC on a link: that client always gets ip (and
// hostname as option 12). Another client holding ip loses it, and so does
// another MAC's reservation of ip (a zone member's address that went to a
// new member): UpdateLink, which applies the reservations again, must not
// give it back.
func (s *Server) Reserve(linkName string, mac net.HardwareAddr, ip netip.Addr, hostname string) error {
	l, err := s.link(linkName)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.table.Reserve(mac, ip, hostname); err != nil {
		return fmt.Errorf("dhcp: %w", err)
	}
	for k, r := range l.reserved {
		if r.ip == ip && k != string(mac) {
			delete(l.reserved, k)
		}
	}
	l.reserved[string(mac)] = reservation{mac: append(net.HardwareAddr(nil), mac...), ip: ip, hostname: hostname}
	return s.persist(l.table.TakeChanges())
}

// Unreserve removes a MAC's reservation on a link.
func (s *Server) Unreserve(linkName string, mac net.HardwareAddr) error {
	l, err := s.link(linkName)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.table.Unreserve(mac)
	delete(l.reserved, string(mac))
	return s.persist(l.table.TakeChanges())
}

// Leases returns the leases of a link (offers not yet accepted excluded).
// For a link not served now it returns the stored ones.
func (s *Server) Leases(linkName string) []Lease {
	if linkName == "" {
		// Every link with leases, served now or not.
		var all []Lease
		for _, name := range s.store.Links() {
			all = append(all, s.Leases(name)...)
		}
		return all
	}
	l, err := s.link(linkName)
	if err != nil {
		return s.store.Leases(linkName)
	}
	l.mu.Lock()
	all := l.table.Leases()
	l.mu.Unlock()
	out := all[:0]
	for _, le := range all {
		if le.State != lease.Offered {
			out = append(out, le)
		}
	}
	return out
}

// persist writes changes to the log; the caller holds the link's lock so
// that changes of one link reach the log in order.
func (s *Server) persist(changes []lease.Change) error {
	if len(changes) == 0 {
		return nil
	}
	return s.store.Apply(changes)
}

func (s *Server) notify(changes []lease.Change) {
	if s.opts.OnLease == nil {
		return
	}
	for _, c := range changes {
		l := c.Lease
		if c.Deleted {
			if l.State != lease.Bound && l.State != lease.Offered {
				continue // already reported when it went soft
			}
			l.State = lease.Expired
		}
		if l.State == lease.Offered {
			continue
		}
		s.opts.OnLease(l)
	}
}

// Run serves until ctx is done, then closes the server.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("dhcp: server closed")
	}
	if s.running {
		s.mu.Unlock()
		return errors.New("dhcp: already running")
	}
	s.running = true
	for _, l := range s.links {
		if l.conn != nil {
			s.startServing(l, l.conn)
		}
	}
	s.mu.Unlock()
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return s.Close()
		case <-t.C:
			s.reclaim()
		}
	}
}

// reclaim expires leases whose time has passed on every link.
func (s *Server) reclaim() {
	s.mu.Lock()
	ls := make([]*link, 0, len(s.links))
	for _, l := range s.links {
		ls = append(ls, l)
	}
	s.mu.Unlock()
	now := s.opts.Now()
	for _, l := range ls {
		l.mu.Lock()
		l.table.Reclaim(now)
		ch := l.table.TakeChanges()
		err := s.persist(ch)
		l.mu.Unlock()
		if err != nil {
			s.log.Error("dhcp: persisting expired leases", "link", l.cfg.Name, "err", err)
		}
		s.notify(ch)
	}
}

// Close stops serving every link and closes the lease store (fsynced).
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for _, l := range s.links {
		if l.conn != nil {
			l.conn.Close()
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
	return s.store.Close()
}

func (s *Server) startServing(l *link, c *conn) {
	for i := 0; i < s.opts.Workers; i++ {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serve(l, c)
		}()
	}
}

// serve is one reader of a link's socket: it reads what is queued (up to a
// batch), decides every packet under one hold of the link's lock with one
// log write for all their lease changes, then sends the replies together.
func (s *Server) serve(l *link, c *conn) {
	b := newBatch()
	drop := func(what string, err error) { s.dropped(l.cfg.Name, what, err) }
	for {
		l.mu.Lock()
		want, src := l.cfg.Index, l.cfg.ServerIP
		l.mu.Unlock()
		pkts, err := c.ReadBatch(b, want, drop)
		if err != nil {
			if c.isClosed() {
				return
			}
			drop("read error", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if len(pkts) == 0 {
			continue
		}
		t0 := time.Now()
		s.processBatch(l, pkts, &b.res)
		for _, err := range b.res.drops {
			drop("packet dropped", err)
		}
		if b.res.lost != nil {
			drop("lease log", b.res.lost)
			continue
		}
		if n, err := c.SendBatch(b, b.res.replies, src); n > 0 && !c.isClosed() {
			drop("send failed", fmt.Errorf("%d replies: %w", n, err))
		}
		s.count(len(pkts), len(b.res.replies), time.Since(t0))
		s.notify(b.res.changes)
	}
}

// count adds a served batch to the counters.
func (s *Server) count(pkts, replies int, took time.Duration) {
	s.batches.Add(1)
	s.packets.Add(uint64(pkts))
	s.replies.Add(uint64(replies))
	for {
		m := s.batchMax.Load()
		if int64(took) <= m || s.batchMax.CompareAndSwap(m, int64(took)) {
			return
		}
	}
}

// Stats are a server's counters since New.
type Stats struct {
	// Batches of packets read together, the packets in them and the
	// replies sent for them.
	Batches, Packets, Replies uint64
	// BatchMax is the longest a batch took from its read to its replies'
	// send (decisions, the log write, encoding, sending): the longest the
	// server's socket went unread by that goroutine while it had work.
	BatchMax time.Duration
	// Log is the lease store's counters (appends, fsyncs, compactions).
	Log leasestore.Stats
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		Batches: s.batches.Load(), Packets: s.packets.Load(), Replies: s.replies.Load(),
		BatchMax: time.Duration(s.batchMax.Load()), Log: s.store.Stats(),
	}
}

func (s *Server) dropped(linkName, what string, err error) {
	if n, ok := s.drops.allow(s.opts.Now()); ok {
		s.log.Warn("dhcp: "+what, "link", linkName, "err", err, "suppressed", n)
	}
}
