package cluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/netspawn/netspawn/netctl/ula"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/connectivity"
)

// Config configures the cluster client.
type Config struct {
	Endpoints     []string
	CA, Cert, Key string // TLS files (optional)
	Node          string // this host's name in the cluster
	Underlay      netip.Addr
	TTL           time.Duration  // of this host's lease (default 5s)
	Prefix        string         // default DefaultPrefix
	Pools         []netip.Prefix // where zone subnets come from
	ZoneBits      int            // default DefaultZoneBits
	// OpTimeout bounds each etcd request on a machine's start path (default
	// 4s), so that a start fails within 5 s when etcd cannot be reached.
	OpTimeout time.Duration
	Logger    *slog.Logger
}

// Handlers are told about what other hosts publish. They are called from
// the client's watch goroutine, one at a time, never under its lock.
type Handlers struct {
	// Hosts is the set of hosts carrying a zone (this one included).
	Hosts func(zone string, hosts map[string]HostEntry)
	// Name is a machine of a zone appearing, changing (e != nil) or
	// vanishing (e == nil).
	Name func(zone, machine string, e *NameEntry)
}

// Client is this host's view of the cluster.
type Client struct {
	cfg  Config
	keys Keys
	cli  *clientv3.Client
	log  *slog.Logger
	h    Handlers

	mu        sync.Mutex
	desired   map[string]string // keys kept under this host's lease
	published map[string]string // what the current lease holds
	lease     clientv3.LeaseID
	kick      chan struct{}
	zones     map[string]ZoneInfo
	hosts     map[string]map[string]HostEntry
	names     map[string]map[string]NameEntry
	connected bool
	// Closed once the first full read of the hosts, and of the names, is
	// in (see Synced).
	hostsRead, namesRead chan struct{}

	cancel context.CancelFunc
	done   sync.WaitGroup
}

