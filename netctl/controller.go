package netctl

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/netspawn/netspawn/spawn/cgroup"

	"github.com/netspawn/netspawn/spawn/config"

	"github.com/netspawn/netspawn/netctl/api"
	"github.com/netspawn/netspawn/netctl/cluster"
	"github.com/netspawn/netspawn/netctl/ipam"
	"github.com/netspawn/netspawn/netctl/links"
	"github.com/netspawn/netspawn/netctl/naming"
	"github.com/netspawn/netspawn/netctl/nft"
	"github.com/netspawn/netspawn/netctl/store"
	"github.com/netspawn/netspawn/netctl/supervisor"
	"golang.org/x/sys/unix"
)

// Config configures a Controller.
type Config struct {
	RuntimeDir    string         // machines.d/ lives here (default /run/netspawn)
	StateDir      string         // ipam.d/ lives here (default /var/lib/netspawn)
	Pools         []netip.Prefix // default ipam.DefaultPools
	MachineIDPath string         // default /etc/machine-id
	DNS           []netip.Addr   // resolvers handed to containers; default: the host's non-loopback ones
	Domain        string         // search domain handed to containers (optional)
	Logger        *slog.Logger
	DHCP          DHCPServer // optional
	LinkHooks     []LinkHook // optional, told after DHCP (e.g. a DNS server's listeners)
	Names         NameSink   // optional
	// DNSOnGateway hands containers their gateway address as resolver (a DNS
	// server listens there, or DNSSteer redirects it) instead of DNS.
	DNSOnGateway bool
	// Supervisor starts machines as background services (optional).
	Supervisor *supervisor.Supervisor
	// DNSSteer redirects DNS queries containers send to a host address to
	// this one socket (see nft.RuleOptions).
	DNSSteer netip.AddrPort
	// NoZoneIsolation lets zones reach each other and ve- containers
	// (by default nftables drops routed traffic between them).
	NoZoneIsolation bool
	IPv6            IPv6Config // see v6.go
	// Cluster, when set, makes every zone a cluster zone: shared state in
	// etcd, VXLAN between hosts (clusterzone.go).
	Cluster *cluster.Config
	// Observer, when set, counts nftables transactions and API calls
	// (metrics; see Observer).
	Observer Observer
	// CgroupSweep is how often the cgroups of machines that never
	// registered (their netspawn killed first) are looked for and removed,
	// also once at start (strays.go); 0: never.
	CgroupSweep time.Duration
}

// linkState is one link made for a machine (persisted).
type linkState struct {
	Kind      string           `json:"kind"` // "veth" or "veth-extra"
	Host      string           `json:"host"`
	AltName   string           `json:"altname,omitempty"`
	Container string           `json:"container"`
	HostMAC   string           `json:"host_mac"`
	MAC       string           `json:"mac"`
	Alloc     *ipam.Allocation `json:"alloc,omitempty"`
	Index     int              `json:"index,omitempty"`   // host-side ifindex
	MTU       int              `json:"mtu,omitempty"`     // both ends (cluster zones: the VXLAN's)
	Prefix6   netip.Prefix     `json:"prefix6,omitempty"` // the link's /64 (gateway ::1)
	Addr6     netip.Addr       `json:"addr6,omitempty"`   // the container's (EUI-64 of MAC)
}

// machine is one registered machine (persisted in the runtime dir).
type machine struct {
	Req      api.RegisterRequest `json:"request"`
	Leader   Leader              `json:"leader"`
	NetNS    *netnsRef           `json:"netns,omitempty"` // instead of a leader (CNI)
	Links    []linkState         `json:"links"`
	Elements nft.Elements        `json:"elements"` // owner index: exactly what this machine added
	Reply    api.RegisterReply   `json:"reply"`
	Since    time.Time           `json:"since"`
	OS       string              `json:"os,omitempty"`
	Cgroups  []string            `json:"cgroups,omitempty"` // netspawn's cgroups for it, removed when it is gone
	Attach   machineAttach       `json:"attach,omitempty"`  // attachments besides veth (attach.go)

	pidfd  int
	ph     *phases
	claim  *clusterClaim // a cluster zone member's zone and address, while registering
	live   []netip.Addr  // addresses read from its namespace (bridged machines)
	graced bool          // teardown deferred once after the leader died
}

// Controller is the network controller: registry, pools, links, nftables.
type Controller struct {
	cfg   Config
	log   *slog.Logger
	mid   naming.MachineID
	links *links.Handle
	fw    *nft.Firewall
	alloc *ipam.Allocator
	watch *watcher
	// stopTableWatch ends the watch for deletions in our nftables table.
	stopTableWatch func()
	pfx            *links.Prefixes // live view of host prefixes (nil: dump each time)
	del            *deleter
	sync           chan struct{} // asks the syncer to make ipam.d durable
	syncDone       chan struct{}

	mu       sync.Mutex
	machines map[string]*machine
	managed  map[int]bool // ifindexes of our host links
	fwdOn    bool
	closed   bool
	att      attachState // bridges, zones, macvlan, moved interfaces (attach.go)
	v6       *v6State
	fwd6On   bool
	// fwWarnings: other nftables tables that drop container traffic
	// (fwcheck.go); fwDone is closed when the last check started is over.
	fwWarnings []string
	fwDone     chan struct{}
	// Cluster zones (clusterzone.go): nil without Config.Cluster.
	cl      *cluster.Client
	clMTU   int            // of cluster zone links: the underlay's less VXLAN's overhead
	clTable bool           // the bridge table that keeps gateways local is in place
	clNets  []netip.Prefix // the cluster zones' subnets its sets hold (clusterNets)
	// The sweeper of stray machine cgroups (strays.go), while it runs.
	sweepStop, sweepDone chan struct{}
}

// DefaultRuntimeDir and DefaultStateDir honour NETSPAWN_RUNTIME_DIR and
// NETSPAWN_STATE_DIR.
func DefaultRuntimeDir() string { return config.RuntimeDir() }

// DefaultStateDir is $NETSPAWN_STATE_DIR or /var/lib/netspawn.
func DefaultStateDir() string { return config.StateDir() }

func (c *Controller) machinesDir() string { return filepath.Join(c.cfg.RuntimeDir, "machines.d") }
func (c *Controller) ipamDir() string     { return filepath.Join(c.cfg.StateDir, "ipam.d") }