// Open makes the client. It does not wait for etcd: netspawnd starts, and
// machines outside cluster zones run, while etcd is away.
func Open(cfg Config, h Handlers) (*Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("no etcd endpoints (--cluster-etcd)")
	}
	if err := ValidNode(cfg.Node); err != nil {
		return nil, err
	}
	if !cfg.Underlay.IsValid() || !cfg.Underlay.Is4() {
		return nil, fmt.Errorf("cluster address %v: want the host's IPv4 underlay address (--cluster-address)", cfg.Underlay)
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 5 * time.Second
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.ZoneBits == 0 {
		cfg.ZoneBits = DefaultZoneBits
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = 4 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	tc, err := tlsConfig(cfg)
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            cfg.Endpoints,
		DialTimeout:          cfg.OpTimeout,
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		TLS:                  tc,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client for %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	c := &Client{cfg: cfg, keys: Keys{Root: cfg.Prefix}, cli: cli, log: cfg.Logger.With("part", "cluster"), h: h,
		desired: map[string]string{}, published: map[string]string{}, kick: make(chan struct{}, 1),
		zones: map[string]ZoneInfo{}, hosts: map[string]map[string]HostEntry{}, names: map[string]map[string]NameEntry{},
		hostsRead: make(chan struct{}), namesRead: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.done.Add(3)
	go func() { defer c.done.Done(); c.leaseLoop(ctx) }()
	go func() { defer c.done.Done(); c.watchLoop(ctx, c.keys.HostsPrefix(), c.hostEvent, c.hostsRead) }()
	go func() { defer c.done.Done(); c.watchLoop(ctx, c.keys.NamesPrefix(), c.nameEvent, c.namesRead) }()
	return c, nil
}

// Synced waits until this host has read the cluster's hosts and names once
// (both are followed in the background from netspawnd's start). A member
// started before that would be on a zone whose other hosts this one does
// not forward to yet, and whose names its DNS does not know yet.
func (c *Client) Synced(ctx context.Context) error {
	for _, ch := range []chan struct{}{c.hostsRead, c.namesRead} {
		select {
		case <-ch:
		case <-ctx.Done():
			return c.etcdErr("reading the cluster's hosts and names", ctx.Err())
		}
	}
	return nil
}

func tlsConfig(cfg Config) (*tls.Config, error) {
	if cfg.CA == "" && cfg.Cert == "" && cfg.Key == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CA != "" {
		pem, err := os.ReadFile(cfg.CA)
		if err != nil {
			return nil, fmt.Errorf("--cluster-etcd-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cluster-etcd-ca %s: no PEM certificate in it", cfg.CA)
		}
		tc.RootCAs = pool
	}
	if (cfg.Cert == "") != (cfg.Key == "") {
		return nil, errors.New("--cluster-etcd-cert and --cluster-etcd-key go together")
	}
	if cfg.Cert != "" {
		pair, err := tls.LoadX509KeyPair(cfg.Cert, cfg.Key)
		if err != nil {
			return nil, fmt.Errorf("--cluster-etcd-cert/--cluster-etcd-key: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// Close stops publishing; what this host published stays until its lease
// runs out (a restarted netspawnd publishes it again before that).
// It does not wait for etcd.
func (c *Client) Close() {
	c.cancel()
	c.done.Wait()
	c.cli.Close()
}

// Node is this host's name in the cluster.
func (c *Client) Node() string { return c.cfg.Node }

// Underlay is this host's VXLAN endpoint address.
func (c *Client) Underlay() netip.Addr { return c.cfg.Underlay }

// etcdErr names etcd and what to do when a request failed.
func (c *Client) etcdErr(what string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "context deadline exceeded") {
		return fmt.Errorf("%s: etcd at %s did not answer in time: is it running and reachable from this host? (netspawnd --cluster-etcd): %w",
			what, strings.Join(c.cfg.Endpoints, ","), err)
	}
	return fmt.Errorf("%s: etcd at %s: %w", what, strings.Join(c.cfg.Endpoints, ","), err)
}

func (c *Client) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx) // the caller's bound (Deadline)
	}
	return context.WithTimeout(ctx, c.cfg.OpTimeout)
}

// Zone returns the zone's record, creating it (subnet, VNI, /64) on first
// use anywhere in the cluster. subnet, when valid, is the one asked for
// (netspawnctl zone create --subnet); an existing zone keeps its own.
// taken, asked only when the zone is created here, lists the subnets this
// host already uses otherwise.
func (c *Client) Zone(ctx context.Context, name string, subnet netip.Prefix, taken func() ([]netip.Prefix, error)) (ZoneInfo, error) {
	c.mu.Lock()
	z, ok := c.zones[name]
	c.mu.Unlock()
	if ok && !subnet.IsValid() {
		return z, nil
	}
	ctx, cancel := c.opCtx(ctx)
	defer cancel()
	for range 20 {
		z, found, err := c.getZone(ctx, name)
		if err != nil {
			return ZoneInfo{}, c.etcdErr("zone "+name, err)
		}
		if found {
			if subnet.IsValid() && z.Subnet != subnet.Masked() {
				return ZoneInfo{}, errorOf(ErrConflict, "zone %s already exists in the cluster with subnet %s", name, z.Subnet)
			}
			c.mu.Lock()
			c.zones[name] = z
			c.mu.Unlock()
			return z, nil
		}
		z, err = c.createZone(ctx, name, subnet, taken)
		if errors.Is(err, errRetry) {
			continue
		}
		if err != nil {
			return ZoneInfo{}, err
		}
		c.log.Info("created cluster zone", "zone", name, "subnet", z.Subnet, "vni", z.VNI, "prefix6", z.Prefix6)
		c.mu.Lock()
		c.zones[name] = z
		c.mu.Unlock()
		return z, nil
	}
	return ZoneInfo{}, fmt.Errorf("zone %s: too many concurrent changes in etcd, try again", name)
}

var errRetry = errors.New("retry")

func (c *Client) getZone(ctx context.Context, name string) (ZoneInfo, bool, error) {
	r, err := c.cli.Get(ctx, c.keys.Zone(name))
	if err != nil || len(r.Kvs) == 0 {
		return ZoneInfo{}, false, err
	}
	var z ZoneInfo
	if err := json.Unmarshal(r.Kvs[0].Value, &z); err != nil {
		return ZoneInfo{}, false, fmt.Errorf("zone %s: bad record in etcd at %s: %w", name, c.keys.Zone(name), err)
	}
	return z, true, nil
}

// createZone picks a subnet, a VNI and a /64 and claims all three with the
// zone in one transaction; errRetry when another host won a race.
func (c *Client) createZone(ctx context.Context, name string, subnet netip.Prefix, taken func() ([]netip.Prefix, error)) (ZoneInfo, error) {
	r, err := c.cli.Get(ctx, c.keys.SubnetsPrefix(), clientv3.WithPrefix())
	if err != nil {
		return ZoneInfo{}, c.etcdErr("zone "+name, err)
	}
	used, err := taken()
	if err != nil {
		return ZoneInfo{}, err
	}
	for _, kv := range r.Kvs {
		s := strings.ReplaceAll(strings.TrimPrefix(string(kv.Key), c.keys.SubnetsPrefix()), "_", "/")
		if p, err := netip.ParsePrefix(s); err == nil {
			used = append(used, p)
		}
	}
	if subnet.IsValid() {
		subnet = subnet.Masked()
		if !subnet.Addr().Is4() || (subnet.Bits() != 16 && subnet.Bits() != 24) {
			return ZoneInfo{}, errorOf(ErrInvalid, "zone %s: subnet %s: want an IPv4 /16 or /24", name, subnet)
		}
		for _, u := range used {
			if u.Overlaps(subnet) {
				return ZoneInfo{}, errorOf(ErrConflict, "zone %s: subnet %s overlaps %s, in use in the cluster or on this host", name, subnet, u)
			}
		}
	} else if subnet, err = PickSubnet(c.cfg.Pools, c.cfg.ZoneBits, used); err != nil {
		return ZoneInfo{}, fmt.Errorf("zone %s: %w", name, err)
	}
	r, err = c.cli.Get(ctx, c.keys.VNIsPrefix(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return ZoneInfo{}, c.etcdErr("zone "+name, err)
	}
	usedVNI := map[uint32]bool{}
	for _, kv := range r.Kvs {
		if v, err := strconv.ParseUint(strings.TrimPrefix(string(kv.Key), c.keys.VNIsPrefix()), 10, 32); err == nil {
			usedVNI[uint32(v)] = true
		}
	}
	vni, err := PickVNI(usedVNI)
	if err != nil {
		return ZoneInfo{}, err
	}
	ula, err := c.clusterULA(ctx)
	if err != nil {
		return ZoneInfo{}, err
	}
	z := ZoneInfo{Name: name, Subnet: subnet, Gateway: Gateway(subnet), VNI: vni, MAC: GatewayMAC(vni).String(), Created: time.Now().UTC()}
	if p, err := Prefix6(ula, vni); err == nil {
		z.Prefix6 = p
	} else {
		c.log.Warn("cluster zone without IPv6", "zone", name, "err", err)
	}
	b, _ := json.Marshal(z)
	absent := func(k string) clientv3.Cmp { return clientv3.Compare(clientv3.CreateRevision(k), "=", 0) }
	tr, err := c.cli.Txn(ctx).If(absent(c.keys.Zone(name)), absent(c.keys.VNI(vni)), absent(c.keys.Subnet(subnet))).
		Then(clientv3.OpPut(c.keys.Zone(name), string(b)), clientv3.OpPut(c.keys.VNI(vni), name), clientv3.OpPut(c.keys.Subnet(subnet), name)).
		Commit()
	if err != nil {
		return ZoneInfo{}, c.etcdErr("zone "+name, err)
	}
	if !tr.Succeeded {
		return ZoneInfo{}, errRetry
	}
	return z, nil
}

// clusterULA returns the cluster's IPv6 /48, choosing it once.
func (c *Client) clusterULA(ctx context.Context) (netip.Prefix, error) {
	k := c.keys.ULA()
	r, err := c.cli.Get(ctx, k)
	if err != nil {
		return netip.Prefix{}, c.etcdErr("cluster IPv6 prefix", err)
	}
	if len(r.Kvs) > 0 {
		return netip.ParsePrefix(string(r.Kvs[0].Value))
	}
	p, err := ula.Generate(rand.Reader)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("cluster IPv6 prefix: %w", err)
	}
	tr, err := c.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, p.String())).Else(clientv3.OpGet(k)).Commit()
	if err != nil {
		return netip.Prefix{}, c.etcdErr("cluster IPv6 prefix", err)
	}
	if !tr.Succeeded {
		kvs := tr.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return netip.Prefix{}, errors.New("cluster IPv6 prefix: vanished while being read")
		}
		return netip.ParsePrefix(string(kvs[0].Value))
	}
	return p, nil
}

// Claim returns machine's address in zone: the one it holds in the
// cluster, else a free one, claimed in a transaction together with its
// name under this host's lease (one round trip for a new machine). It
// fails when the machine runs on another host now. ctx bounds it (see
// Deadline).
func (c *Client) Claim(ctx context.Context, z ZoneInfo, machine string) (netip.Addr, error) {
	for {
		lease, err := c.waitLease(ctx)
		if err != nil {
			return netip.Addr{}, err
		}
		a, err := c.claim(ctx, lease, z, machine)
		if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return a, err
		}
		// The lease ran out under us (etcd or this host too busy to renew
		// it in time): the lease loop grants another; claim under that.
		c.mu.Lock()
		if c.lease == lease {
			c.lease = 0
		}
		c.mu.Unlock()
	}
}

func (c *Client) claim(ctx context.Context, lease clientv3.LeaseID, z ZoneInfo, machine string) (netip.Addr, error) {
	mk, nk := c.keys.Machine(z.Name, machine), c.keys.Name(z.Name, machine)
	absent := func(k string) clientv3.Cmp { return clientv3.Compare(clientv3.CreateRevision(k), "=", 0) }
	name := func(a netip.Addr) string {
		b, _ := json.Marshal(NameEntry{Host: c.cfg.Node, Addrs: []netip.Addr{a}})
		return string(b)
	}
	tries := 0
	for a := range Candidates(z.Subnet, machine) {
		if tries++; tries > 4096 {
			break
		}
		ak := c.keys.Addr(z.Name, a)
		tr, err := c.cli.Txn(ctx).If(absent(mk), absent(ak), absent(nk)).
			Then(clientv3.OpPut(mk, a.String()), clientv3.OpPut(ak, machine), clientv3.OpPut(nk, name(a), clientv3.WithLease(lease))).
			Else(clientv3.OpGet(mk), clientv3.OpGet(nk)).Commit()
		if err != nil {
			return netip.Addr{}, c.etcdErr("address for "+machine, err)
		}
		if tr.Succeeded {
			c.notePublished(lease, nk, name(a))
			return a, nil
		}
		held, named := tr.Responses[0].GetResponseRange().Kvs, tr.Responses[1].GetResponseRange().Kvs
		if len(named) > 0 {
			var e NameEntry
			if json.Unmarshal(named[0].Value, &e) == nil && e.Host != c.cfg.Node {
				return netip.Addr{}, errorOf(ErrConflict, "machine %s already runs in cluster zone %s on host %s (stop it there first, or pick another name)", machine, z.Name, e.Host)
			}
		}
		if len(held) > 0 {
			// The machine has its address (from an earlier start, here or
			// elsewhere): claim its name alone.
			a, err := netip.ParseAddr(string(held[0].Value))
			if err != nil || !z.Subnet.Contains(a) {
				return netip.Addr{}, fmt.Errorf("machine %s: bad address %q in etcd at %s", machine, held[0].Value, mk)
			}
			return a, c.claimName(ctx, lease, z.Name, machine, a)
		}
		if len(named) > 0 {
			// This host's name record without an allocation (released
			// while it ran): take a new address and keep the name.
			if _, err := c.cli.Delete(ctx, nk); err != nil {
				return netip.Addr{}, c.etcdErr("name of "+machine, err)
			}
		}
		// Otherwise the address was taken: the next candidate.
	}
	return netip.Addr{}, errorOf(ErrExhausted, "zone %s: no free address left in %s", z.Name, z.Subnet)
}