// New loads the saved state, sets up the nftables table and reconciles the
// kernel with the machines that still run: their links, addresses and
// elements are kept (repaired when missing), dead machines are cleaned up.
func New(cfg Config) (*Controller, error) {
	if cfg.RuntimeDir == "" {
		cfg.RuntimeDir = DefaultRuntimeDir()
	}
	if cfg.StateDir == "" {
		cfg.StateDir = DefaultStateDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DNS == nil {
		cfg.DNS = hostResolvers("/etc/resolv.conf")
	}
	mid, err := machineID(cfg)
	if err != nil {
		return nil, err
	}
	c := &Controller{cfg: cfg, log: cfg.Logger, mid: mid, machines: map[string]*machine{}, managed: map[int]bool{},
		sync: make(chan struct{}, 1), syncDone: make(chan struct{})}
	for _, d := range []string{c.machinesDir(), c.ipamDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	saved, err := loadDir[ipam.Allocation](c.ipamDir())
	if err != nil {
		return nil, err
	}
	c.alloc = ipam.New(cfg.Pools, saved)
	if err := c.initV6(); err != nil {
		return nil, err
	}
	if c.links, err = links.New(); err != nil {
		return nil, err
	}
	// The namespace interfaces moved into containers go back to: the one
	// c.links works in, taken from this thread now rather than from the
	// process's main thread later.
	if c.att.hostNS, err = os.Open("/proc/thread-self/ns/net"); err != nil {
		c.links.Close()
		return nil, fmt.Errorf("open own network namespace: %w", err)
	}
	if c.fw, err = nft.Open(nft.Options{Rules: nft.RuleOptions{DNSSteer: cfg.DNSSteer, NoZoneIsolation: cfg.NoZoneIsolation},
		Observe: c.observeNFT}); err != nil {
		c.links.Close()
		return nil, err
	}
	if c.pfx, err = c.links.WatchPrefixes(); err != nil {
		c.log.Warn("cannot watch host addresses and routes; dumping them for each machine", "err", err)
		c.pfx = nil
	}
	go c.syncer()
	if cfg.Cluster != nil {
		if err := c.openCluster(); err != nil {
			c.Close()
			return nil, fmt.Errorf("cluster: %w", err)
		}
	}
	if c.del, err = newDeleter(c.pfx, c.log); err != nil {
		c.Close()
		return nil, err
	}
	if c.watch, err = newWatcher(c.leaderExited); err != nil {
		c.Close()
		return nil, err
	}
	if cfg.Cluster == nil {
		if err := c.checkNoClusterMembers(); err != nil {
			c.Close()
			return nil, err
		}
	}
	if err := c.reconcile(); err != nil {
		c.Close()
		return nil, err
	}
	// Another tool may flush the ruleset (a firewall reload): put the table
	// back at once, not at the next machine's start.
	if gone, stop, err := c.fw.Watch(0); err != nil {
		c.log.Warn("cannot watch nftables; a flushed ruleset is restored at the next machine's start", "err", err)
	} else {
		c.stopTableWatch = stop
		go c.restoreOnFlush(gone)
	}
	if cfg.CgroupSweep > 0 {
		c.sweepStop, c.sweepDone = make(chan struct{}), make(chan struct{})
		go c.sweeper(cfg.CgroupSweep, c.sweepStop, c.sweepDone)
	}
	return c, nil
}

// restoreOnFlush restores the table whenever something deleted part of it.
func (c *Controller) restoreOnFlush(gone <-chan struct{}) {
	for range gone {
		c.mu.Lock()
		if !c.closed {
			if err := c.restoreTable(nft.Elements{}); err != nil {
				c.log.Error("restoring the nftables table after it was changed behind our back", "err", err)
			}
			if c.clTable {
				// A flush takes the bridge table of cluster zones too. Only
				// when it is not intact: rebuilding it deletes it first, which
				// this watch sees, and so on forever.
				if ok, _ := nft.ClusterTableOK(); !ok {
					if err := nft.EnsureClusterTable(0, c.clNets); err != nil {
						c.log.Error("restoring the bridge table of cluster zones", "err", err)
					}
				}
			}
		}
		c.mu.Unlock()
	}
}

// Close stops watching leaders and releases sockets. Running machines keep
// their networking; a new controller picks them up.
func (c *Controller) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	if c.stopTableWatch != nil {
		c.stopTableWatch()
	}
	if c.sweepStop != nil {
		close(c.sweepStop)
		<-c.sweepDone
	}
	if c.watch != nil {
		c.watch.close()
	}
	if c.del != nil {
		c.del.close()
	}
	if c.pfx != nil {
		c.pfx.Close()
	}
	close(c.sync)
	<-c.syncDone
	c.mu.Lock()
	for _, m := range c.machines {
		if m.pidfd >= 0 {
			unix.Close(m.pidfd)
			m.pidfd = -1
		}
	}
	c.mu.Unlock()
	if c.cl != nil {
		c.cl.Close()
	}
	c.closeV6()
	if c.fw != nil {
		c.fw.Close()
	}
	if c.links != nil {
		c.links.Close()
	}
	if c.att.hostNS != nil {
		c.att.hostNS.Close()
	}
}

// machineID reads the host's machine id (cfg.MachineIDPath, default
// /etc/machine-id, then /var/lib/dbus/machine-id). Hosts without systemd or
// D-Bus may have neither: then an id is generated once and kept in the
// state dir, so MACs stay stable on that host.
func machineID(cfg Config) (naming.MachineID, error) {
	if cfg.MachineIDPath != "" && cfg.MachineIDPath != "/etc/machine-id" {
		return naming.ReadMachineID(cfg.MachineIDPath)
	}
	for _, p := range []string{"/etc/machine-id", "/var/lib/dbus/machine-id", filepath.Join(cfg.StateDir, "machine-id")} {
		if id, err := naming.ReadMachineID(p); err == nil {
			return id, nil
		}
	}
	var id naming.MachineID
	if _, err := rand.Read(id[:]); err != nil {
		return id, fmt.Errorf("generate a machine id: %w", err)
	}
	p := filepath.Join(cfg.StateDir, "machine-id")
	if err := store.WriteFile(p, []byte(hex.EncodeToString(id[:])+"\n")); err != nil {
		return id, err
	}
	cfg.Logger.Warn("no /etc/machine-id: generated one for stable MAC addresses", "path", p)
	return id, nil
}

// syncer makes ipam.d and ipam6.d durable in batches: allocations are written without
// fsync (atomic and safe against a crash of netspawnd) and one syncfs covers
// every write made since the last one. Running machines' allocations are
// also in their runtime records, from which New restores them.
func (c *Controller) syncer() {
	defer close(c.syncDone)
	for range c.sync {
		if err := store.Syncfs(c.ipamDir()); err != nil {
			c.log.Warn("sync state", "err", err)
		}
		time.Sleep(20 * time.Millisecond) // batch what arrives meanwhile
	}
	_ = store.Syncfs(c.ipamDir())
}

func (c *Controller) requestSync() {
	select {
	case c.sync <- struct{}{}:
	default:
	}
}

func (c *Controller) inUse() ([]netip.Prefix, error) {
	if c.pfx != nil {
		if p, ok := c.pfx.InUse(c.ours); ok {
			return p, nil
		}
	}
	return c.links.InUse(c.ours)
}

// ours reports whether a host link's addresses are netspawnd's own (not
// in use by the host): a link it manages or is deleting.
func (c *Controller) ours(idx int) bool { return c.managed[idx] || c.del.deleting(idx) }

// inUseFor is inUse for a machine's allocation: when the live view says
// that the machine's saved subnet is in use on the host, the kernel is
// asked again (a dump), since moving a machine to another subnet changes
// its address for good and frees its old one for the next machine.
func (c *Controller) inUseFor(name string) ([]netip.Prefix, error) {
	inUse, err := c.inUse()
	old, saved := c.alloc.Get(name)
	if err != nil || !saved || c.pfx == nil || !ipam.OverlapsAny(old.Subnet, inUse) {
		return inUse, err
	}
	fresh, err := c.links.InUse(c.ours)
	if err != nil {
		return inUse, nil
	}
	for _, p := range fresh {
		if ipam.OverlapsAny(old.Subnet, []netip.Prefix{p}) {
			c.log.Warn("a machine's subnet is in use on the host: it gets another, and another address", "machine", name, "subnet", old.Subnet, "in_use", p)
			break
		}
	}
	return fresh, nil
}

func loadDir[T any](dir string) (map[string]T, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	out := map[string]T{}
	for _, e := range ents {
		n := e.Name()
		if !strings.HasSuffix(n, ".json") || strings.HasPrefix(n, ".") {
			continue
		}
		var v T
		if ok, err := store.ReadJSON(filepath.Join(dir, n), &v); err != nil {
			return nil, err
		} else if ok {
			out[strings.TrimSuffix(n, ".json")] = v
		}
	}
	return out, nil
}

// reconcile runs once at start.
func (c *Controller) reconcile() error {
	created, err := c.fw.Ensure()
	if err != nil {
		return err
	}
	if created {
		c.log.Info("created nftables table", "table", "inet "+nft.TableName)
	}
	saved, err := loadDir[machine](c.machinesDir())
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var want nft.Elements
	names := make([]string, 0, len(saved))
	for n := range saved {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		m := saved[name]
		m.pidfd = -1
		if m.NetNS != nil {
			if !m.running() {
				c.log.Info("machine's network namespace went while the controller was away; cleaning up", "machine", name, "netns", m.NetNS.Path)
				c.teardown(&m)
				c.removeMachineFile(name)
				continue
			}
			if m.Req.Starting {
				// Its netspawn holds the namespace until it names the leader.
				fd, err := m.Leader.Open()
				if err != nil {
					c.log.Info("machine's netspawn died while the controller was away; cleaning up", "machine", name, "netspawn", m.Leader.PID)
					c.teardown(&m)
					c.removeMachineFile(name)
					continue
				}
				m.pidfd = fd
			}
		} else {
			fd, err := m.Leader.Open()
			if err != nil {
				c.log.Info("machine died while the controller was away; cleaning up", "machine", name, "leader", m.Leader.PID)
				c.teardown(&m)
				c.removeMachineFile(name)
				continue
			}
			m.pidfd = fd
		}
		for _, l := range m.Links {
			if l.Alloc != nil && l.Kind != kindZone { // a zone member's is the zone's
				c.alloc.Restore(name, *l.Alloc)
			}
			if l.Kind == "veth" {
				c.restoreV6(name, l.Prefix6)
			}
		}
		if err := c.repairLinks(&m); err != nil {
			c.log.Warn("repair links", "machine", name, "err", err)
		}
		want = want.Merge(m.Elements)
		mm := m
		want = want.Merge(c.reconcileAttach(&mm))
		c.machines[name] = &mm
		if mm.pidfd >= 0 {
			if err := c.watch.add(mm.pidfd, &mm); err != nil {
				return err
			}
		}
		c.publish(&mm)
		c.log.Info("machine still running, kept", "machine", name, "leader", m.Leader.PID, "netns", mm.netnsPath())
	}
	added, deleted, err := c.fw.Reconcile(want)
	if err != nil {
		return fmt.Errorf("reconcile nftables: %w", err)
	}
	if !added.Empty() || !deleted.Empty() {
		c.log.Info("reconciled nftables elements", "added", added, "deleted", deleted)
	}
	if len(c.machines) > 0 {
		c.ensureForwarding()
	}
	c.dropStrayLinks()
	c.checkHostFirewall(naming.PrefixVeth + "machine")
	return nil
}

// repairLinks makes sure a running machine's host links exist and are
// configured; existing links are left in place.
func (c *Controller) repairLinks(m *machine) error {
	for i := range m.Links {
		l := &m.Links[i]
		st, ok, err := c.links.Get(l.Host)
		if err != nil {
			return err
		}
		if ok {
			l.Index = st.Index
		} else {
			c.log.Warn("host link of a running machine is missing; recreating", "machine", m.Req.Name, "link", l.Host)
			if l.Index, err = c.addVeth(m, *l); err != nil {
				return err
			}
		}
		c.managed[l.Index] = true
		if l.Kind == "veth" && l.Alloc != nil {
			if err := c.hostIPv6(l.Host); err != nil {
				return err
			}
			if err := c.links.Configure(l.Host, netip.PrefixFrom(l.Alloc.Gateway, l.Alloc.Subnet.Bits())); err != nil {
				return err
			}
			if err := c.repairV6(*l); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *Controller) addVeth(m *machine, l linkState) (int, error) {
	nsf, err := m.openNetNS()
	if err != nil {
		return 0, err
	}
	defer nsf.Close()
	hm, _ := net.ParseMAC(l.HostMAC)
	cm, _ := net.ParseMAC(l.MAC)
	return c.links.AddVeth(links.Veth{HostName: l.Host, HostAltName: l.AltName, HostMAC: hm, PeerName: l.Container, PeerMAC: cm, PeerNetNS: int(nsf.Fd()),
		Marked: l.Kind != "veth-extra", MTU: l.MTU}) // extra veths are the user's to configure, as with nspawn
}

func (c *Controller) ensureForwarding() {
	c.ensureForwarding6()
	if c.fwdOn {
		return
	}
	changed, err := nft.EnableIPv4Forwarding()
	if err != nil {
		c.log.Warn("cannot enable IPv4 forwarding", "err", err)
		return
	}
	if changed {
		c.log.Info("enabled IPv4 forwarding (net.ipv4.ip_forward=1)")
	}
	c.fwdOn = true
}

func apiErr(code, format string, args ...any) error {
	return &api.Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// forwardsTo turns requested ports into forwards to addr: TCP unless
// said otherwise, to the same port unless said otherwise.
func forwardsTo(ports []api.Port, addr netip.Addr) []nft.Forward {
	var out []nft.Forward
	for _, p := range ports {
		proto := strings.ToLower(p.Protocol)
		if proto == "" {
			proto = "tcp"
		}
		cp := p.ContainerPort
		if cp == 0 {
			cp = p.HostPort
		}
		out = append(out, nft.Forward{Proto: proto, HostPort: p.HostPort, Addr: addr, Port: cp})
	}
	return out
}

// checkPorts validates the requested forwards and refuses host ports already
// forwarded to another running machine.
func (c *Controller) checkPorts(name string, ports []api.Port) error {
	seen := map[string]bool{}
	for _, p := range ports {
		proto := strings.ToLower(p.Protocol)
		if proto == "" {
			proto = "tcp"
		}
		if _, err := nft.ProtoNumber(proto); err != nil {
			return apiErr(api.CodeInvalid, "port %d: %v", p.HostPort, err)
		}
		if p.HostPort == 0 {
			return apiErr(api.CodeInvalid, "port forward with host port 0")
		}
		k := proto + ":" + strconv.Itoa(int(p.HostPort))
		if seen[k] {
			return apiErr(api.CodeInvalid, "port %s given twice", k)
		}
		seen[k] = true
		for other, m := range c.machines {
			if other == name {
				continue
			}
			for _, f := range m.Elements.Forwards {
				if f.Proto == proto && f.HostPort == p.HostPort {
					return apiErr(api.CodeConflict, "host port %s is already forwarded to machine %q (%s:%d)", k, other, f.Addr, f.Port)
				}
			}
		}
	}
	return nil
}

// Register creates the machine's networking and returns how the container
// configures its side. Registering again with the same live leader returns
// the same reply.
func (c *Controller) Register(ctx context.Context, req api.RegisterRequest) (api.RegisterReply, error) {
	if err := config.CheckMachineName(req.Name); err != nil {
		return api.RegisterReply{}, apiErr(api.CodeInvalid, "%v", err)
	}
	if mac := req.Network.MAC; mac != "" {
		if hw, err := net.ParseMAC(mac); err != nil || len(hw) != 6 || hw[0]&1 != 0 {
			return api.RegisterReply{}, apiErr(api.CodeInvalid, "host0 MAC %q: not a unicast Ethernet address", mac)
		}
	}
	if req.Class == "" {
		req.Class = "container"
	}
	if req.Service == "" {
		req.Service = "netspawn"
	}
	ph := newPhases()
	var leader Leader
	var ref *netnsRef
	if req.NetNS != "" {
		switch {
		case req.Starting && req.Leader == 0:
			return api.RegisterReply{}, apiErr(api.CodeInvalid, "a machine registered while starting names the process that holds its network namespace (leader)")
		case !req.Starting && req.Leader != 0:
			return api.RegisterReply{}, apiErr(api.CodeInvalid, "a machine has a leader process or a network namespace file, not both")
		}
		r, err := readNetNSRef(req.NetNS)
		if err != nil {
			return api.RegisterReply{}, apiErr(api.CodeInvalid, "%v", err)
		}
		ref = &r
		if req.Starting {
			// The caller, until SetLeader: its exit ends the machine.
			if leader, err = ReadLeader(req.Leader); err != nil {
				return api.RegisterReply{}, apiErr(api.CodeInvalid, "%v", err)
			}
		}
	} else if req.Starting {
		return api.RegisterReply{}, apiErr(api.CodeInvalid, "a machine registered while starting needs the network namespace it will run in (netns)")
	} else {
		var err error
		if leader, err = ReadLeader(req.Leader); err != nil {
			return api.RegisterReply{}, apiErr(api.CodeInvalid, "%v", err)
		}
	}
	if n := req.Network.ContainerIf; n != "" {
		if err := naming.ValidIfName(n); err != nil {
			return api.RegisterReply{}, apiErr(api.CodeInvalid, "container interface: %v", err)
		}
	}
	if a := req.Network.Address; a != "" {
		if ip, err := netip.ParseAddr(a); err != nil || !ip.Is4() {
			return api.RegisterReply{}, apiErr(api.CodeInvalid, "address %q: not an IPv4 address", a)
		}
	}
	var claim *clusterClaim
	var err error
	if c.cl != nil && req.Network.Zone != "" {
		// etcd first, outside the lock: an etcd away holds up only the
		// members of cluster zones, and they fail within its timeout.
		if claim, err = c.claimCluster(ctx, req); err != nil {
			return api.RegisterReply{}, err
		}
		ph.mark("cluster")
		defer func() {
			c.mu.Lock()
			_, registered := c.machines[req.Name]
			c.mu.Unlock()
			if !registered {
				c.cl.RemoveName(req.Network.Zone, req.Name)
			}
		}()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ph.mark("lock")
	defer func() { c.log.Debug("register phases", "machine", req.Name, "ms", ph.String()) }()
	if c.closed {
		return api.RegisterReply{}, apiErr(api.CodeInternal, "controller is shutting down")
	}
	if err := c.checkCNIAttachment(req); err != nil {
		return api.RegisterReply{}, err
	}
	if old, ok := c.machines[req.Name]; ok {
		if ref == nil && old.NetNS == nil && old.Leader == leader {
			return old.Reply, nil
		}
		// The same starting process again, for the same namespace: a
		// register sent again after the connection broke (netspawnd killed
		// after it recorded the machine, before the reply left; the next
		// netspawnd kept the machine from its record).
		if ref != nil && req.Starting && old.NetNS != nil && old.Leader == leader &&
			old.NetNS.Dev == ref.Dev && old.NetNS.Ino == ref.Ino && old.running() {
			return old.Reply, nil
		}
		if old.running() {
			if old.NetNS != nil {
				return api.RegisterReply{}, apiErr(api.CodeConflict, "machine %q is already attached (network namespace %s)", req.Name, old.NetNS.Path)
			}
			return api.RegisterReply{}, apiErr(api.CodeConflict, "machine %q is already running (leader PID %d)", req.Name, old.Leader.PID)
		}
		c.unregisterLocked(old, "leader gone")
	}
	if err := c.checkAttach(req); err != nil {
		return api.RegisterReply{}, err
	}
	if len(req.Network.Ports) > 0 && !req.Network.Veth && req.Network.Zone == "" {
		return api.RegisterReply{}, apiErr(api.CodeInvalid, "port forwards need a veth network (-n/--network-veth or --network-zone)")
	}
	if err := c.checkPorts(req.Name, req.Network.Ports); err != nil {
		return api.RegisterReply{}, err
	}
	m := &machine{Req: req, Leader: leader, NetNS: ref, Since: time.Now().UTC(), pidfd: -1, ph: ph, claim: claim}
	if ref != nil {
		f, err := ref.open()
		if err != nil {
			return api.RegisterReply{}, apiErr(api.CodeInvalid, "%v", err)
		}
		same, err := sameAsOwn(f)
		f.Close()
		if err != nil {
			return api.RegisterReply{}, apiErr(api.CodeInvalid, "%v", err)
		} else if same {
			return api.RegisterReply{}, apiErr(api.CodeInvalid, "%s is the controller's own network namespace: an attachment needs a private one", ref.Path)
		}
		if req.Starting {
			if m.pidfd, err = leader.Open(); err != nil {
				return api.RegisterReply{}, apiErr(api.CodeInvalid, "%v", err)
			}
		}
	} else {
		if req.Network.Veth || len(req.Network.VethExtra) > 0 {
			if same, err := sameNetNS(leader.PID); err != nil {
				return api.RegisterReply{}, apiErr(api.CodeInvalid, "%v", err)
			} else if same {
				return api.RegisterReply{}, apiErr(api.CodeInvalid, "leader %d shares the controller's network namespace: a veth needs a private network namespace", leader.PID)
			}
		}
		if m.pidfd, err = leader.Open(); err != nil {
			return api.RegisterReply{}, apiErr(api.CodeInvalid, "%v", err)
		}
		m.OS, m.Cgroups = osName(req.Root), cgroup.Leftovers(leader.PID, req.Name)
	}
	fd := m.pidfd
	closeFD := func() {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	ph.mark("leader")
	err = c.setup(ctx, m)
	if err == nil && req.Network.ConfigureInside {
		ph.mark("setup")
		if err = c.configureInside(m); err != nil {
			err = fmt.Errorf("configure %s inside %s: %w", m.ifName(), m.netnsPath(), err)
		}
		ph.mark("inside")
	}
	if err != nil {
		c.teardown(m)
		closeFD()
		var ae *api.Error
		if errors.As(err, &ae) {
			return api.RegisterReply{}, err
		}
		code := api.CodeInternal
		if errors.Is(err, ipam.ErrExhausted) {
			code = api.CodeExhausted
		}
		return api.RegisterReply{}, apiErr(code, "register %s: %v", req.Name, err)
	}
	c.machines[req.Name] = m
	if err := store.WriteJSONNoSync(filepath.Join(c.machinesDir(), req.Name+".json"), m); err != nil {
		c.log.Error("persist machine", "machine", req.Name, "err", err)
	}
	ph.mark("record")
	if fd >= 0 {
		if err := c.watch.add(fd, m); err != nil {
			c.log.Error("watch leader", "machine", req.Name, "err", err)
		}
	}
	c.publish(m)
	ph.mark("watch")
	c.log.Info("registered machine", "machine", req.Name, "leader", leader.PID, "netns", req.NetNS, "links", m.Reply.HostLinks)
	return m.Reply, nil
}

// SetLeader names the first process of a machine registered while
// starting: from now on its exit, not its netspawn's, ends the machine, and
// the machine is entered through it. The process must run in the network
// namespace the machine was attached in. Naming the same leader again is
// not an error.
func (c *Controller) SetLeader(_ context.Context, name string, pid int) error {
	leader, err := ReadLeader(pid)
	if err != nil {
		return apiErr(api.CodeInvalid, "%v", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.machines[name]
	if !ok {
		return apiErr(api.CodeNotFound, "no machine %q", name)
	}
	if !m.Req.Starting {
		if m.NetNS == nil && m.Leader == leader {
			return nil
		}
		return apiErr(api.CodeConflict, "machine %q is not starting: its leader is already named (PID %d)", name, m.Leader.PID)
	}
	f, err := m.NetNS.open()
	if err != nil {
		return apiErr(api.CodeConflict, "machine %q: %v", name, err)
	}
	var a, b unix.Stat_t
	err = unix.Fstat(int(f.Fd()), &a)
	f.Close()
	if err == nil {
		err = unix.Stat("/proc/"+strconv.Itoa(pid)+"/ns/net", &b)
	}
	if err != nil {
		return apiErr(api.CodeInvalid, "network namespace of process %d: %v", pid, err)
	}
	if a.Dev != b.Dev || a.Ino != b.Ino {
		return apiErr(api.CodeInvalid, "process %d does not run in machine %q's network namespace", pid, name)
	}
	fd, err := leader.Open()
	if err != nil {
		return apiErr(api.CodeInvalid, "%v", err)
	}
	if m.pidfd >= 0 {
		c.watch.remove(m.pidfd)
		unix.Close(m.pidfd)
	}
	m.pidfd, m.Leader, m.NetNS = fd, leader, nil
	m.Req.Leader, m.Req.NetNS, m.Req.Starting = pid, "", false
	m.OS, m.Cgroups = osName(m.Req.Root), cgroup.Leftovers(pid, name)
	if err := store.WriteJSONNoSync(filepath.Join(c.machinesDir(), name+".json"), m); err != nil {
		c.log.Error("persist machine", "machine", name, "err", err)
	}
	if err := c.watch.add(fd, m); err != nil {
		c.log.Error("watch leader", "machine", name, "err", err)
	}
	c.log.Debug("leader named", "machine", name, "leader", pid)
	return nil
}

// setup creates links and elements; on error the caller tears down what
// m records.
func (c *Controller) setup(_ context.Context, m *machine) error {
	req := m.Req
	if req.Network.Veth && req.Network.Bridge == "" && req.Network.Zone == "" {
		hl := naming.HostLinkName(naming.PrefixVeth, req.Name)
		for other, om := range c.machines {
			for _, l := range om.Links {
				if l.Host == hl.Name {
					return apiErr(api.CodeConflict, "host link %s is already used by machine %q", hl.Name, other)
				}
			}
		}
		ph := m.ph
		if err := c.del.wait(c.links, hl.Name); err != nil {
			return err
		}
		if err := c.claimLinkName(hl.Name); err != nil {
			return err
		}
		ph.mark("check")
		inUse, err := c.inUseFor(req.Name)
		if err != nil {
			return err
		}
		ph.mark("inuse")
		want, _ := netip.ParseAddr(req.Network.Address)
		al, err := c.alloc.Allocate(ipam.Request{Owner: req.Name, Bits: ipam.LinkBits, InUse: inUse, Want: want, Active: func(o string) bool {
			return c.ownerActive(o) || o == req.Name
		}})
		if errors.Is(err, ipam.ErrTaken) {
			return apiErr(api.CodeConflict, "%v", err)
		} else if err != nil {
			return err
		}
		ph.mark("alloc")
		if err := store.WriteJSONNoSync(filepath.Join(c.ipamDir(), req.Name+".json"), al); err != nil {
			return err
		}
		c.requestSync()
		ph.mark("persist")
		hm, cm := c.vethMACs(req)
		ls := linkState{Kind: "veth", Host: hl.Name, AltName: hl.AltName, Container: m.ifName(), HostMAC: hm.String(), MAC: cm.String(), Alloc: &al}
		if ls.Index, err = c.addVeth(m, ls); err != nil {
			return err
		}
		c.managed[ls.Index] = true
		ph.mark("veth")
		m.Links = append(m.Links, ls)
		if err := c.hostIPv6(ls.Host); err != nil {
			return err
		}
		if err := c.links.Configure(ls.Host, netip.PrefixFrom(al.Gateway, al.Subnet.Bits())); err != nil {
			return err
		}
		if err := c.links.Announce(ls.Host, al.Address, cm); err != nil {
			c.log.Warn("the container's address may answer late", "machine", req.Name, "err", err)
		}
		ph.mark("configure")
		ifc := api.Interface{Name: ls.Container, MAC: ls.MAC, HostLink: ls.Host, HostMAC: ls.HostMAC, Addresses: []string{netip.PrefixFrom(al.Address, al.Subnet.Bits()).String()}, Gateway4: al.Gateway.String()}
		m.Reply.Interfaces = append(m.Reply.Interfaces, ifc)
		m.Reply.HostLinks = append(m.Reply.HostLinks, ls.Host)
		m.Elements.Links = append(m.Elements.Links, ls.Host)
		m.Elements.Subnets = append(m.Elements.Subnets, al.Subnet)
		m.Elements.Forwards = append(m.Elements.Forwards, forwardsTo(req.Network.Ports, al.Address)...)
		if err := c.setupV6(m, len(m.Links)-1, &m.Reply.Interfaces[len(m.Reply.Interfaces)-1]); err != nil {
			return err
		}
		for _, d := range c.resolvers(al.Gateway) {
			m.Reply.DNS = append(m.Reply.DNS, d.String())
		}
		if c.cfg.Domain != "" {
			m.Reply.SearchDomains = []string{c.cfg.Domain}
		}
	}
	for i, x := range req.Network.VethExtra {
		ct := x.Container
		if ct == "" {
			ct = x.Host
		}
		if err := naming.ValidIfName(x.Host); err != nil {
			return apiErr(api.CodeInvalid, "--network-veth-extra: %v", err)
		}
		if err := naming.ValidIfName(ct); err != nil {
			return apiErr(api.CodeInvalid, "--network-veth-extra: %v", err)
		}
		if err := c.del.wait(c.links, x.Host); err != nil {
			return err
		}
		hm, cm := naming.VethExtraMACs(c.mid, req.Name, i)
		ls := linkState{Kind: "veth-extra", Host: x.Host, Container: ct, HostMAC: hm.String(), MAC: cm.String()}
		var err error
		if ls.Index, err = c.addVeth(m, ls); err != nil {
			return err
		}
		c.managed[ls.Index] = true
		m.Links = append(m.Links, ls)
		m.Reply.Interfaces = append(m.Reply.Interfaces, api.Interface{Name: ct, MAC: ls.MAC})
		m.Reply.HostLinks = append(m.Reply.HostLinks, ls.Host)
	}
	if err := c.setupAttach(m); err != nil {
		return err
	}
	m.ph.mark("v6+attach")
	if !m.Elements.Empty() {
		if err := c.fw.Add(m.Elements); err != nil {
			if rerr := c.repairTable(m); rerr != nil {
				// Nothing of m's is in the kernel; don't try to delete it.
				m.Elements = nft.Elements{}
				return fmt.Errorf("%w (repair: %v)", err, rerr)
			}
		}
		c.ensureForwarding()
	}
	m.ph.mark("elements")
	var veths []string
	for _, l := range m.Links {
		if l.Kind == "veth" {
			veths = append(veths, l.Host)
		}
	}
	c.checkHostFirewallLater(veths)
	return nil
}

// claimLinkName makes sure a host link name is free for a machine being
// registered. A link of that name that netspawnd made (it carries the mark)
// and that no registered machine or zone holds is what a netspawnd killed
// before it could clean up left: it is deleted. Any other is a conflict.
func (c *Controller) claimLinkName(name string) error {
	l, exists, err := c.links.Get(name)
	if err != nil || !exists {
		return err
	}
	if !l.Marked {
		return apiErr(api.CodeConflict, "a link named %s already exists on the host, and netspawnd did not make it: rename or delete it, or pick another machine name", name)
	}
	if holder := c.linkHolder(name); holder != "" {
		return apiErr(api.CodeConflict, "a link named %s already exists on the host: %s holds it", name, holder)
	}
	c.log.Warn("deleting a link a killed netspawnd left behind", "link", name)
	if err := c.links.Delete(name); err != nil {
		return err
	}
	if c.pfx != nil {
		c.pfx.Forget(l.Index)
	}
	return nil
}

// linkHeld reports whether a registered machine or an active zone holds a
// host link.
func (c *Controller) linkHeld(name string) bool { return c.linkHolder(name) != "" }

// linkHolder names the registered machine or active zone that holds a host
// link, or "".
func (c *Controller) linkHolder(name string) string {
	for _, m := range c.machines {
		for _, l := range m.Links {
			if l.Host == name {
				return "machine " + m.Req.Name
			}
		}
	}
	for _, z := range c.att.zones {
		if z.Bridge == name || z.vx != "" && z.vx == name {
			return "zone " + z.Name
		}
	}
	return ""
}

// dropStrayLinks deletes, at start, the links netspawnd made that no
// machine or zone it knows holds (a netspawnd killed between making a link
// and recording its machine, or before it deleted one).
func (c *Controller) dropStrayLinks() {
	names, err := c.links.MarkedNames()
	if err != nil {
		c.log.Warn("listing netspawnd's links", "err", err)
		return
	}
	for _, n := range names {
		if !c.linkHeld(n) && !c.del.scheduled(n) {
			c.log.Warn("deleting a link no machine holds (left by a killed netspawnd)", "link", n)
			st, _, _ := c.links.Get(n)
			if err := c.links.Delete(n); err != nil {
				c.log.Warn("delete stray link", "link", n, "err", err)
			} else if c.pfx != nil && st.Index > 0 {
				c.pfx.Forget(st.Index) // its addresses are not the host's
			}
		}
	}
}

// repairTable runs when adding elements failed: someone may have deleted
// or changed our table (nft flush ruleset). It rebuilds the table and
// restores the elements of every machine plus m's.
func (c *Controller) repairTable(m *machine) error {
	created, err := c.fw.Ensure()
	if err != nil {
		return err
	}
	if !created {
		return errors.New("table intact")
	}
	return c.restoreElements(m.Elements)
}

// restoreTable rebuilds the table when it is missing or changed, with
// every machine's elements and extra. Called with c.mu held.
func (c *Controller) restoreTable(extra nft.Elements) error {
	created, err := c.fw.Ensure()
	if err != nil || !created {
		return err
	}
	return c.restoreElements(extra)
}

func (c *Controller) restoreElements(extra nft.Elements) error {
	want := extra.Merge(c.zonesElements())
	for _, o := range c.machines {
		want = want.Merge(o.Elements)
	}
	if _, _, err := c.fw.Reconcile(want); err != nil {
		return err
	}
	c.log.Warn("nftables table inet netspawn was removed or changed behind our back; rebuilt it with every machine's elements")
	return nil
}

// teardown removes m's links and elements (not its allocation).
func (c *Controller) teardown(m *machine) {
	if !m.Elements.Empty() {
		if err := c.fw.Delete(m.Elements); err != nil {
			c.log.Warn("delete nftables elements", "machine", m.Req.Name, "err", err)
		}
	}
	hooks := c.hooks()
	for _, l := range m.Links {
		var before func()
		if l.Kind == "veth" && len(hooks) > 0 {
			name := l.Host
			before = func() {
				for _, h := range hooks {
					if err := h.RemoveLink(name); err != nil {
						c.log.Debug("link hook: remove link", "link", name, "err", err)
					}
				}
			}
		}
		c.del.delete(l.Host, l.Index, before)
		delete(c.managed, l.Index)
	}
	if c.cfg.Names != nil {
		c.cfg.Names.RemoveMachine(m.Req.Name)
	}
	if zone, ok := c.clusterMember(m); ok {
		c.cl.RemoveName(zone, m.Req.Name)
	}
	c.teardownAttach(m)
	c.unpublishV6(m.Req.Name)
}

func (c *Controller) hooks() []LinkHook {
	var hs []LinkHook
	if c.cfg.DHCP != nil {
		hs = append(hs, c.cfg.DHCP)
	}
	return append(hs, c.cfg.LinkHooks...)
}

// resolvers returns the DNS servers for containers behind gateway.
func (c *Controller) resolvers(gateway netip.Addr) []netip.Addr {
	if c.cfg.DNSOnGateway && gateway.IsValid() {
		return []netip.Addr{gateway}
	}
	return c.cfg.DNS
}

// publish tells the link hooks (DHCP, DNS listeners) and the name sink
// about m.
func (c *Controller) publish(m *machine) {
	for _, l := range m.Links {
		if l.Kind != "veth" || l.Alloc == nil {
			continue
		}
		for _, h := range c.hooks() {
			if err := h.AddLink(DHCPLink{Name: l.Host, Index: l.Index, Subnet: l.Alloc.Subnet, Gateway: l.Alloc.Gateway,
				Prefix6: l.Prefix6, Gateway6: l.gateway6(), DNS: c.resolvers(l.Alloc.Gateway), Domain: c.cfg.Domain, LeaseTime: time.Hour}); err != nil {
				c.log.Warn("link hook: add link", "link", l.Host, "err", err)
				continue
			}
			mac, _ := net.ParseMAC(l.MAC)
			if err := h.Reserve(l.Host, mac, l.Alloc.Address, m.Req.Name); err != nil {
				c.log.Warn("link hook: reserve", "link", l.Host, "err", err)
			}
		}
	}
	if c.cfg.Names != nil {
		c.cfg.Names.SetMachine(m.Req.Name, m.addrs())
	}
	if zone, ok := c.clusterMember(m); ok {
		c.cl.SetName(zone, m.Req.Name, m.addrs(), m.OS)
	}
	c.publishAttach(m)
	c.publishV6(m)
}

func (m *machine) addrs() []netip.Addr {
	var out []netip.Addr
	for _, l := range m.Links {
		if l.Alloc != nil && l.Alloc.Address.IsValid() {
			out = append(out, l.Alloc.Address)
		}
		if l.Addr6.IsValid() {
			out = append(out, l.Addr6)
		}
	}
	for _, a := range m.live {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

func (c *Controller) removeMachineFile(name string) {
	if err := os.Remove(filepath.Join(c.machinesDir(), name+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		c.log.Warn("remove machine state", "machine", name, "err", err)
	}
}

func (c *Controller) unregisterLocked(m *machine, why string) {
	if m.pidfd >= 0 {
		c.watch.remove(m.pidfd)
		unix.Close(m.pidfd)
		m.pidfd = -1
	}
	c.teardown(m)
	if why != "unregistered" {
		// Its netspawn may be gone (killed): nobody else removes them.
		// Off the controller's lock: the killed netspawn and the
		// container's last processes may take a moment to let go.
		go cgroup.RemoveUnlocked(m.Cgroups, 5*time.Second)
	}
	delete(c.machines, m.Req.Name)
	c.removeMachineFile(m.Req.Name)
	c.log.Info("unregistered machine", "machine", m.Req.Name, "reason", why)
}

// Unregister removes a machine's networking (its address stays reserved).
func (c *Controller) Unregister(_ context.Context, name string) error {
	ph := newPhases()
	c.mu.Lock()
	defer c.mu.Unlock()
	ph.mark("lock")
	m, ok := c.machines[name]
	if !ok {
		return apiErr(api.CodeNotFound, "no machine %q", name)
	}
	c.unregisterLocked(m, "unregistered")
	ph.mark("teardown")
	c.log.Debug("unregister phases", "machine", name, "ms", ph.String())
	return nil
}

// vethMACs are the host and container side MACs of a machine's main veth:
// nspawn's hashes of the host and machine name, or the container side the
// request names.
func (c *Controller) vethMACs(req api.RegisterRequest) (host, container net.HardwareAddr) {
	host, container = naming.VethMACs(c.mid, req.Name)
	if c.cl != nil && req.Network.Zone != "" {
		// The same on every host: the machine keeps its MACs (and its
		// EUI-64 IPv6 address) wherever in the cluster it starts.
		host, container = naming.VethMACs(cluster.MemberID(req.Network.Zone), req.Name)
	}
	if hw, err := net.ParseMAC(req.Network.MAC); err == nil {
		container = hw
	}
	return host, container
}

// leaderExited runs when a watched pidfd fires. m may have been
// unregistered meanwhile (its netspawn's Unregister got the lock first, or
// a new leader registered the name): its pidfd is closed then, and its
// number may belong to another file by now, so only a pidfd still held by
// the registered machine is closed here.
func (c *Controller) leaderExited(m *machine) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return // Close closes the pidfds
	}
	if cur, ok := c.machines[m.Req.Name]; !ok || cur != m || m.pidfd < 0 {
		return
	}
	unix.Close(m.pidfd)
	m.pidfd = -1
	if c.deferTeardown(m) {
		return
	}
	c.unregisterLocked(m, "leader exited")
}

func (m *machine) summary() api.Machine {
	out := api.Machine{Name: m.Req.Name, Class: m.Req.Class, Service: m.Req.Service, OS: m.OS, Leader: m.Leader.PID, Root: m.Req.Root, Since: m.Since.Format(time.RFC3339), CNI: m.Req.CNI}
	if m.Req.Starting {
		out.Leader, out.Starting = 0, true // its netspawn holds the namespace; no process of the container yet
	}
	if m.NetNS != nil {
		out.NetNS = m.NetNS.Path
	}
	for _, a := range m.addrs() {
		out.Addresses = append(out.Addresses, a.String())
	}
	return out
}

// List returns the running machines sorted by name: this host's, and with
// cluster zones those other hosts publish (Host names the host).
func (c *Controller) List(ctx context.Context) []api.Machine {
	return c.ListMatching(ctx, api.ListParams{})
}

// ListMatching is List narrowed by p. A runtime's DEL asks for one CNI
// attachment: only that machine is summarised and sent, where the whole
// list cost JSON for every machine on both sides of the socket.
func (c *Controller) ListMatching(_ context.Context, p api.ListParams) []api.Machine {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.CNIContainerID != "" {
		var out []api.Machine
		for _, m := range c.machines {
			if a := m.Req.CNI; a == nil || a.ContainerID != p.CNIContainerID || a.IfName != p.CNIIfName {
				continue
			}
			sm := m.summary()
			sm.Zone = m.Attach.Zone
			if c.cl != nil {
				sm.Host = c.cl.Node()
			}
			if p.Match(sm) {
				out = append(out, sm)
			}
		}
		return out
	}
	out := make([]api.Machine, 0, len(c.machines))
	for _, m := range c.machines {
		sm := m.summary()
		sm.Zone = m.Attach.Zone
		if c.cl != nil {
			sm.Host = c.cl.Node()
		}
		out = append(out, sm)
	}
	out = append(out, c.remoteMachines()...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Host < out[j].Host
	})
	return out
}

// Status returns one machine in detail, with the links' live state.
func (c *Controller) Status(_ context.Context, name string) (api.MachineStatus, error) {
	c.waitFirewallCheck()
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.machines[name]
	if !ok {
		return api.MachineStatus{}, apiErr(api.CodeNotFound, "no machine %q", name)
	}
	st := api.MachineStatus{Machine: m.summary(), Boot: m.Req.Boot, NetNS: m.netnsPath()}
	for _, l := range m.Links {
		al := api.Link{Host: l.Host, AltName: l.AltName, Container: l.Container, Kind: l.Kind, HostMAC: l.HostMAC, MAC: l.MAC}
		if l.Alloc != nil {
			al.Subnet, al.Gateway, al.Address = l.Alloc.Subnet.String(), l.Alloc.Gateway.String(), l.Alloc.Address.String()
		}
		if l.Prefix6.IsValid() {
			al.Subnet6, al.Gateway6, al.Address6 = l.Prefix6.String(), l.gateway6().String(), l.Addr6.String()
		}
		if live, ok, err := c.links.Get(l.Host); err == nil && ok {
			al.Index, al.Up = live.Index, live.Up
		} else {
			st.Warnings = append(st.Warnings, "host link "+l.Host+" is missing")
		}
		st.Links = append(st.Links, al)
	}
	st.Warnings = append(st.Warnings, c.fwWarnings...)
	for _, f := range m.Elements.Forwards {
		if !f.Addr.Is4() {
			continue // the IPv6 copy of a forward
		}
		st.Ports = append(st.Ports, api.Port{Protocol: f.Proto, HostPort: f.HostPort, ContainerPort: f.Port})
	}
	return st, nil
}

// Networks returns every subnet allocation, active or reserved, and the
// cluster zones.
func (c *Controller) Networks(ctx context.Context) []api.Network {
	var zones []cluster.ZoneInfo
	if c.cl != nil {
		var err error
		if zones, err = c.cl.ListZones(ctx); err != nil {
			c.log.Debug("cluster zones from etcd", "err", err)
			zones = c.cl.KnownZones()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.clusterNetworks(zones)
	for owner, al := range c.alloc.All() {
		n := api.Network{Link: attachedLinkName(owner), Subnet: al.Subnet.String(), Gateway: al.Gateway.String(), Machine: owner}
		if al.Address.IsValid() {
			n.Address = al.Address.String()
		}
		n.Active = c.ownerActive(owner)
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Subnet < out[j].Subnet })
	return out
}

// LookupMachine implements NameSource.
func (c *Controller) LookupMachine(name string) ([]netip.Addr, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for n, m := range c.machines {
		if strings.EqualFold(n, name) {
			return m.addrs(), true
		}
	}
	return nil, false
}

// LookupMachineAddr implements NameSource.
func (c *Controller) LookupMachineAddr(a netip.Addr) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for n, m := range c.machines {
		for _, x := range m.addrs() {
			if x == a {
				return n, true
			}
		}
	}
	return "", false
}

// MachineAddrs implements NameSource.
func (c *Controller) MachineAddrs() map[string][]netip.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string][]netip.Addr, len(c.machines))
	for n, m := range c.machines {
		out[n] = m.addrs()
	}
	return out
}

var _ NameSource = (*Controller)(nil)

// sameNetNS reports whether pid lives in the controller's network namespace.
func sameNetNS(pid int) (bool, error) {
	var a, b unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &a); err != nil {
		return false, fmt.Errorf("stat own network namespace: %w", err)
	}
	if err := unix.Stat("/proc/"+strconv.Itoa(pid)+"/ns/net", &b); err != nil {
		return false, fmt.Errorf("network namespace of leader %d: %w", pid, err)
	}
	return a.Dev == b.Dev && a.Ino == b.Ino, nil
}

// hostResolvers returns the non-loopback nameservers of a resolv.conf.
func hostResolvers(path string) []netip.Addr {
	f, err := os.Open(path)
	if err != nil {
		return []netip.Addr{}
	}
	defer f.Close()
	out := []netip.Addr{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 2 && fs[0] == "nameserver" {
			if a, err := netip.ParseAddr(fs[1]); err == nil && !a.IsLoopback() {
				out = append(out, a)
			}
		}
	}
	return out
}

// osName reads PRETTY_NAME (or ID) from the root's os-release.
func osName(root string) string {
	if root == "" {
		return ""
	}
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			continue
		}
		id := ""
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				continue
			}
			v = strings.Trim(v, `"'`)
			switch k {
			case "PRETTY_NAME":
				return v
			case "ID":
				id = v
			}
		}
		return id
	}
	return ""
}