func (c *Client) notePublished(lease clientv3.LeaseID, key, value string) {
	c.mu.Lock()
	if c.lease == lease {
		c.published[key] = value
	}
	c.mu.Unlock()
}

// claimName writes the machine's name record under this host's lease,
// unless another host holds it: of two hosts starting the same machine at
// once, one fails.
func (c *Client) claimName(ctx context.Context, lease clientv3.LeaseID, zone, machine string, a netip.Addr) error {
	nk := c.keys.Name(zone, machine)
	b, _ := json.Marshal(NameEntry{Host: c.cfg.Node, Addrs: []netip.Addr{a}})
	tr, err := c.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(nk), "=", 0)).
		Then(clientv3.OpPut(nk, string(b), clientv3.WithLease(lease))).Else(clientv3.OpGet(nk)).Commit()
	if err != nil {
		return c.etcdErr("name of "+machine, err)
	}
	if !tr.Succeeded {
		kvs := tr.Responses[0].GetResponseRange().Kvs
		var e NameEntry
		if len(kvs) > 0 && json.Unmarshal(kvs[0].Value, &e) == nil && e.Host != c.cfg.Node {
			return errorOf(ErrConflict, "machine %s already runs in cluster zone %s on host %s (stop it there first, or pick another name)", machine, zone, e.Host)
		}
		return nil // this host's already (a restart of the machine)
	}
	c.notePublished(lease, nk, string(b))
	return nil
}

// waitLease returns this host's lease, waiting for it (a netspawnd just
// started, or etcd just back) until ctx ends.
func (c *Client) waitLease(ctx context.Context) (clientv3.LeaseID, error) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		c.mu.Lock()
		lease := c.lease
		c.mu.Unlock()
		if lease != 0 {
			return lease, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("this host holds no lease in etcd at %s: is etcd running and reachable? (netspawnd --cluster-etcd)", strings.Join(c.cfg.Endpoints, ","))
		case <-t.C:
		}
	}
}

// Deadline bounds a machine start's requests to etcd. While this host's
// connection to etcd is up a start may wait (a busy etcd, hundreds of
// starts at once on a small machine, is slow, not gone); once the
// connection is down for a second it fails. So a start fails within 5 s
// of etcd going away (gRPC keepalives notice a silent etcd in 4 s), or
// within 4.5 s when it was away already.
func (c *Client) Deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if !c.Reachable() {
		return context.WithTimeout(ctx, 4500*time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		var down time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			switch {
			case c.Reachable():
				down = time.Time{}
			case down.IsZero():
				down = time.Now()
			case time.Since(down) >= time.Second:
				cancel()
				return
			}
		}
	}()
	return ctx, cancel
}

// Reachable reports whether the client's connection to etcd is up.
func (c *Client) Reachable() bool {
	conn := c.cli.ActiveConnection()
	if conn == nil {
		return false
	}
	st := conn.GetState()
	return st == connectivity.Ready || st == connectivity.Idle
}

// Release gives machine's address in zone back to the cluster.
func (c *Client) Release(ctx context.Context, zone, machine string) error {
	ctx, cancel := c.opCtx(ctx)
	defer cancel()
	mk := c.keys.Machine(zone, machine)
	r, err := c.cli.Get(ctx, mk)
	if err != nil {
		return c.etcdErr("release "+machine, err)
	}
	if len(r.Kvs) == 0 {
		return nil
	}
	a, err := netip.ParseAddr(string(r.Kvs[0].Value))
	ops := []clientv3.Op{clientv3.OpDelete(mk)}
	if err == nil {
		ops = append(ops, clientv3.OpDelete(c.keys.Addr(zone, a)))
	}
	_, err = c.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(mk), "=", r.Kvs[0].ModRevision)).Then(ops...).Commit()
	if err != nil {
		return c.etcdErr("release "+machine, err)
	}
	return nil
}

// Publish keeps key=value under this host's lease until Unpublish.
func (c *Client) publish(key string, v any) {
	b, _ := json.Marshal(v)
	c.mu.Lock()
	c.desired[key] = string(b)
	c.mu.Unlock()
	c.poke()
}

func (c *Client) unpublish(key string) {
	c.mu.Lock()
	delete(c.desired, key)
	c.mu.Unlock()
	c.poke()
}

func (c *Client) poke() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// JoinZone announces that this host carries zone (its VXLAN endpoint).
func (c *Client) JoinZone(zone string) {
	c.publish(c.keys.Host(zone, c.cfg.Node), HostEntry{Underlay: c.cfg.Underlay})
}

// LeaveZone withdraws this host from zone.
func (c *Client) LeaveZone(zone string) { c.unpublish(c.keys.Host(zone, c.cfg.Node)) }

// SetName publishes a machine of zone running here.
func (c *Client) SetName(zone, machine string, addrs []netip.Addr, os string) {
	c.publish(c.keys.Name(zone, machine), NameEntry{Host: c.cfg.Node, Addrs: addrs, OS: os})
}

// RemoveName withdraws a machine of zone.
func (c *Client) RemoveName(zone, machine string) { c.unpublish(c.keys.Name(zone, machine)) }