// phases times the steps of one operation for debug logs.
type phases struct {
	last  time.Time
	names []string
	durs  []time.Duration
}

func newPhases() *phases { return &phases{last: time.Now()} }

func (p *phases) mark(name string) {
	now := time.Now()
	p.names = append(p.names, name)
	p.durs = append(p.durs, now.Sub(p.last))
	p.last = now
}

func (p *phases) String() string {
	var b strings.Builder
	for i, n := range p.names {
		fmt.Fprintf(&b, "%s=%.2f ", n, float64(p.durs[i].Microseconds())/1000)
	}
	return strings.TrimSpace(b.String())
}

// Leases lists the DHCP server's leases on a link ("" for all).
func (c *Controller) Leases(link string) []api.Lease {
	ll, ok := c.cfg.DHCP.(LeaseLister)
	if !ok {
		return []api.Lease{}
	}
	out := ll.APILeases(link)
	if out == nil {
		out = []api.Lease{}
	}
	return out
}

// Registered reports whether a machine of that name is registered.
func (c *Controller) Registered(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.machines[name]
	return ok
}

// supervise runs f on the supervisor, or says there is none.
func (c *Controller) supervise(f func(*supervisor.Supervisor) error) error {
	if c.cfg.Supervisor == nil {
		return apiErr(api.CodeInvalid, "this netspawnd does not start machines")
	}
	return f(c.cfg.Supervisor)
}