// leaseLoop keeps this host's lease and what it holds: a lease lost (etcd
// away longer than the TTL) is granted anew and everything republished.
func (c *Client) leaseLoop(ctx context.Context) {
	backoff := 250 * time.Millisecond
	for ctx.Err() == nil {
		gctx, cancel := c.opCtx(ctx)
		g, err := c.cli.Grant(gctx, int64((c.cfg.TTL+time.Second-1)/time.Second))
		cancel()
		if err != nil {
			c.setConnected(false, err)
			sleep(ctx, backoff)
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 250 * time.Millisecond
		kctx, kcancel := context.WithCancel(ctx)
		ka, err := c.cli.KeepAlive(kctx, g.ID)
		if err != nil {
			kcancel()
			c.setConnected(false, err)
			continue
		}
		c.mu.Lock()
		c.lease = g.ID
		c.published = map[string]string{}
		c.mu.Unlock()
		c.setConnected(true, nil)
		c.syncPublished(ctx, ka)
		kcancel()
		c.mu.Lock()
		c.lease = 0
		c.mu.Unlock()
		if ctx.Err() == nil {
			c.setConnected(false, errors.New("lease lost"))
		}
	}
	// A stop leaves what this host published to its lease: the machines
	// keep running, and a netspawnd started again within the TTL takes
	// their names over under a new lease; otherwise they go with it.
}

func (c *Client) setConnected(ok bool, err error) {
	c.mu.Lock()
	was := c.connected
	c.connected = ok
	c.mu.Unlock()
	switch {
	case ok && !was:
		c.log.Info("cluster: holding a lease in etcd; publishing this host's zones and machines", "endpoints", c.cfg.Endpoints)
	case !ok && was:
		c.log.Warn("cluster: lost etcd; running machines keep their network, new cluster zone members wait for etcd", "err", err)
	case !ok && err != nil:
		c.log.Debug("cluster: etcd not reachable", "err", err)
	}
}

// syncPublished writes the desired keys under the lease whenever they
// change, until the lease's keepalive channel closes.
func (c *Client) syncPublished(ctx context.Context, ka <-chan *clientv3.LeaseKeepAliveResponse) {
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ka:
			if !ok {
				return
			}
			continue
		case <-c.kick:
		case <-retry.C:
		}
		if err := c.pushDesired(ctx); err != nil {
			c.log.Debug("cluster: publishing", "err", err)
			retry.Reset(time.Second)
		}
	}
}

func (c *Client) pushDesired(ctx context.Context) error {
	c.mu.Lock()
	lease := c.lease
	var puts, dels []string
	for k, v := range c.desired {
		if c.published[k] != v {
			puts = append(puts, k)
		}
	}
	for k := range c.published {
		if _, ok := c.desired[k]; !ok {
			dels = append(dels, k)
		}
	}
	vals := make(map[string]string, len(puts))
	for _, k := range puts {
		vals[k] = c.desired[k]
	}
	c.mu.Unlock()
	var errs []error
	for _, k := range puts {
		octx, cancel := c.opCtx(ctx)
		_, err := c.cli.Put(octx, k, vals[k], clientv3.WithLease(lease))
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.mu.Lock()
		c.published[k] = vals[k]
		c.mu.Unlock()
	}
	for _, k := range dels {
		octx, cancel := c.opCtx(ctx)
		_, err := c.cli.Delete(octx, k)
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.mu.Lock()
		delete(c.published, k)
		c.mu.Unlock()
	}
	return errors.Join(errs...)
}

// watchLoop follows prefix: a full read, then the changes after it; again
// from a full read when the watch is cancelled (compaction). read is
// closed after the first full read.
func (c *Client) watchLoop(ctx context.Context, prefix string, ev func(key string, value []byte, deleted bool), read chan struct{}) {
	for ctx.Err() == nil {
		gctx, cancel := c.opCtx(ctx)
		r, err := c.cli.Get(gctx, prefix, clientv3.WithPrefix())
		cancel()
		if err != nil {
			sleep(ctx, time.Second)
			continue
		}
		c.resync(prefix, r.Kvs, ev)
		select {
		case <-read:
		default:
			close(read)
		}
		wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for resp := range c.cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(r.Header.Revision+1)) {
			if err := resp.Err(); err != nil {
				c.log.Debug("cluster: watch restarts", "prefix", prefix, "err", err)
				break
			}
			for _, e := range resp.Events {
				ev(string(e.Kv.Key), e.Kv.Value, e.Type == clientv3.EventTypeDelete)
			}
		}
		wcancel()
		sleep(ctx, 250*time.Millisecond)
	}
}

// resync replays a full read as events: keys gone since are deleted.
func (c *Client) resync(prefix string, kvs []*mvccpb.KeyValue, ev func(string, []byte, bool)) {
	seen := map[string]bool{}
	for _, kv := range kvs {
		seen[string(kv.Key)] = true
		ev(string(kv.Key), kv.Value, false)
	}
	c.mu.Lock()
	var gone []string
	switch prefix {
	case c.keys.HostsPrefix():
		for z, hs := range c.hosts {
			for n := range hs {
				if k := c.keys.Host(z, n); !seen[k] {
					gone = append(gone, k)
				}
			}
		}
	case c.keys.NamesPrefix():
		for z, ns := range c.names {
			for n := range ns {
				if k := c.keys.Name(z, n); !seen[k] {
					gone = append(gone, k)
				}
			}
		}
	}
	c.mu.Unlock()
	for _, k := range gone {
		ev(k, nil, true)
	}
}

func (c *Client) hostEvent(key string, value []byte, deleted bool) {
	zone, node, ok := SplitTwo(key, c.keys.HostsPrefix())
	if !ok {
		return
	}
	c.mu.Lock()
	hs := c.hosts[zone]
	if hs == nil {
		hs = map[string]HostEntry{}
		c.hosts[zone] = hs
	}
	if deleted {
		delete(hs, node)
	} else {
		var e HostEntry
		if err := json.Unmarshal(value, &e); err != nil || !e.Underlay.IsValid() {
			c.mu.Unlock()
			c.log.Warn("cluster: ignoring a bad host record", "key", key, "err", err)
			return
		}
		hs[node] = e
	}
	snap := make(map[string]HostEntry, len(hs))
	for n, e := range hs {
		snap[n] = e
	}
	c.mu.Unlock()
	if c.h.Hosts != nil {
		c.h.Hosts(zone, snap)
	}
}

func (c *Client) nameEvent(key string, value []byte, deleted bool) {
	zone, machine, ok := SplitTwo(key, c.keys.NamesPrefix())
	if !ok {
		return
	}
	c.mu.Lock()
	ns := c.names[zone]
	if ns == nil {
		ns = map[string]NameEntry{}
		c.names[zone] = ns
	}
	var out *NameEntry
	if deleted {
		if _, had := ns[machine]; !had {
			c.mu.Unlock()
			return
		}
		delete(ns, machine)
	} else {
		var e NameEntry
		if err := json.Unmarshal(value, &e); err != nil {
			c.mu.Unlock()
			c.log.Warn("cluster: ignoring a bad name record", "key", key, "err", err)
			return
		}
		ns[machine] = e
		out = &e
	}
	c.mu.Unlock()
	if c.h.Name != nil {
		c.h.Name(zone, machine, out)
	}
}

// Member is one machine of a cluster zone as the watch sees it.
type Member struct {
	Zone, Name string
	NameEntry
}

// Members lists every machine of every cluster zone, sorted.
func (c *Client) Members() []Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Member
	for z, ns := range c.names {
		for n, e := range ns {
			out = append(out, Member{Zone: z, Name: n, NameEntry: e})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Zone < out[j].Zone
	})
	return out
}

// Hosts returns the hosts carrying zone.
func (c *Client) Hosts(zone string) map[string]HostEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]HostEntry{}
	for n, e := range c.hosts[zone] {
		out[n] = e
	}
	return out
}

// KnownZones returns the zone records this host has read.
func (c *Client) KnownZones() []ZoneInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []ZoneInfo
	for _, z := range c.zones {
		out = append(out, z)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ListZones reads every zone record from etcd.
func (c *Client) ListZones(ctx context.Context) ([]ZoneInfo, error) {
	ctx, cancel := c.opCtx(ctx)
	defer cancel()
	r, err := c.cli.Get(ctx, c.keys.ZonesPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, c.etcdErr("list zones", err)
	}
	var out []ZoneInfo
	for _, kv := range r.Kvs {
		var z ZoneInfo
		if json.Unmarshal(kv.Value, &z) == nil {
			out = append(out, z)
		}
	}
	c.mu.Lock()
	for _, z := range out {
		c.zones[z.Name] = z
	}
	c.mu.Unlock()
	return out, nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
