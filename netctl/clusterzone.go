package netctl

// Cluster zones: a zone that spans hosts (see package cluster). On each
// host it is the same vz-ZONE bridge a local zone has, with a VXLAN port
// (vx-ZONE) that floods to every other host carrying the zone, the zone's
// gateway address and MAC (the same on every host: an anycast gateway kept
// local by the bridge table of package nft), DHCP for this host's members
// only, and names of every member of the cluster in DNS and NSS.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/netspawn/netspawn/netctl/api"
	"github.com/netspawn/netspawn/netctl/cluster"
	"github.com/netspawn/netspawn/netctl/ipam"
	"github.com/netspawn/netspawn/netctl/links"
	"github.com/netspawn/netspawn/netctl/naming"
	"github.com/netspawn/netspawn/netctl/nft"
	"github.com/netspawn/netspawn/netctl/store"
	"github.com/netspawn/netspawn/netctl/ula"
)

// clusterClaim is what a cluster zone member got from etcd before the
// controller's lock was taken: the zone and the machine's address.
type clusterClaim struct {
	zone cluster.ZoneInfo
	addr netip.Addr
}

// vxlanName is the VXLAN port of a zone bridge (vz-ZONE -> vx-ZONE).
func vxlanName(zone string) string { return nft.VXLANPrefix + zone }

// openCluster connects the controller to the cluster (Config.Cluster).
func (c *Controller) openCluster() error {
	cfg := *c.cfg.Cluster
	if cfg.Logger == nil {
		cfg.Logger = c.log
	}
	if !cfg.Underlay.IsValid() {
		a, err := c.links.DefaultRouteAddr()
		if err != nil {
			return err
		}
		cfg.Underlay = a
	}
	mtu, err := c.links.UnderlayMTU(cfg.Underlay)
	if err != nil {
		return err
	}
	c.clMTU = mtu - cluster.VXLANOverhead
	if len(cfg.Pools) == 0 {
		cfg.Pools = DefaultClusterPools
	}
	cl, err := cluster.Open(cfg, cluster.Handlers{Hosts: c.clusterHosts, Name: c.clusterName})
	if err != nil {
		return err
	}
	c.cl = cl
	c.log.Info("cluster zones on", "etcd", cfg.Endpoints, "node", cfg.Node, "underlay", cfg.Underlay, "mtu", c.clMTU)
	return nil
}

// DefaultClusterPools is where cluster zones' /16s come from.
var DefaultClusterPools = []netip.Prefix{netip.MustParsePrefix("10.128.0.0/9")}

// claimCluster asks etcd, before the controller's lock, for the zone and
// the machine's address; it fails within the cluster's request timeout
// (4 s) with a message naming etcd when etcd cannot be reached.
func (c *Controller) claimCluster(ctx context.Context, req api.RegisterRequest) (*clusterClaim, error) {
	zone := req.Network.Zone
	// One deadline for the whole claim: a start fails within 5 s when etcd
	// is away, however many requests it would have made.
	if req.Network.Address != "" {
		return nil, apiErr(api.CodeInvalid, "zone %s spans the cluster: its addresses are claimed in etcd, and asking for one (%s) is not supported there; leave the address to the controller", zone, req.Network.Address)
	}
	ctx, cancel := c.cl.Deadline(ctx)
	defer cancel()
	if _, err := naming.ZoneBridgeName(zone); err != nil {
		return nil, apiErr(api.CodeInvalid, "--network-zone=%s: %v", zone, err)
	}
	// Just after netspawnd's start, the first member waits for the first
	// read of the other hosts (forwarding to them) and of the names (its
	// DNS answering for them).
	if err := c.cl.Synced(ctx); err != nil {
		return nil, clusterErr(err, "cluster zone %s: %v", zone, err)
	}
	z, err := c.cl.Zone(ctx, zone, netip.Prefix{}, c.takenSubnets)
	if err != nil {
		return nil, clusterErr(err, "cluster zone %s: %v", zone, err)
	}
	a, err := c.cl.Claim(ctx, z, req.Name)
	if err != nil {
		return nil, clusterErr(err, "cluster zone %s: %v", zone, err)
	}
	return &clusterClaim{zone: z, addr: a}, nil
}

// takenSubnets is inUse taking c.mu itself (for cluster zone creation,
// which runs outside the lock).
func (c *Controller) takenSubnets() ([]netip.Prefix, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inUse()
}

func clusterErr(err error, format string, args ...any) error {
	var ae *api.Error
	switch {
	case errors.As(err, &ae):
		return err
	case errors.Is(err, cluster.ErrExhausted):
		return apiErr(api.CodeExhausted, format, args...)
	case errors.Is(err, cluster.ErrConflict):
		return apiErr(api.CodeConflict, format, args...)
	case errors.Is(err, cluster.ErrInvalid):
		return apiErr(api.CodeInvalid, format, args...)
	}
	return apiErr(api.CodeInternal, format, args...)
}

// ensureClusterZone is ensureZone for a cluster zone: the zone record from
// the claim (or, after a restart, from the saved state).
func (c *Controller) ensureClusterZone(z *zoneState, claim *clusterClaim) (*zoneState, error) {
	switch {
	case claim != nil:
		info := claim.zone
		z.Cluster = &info
	case z.Cluster == nil:
		return nil, apiErr(api.CodeInternal, "cluster zone %s: its record from etcd is unknown here", z.Name)
	}
	info := *z.Cluster
	z.Alloc = ipam.Allocation{Subnet: info.Subnet, Gateway: info.Gateway}
	z.MTU = c.clMTU
	mac, err := net.ParseMAC(info.MAC)
	if err != nil {
		return nil, fmt.Errorf("cluster zone %s: gateway MAC %q: %w", z.Name, info.MAC, err)
	}
	created, err := c.links.EnsureBridge(z.Bridge)
	if err != nil {
		return nil, apiErr(api.CodeInvalid, "--network-zone=%s: %v", z.Name, err)
	}
	fail := func(err error) (*zoneState, error) {
		if created {
			_ = c.links.Delete(vxlanName(z.Name))
			_ = c.links.Delete(z.Bridge)
		}
		return nil, err
	}
	if err := c.links.SetMAC(z.Bridge, mac); err != nil {
		return fail(err)
	}
	if err := c.links.Configure(z.Bridge, netip.PrefixFrom(info.Gateway, info.Subnet.Bits())); err != nil {
		return fail(err)
	}
	if st, ok, _ := c.links.Get(z.Bridge); ok {
		z.index = st.Index
		c.managed[st.Index] = true
	}
	if c.v6 != nil && info.Prefix6.IsValid() {
		if err := c.links.AddAddr6(z.Bridge, netip.PrefixFrom(ula.Gateway(info.Prefix6), info.Prefix6.Bits())); err != nil {
			return fail(err)
		}
	}
	if err := c.syncClusterTable(z.Name, &info); err != nil {
		return fail(err)
	}
	vx := links.VXLAN{Name: vxlanName(z.Name), VNI: info.VNI, Local: c.cl.Underlay(), Port: nft.VXLANPort, MTU: c.clMTU, Bridge: z.Bridge}
	idx, err := c.links.EnsureVXLAN(vx)
	if err != nil {
		return fail(fmt.Errorf("cluster zone %s: %w", z.Name, err))
	}
	c.managed[idx] = true
	z.vx = vx.Name
	if err := c.links.SetMTU(z.Bridge, c.clMTU); err != nil {
		return fail(err)
	}
	if err := c.fw.Add(c.zoneElements6(z)); err != nil {
		return fail(err)
	}
	c.att.zones[z.Name] = z
	c.setView(info.Subnet, z.Name)
	c.publishZone(z)
	c.ensureForwarding()
	c.saveZone(z)
	c.cl.JoinZone(z.Name)
	if hosts := c.cl.Hosts(z.Name); len(hosts) > 0 {
		// Not before the watch has read the hosts: a netspawnd restarted
		// would otherwise drop the entries the running members use.
		c.programFlood(z, hosts)
	}
	c.log.Info("joined cluster zone", "zone", z.Name, "bridge", z.Bridge, "vxlan", vx.Name, "vni", info.VNI, "subnet", info.Subnet, "mtu", c.clMTU)
	return z, nil
}

// clusterNets are the subnets (IPv4 and IPv6) of the cluster zones this
// host carries, with zone's replaced by info (nil: without zone), sorted.
// Called with c.mu held.
func (c *Controller) clusterNets(zone string, info *cluster.ZoneInfo) []netip.Prefix {
	var out []netip.Prefix
	add := func(i *cluster.ZoneInfo) {
		out = append(out, i.Subnet.Masked())
		if i.Prefix6.IsValid() {
			out = append(out, i.Prefix6.Masked())
		}
	}
	for name, z := range c.att.zones {
		if z.Cluster != nil && name != zone {
			add(z.Cluster)
		}
	}
	if info != nil {
		add(info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr().Less(out[j].Addr()) })
	return out
}

// syncClusterTable puts the bridge table of cluster zones in place with
// the subnets of the cluster zones this host carries, zone's being info
// (nil: zone is left). Called with c.mu held.
func (c *Controller) syncClusterTable(zone string, info *cluster.ZoneInfo) error {
	nets := c.clusterNets(zone, info)
	if !c.clTable {
		if err := nft.EnsureClusterTable(0, nets); err != nil {
			return err
		}
		c.clTable, c.clNets = true, nets
		return nil
	}
	if slices.Equal(nets, c.clNets) {
		return nil
	}
	if err := nft.SetClusterNets(0, nets); err != nil {
		// The table went behind our back (its watch restores it a moment
		// later): rebuild it now, with the sets.
		if err := nft.EnsureClusterTable(0, nets); err != nil {
			return err
		}
	}
	c.clNets = nets
	return nil
}

// programFlood points the zone's VXLAN port at every other host carrying
// it. Called with c.mu held.
func (c *Controller) programFlood(z *zoneState, hosts map[string]cluster.HostEntry) {
	var peers []netip.Addr
	for node, h := range hosts {
		if node != c.cl.Node() && h.Underlay != c.cl.Underlay() {
			peers = append(peers, h.Underlay)
		}
	}
	sort.Slice(peers, func(i, j int) bool { return peers[i].Less(peers[j]) })
	if err := c.links.SetFloodPeers(z.vx, peers); err != nil {
		c.log.Warn("cluster zone: VXLAN forwarding entries", "zone", z.Name, "err", err)
		return
	}
	c.log.Debug("cluster zone: VXLAN peers", "zone", z.Name, "peers", peers)
}

// clusterHosts is told when the hosts carrying a zone change.
func (c *Controller) clusterHosts(zone string, hosts map[string]cluster.HostEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if z, ok := c.att.zones[zone]; ok && z.Cluster != nil && !c.closed {
		c.programFlood(z, hosts)
	}
}

// clusterName is told when a machine of a cluster zone appears, changes or
// vanishes anywhere in the cluster: other hosts' machines go into DNS and
// NSS, in their zone's view.
func (c *Controller) clusterName(zone, machine string, e *cluster.NameEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.cfg.Names == nil {
		return
	}
	if _, local := c.machines[machine]; local {
		return // published by this host
	}
	if e == nil {
		c.cfg.Names.RemoveMachine(machine)
		return
	}
	if e.Host == c.cl.Node() {
		return // a machine of this host's not registered (yet or any more)
	}
	if vs, ok := c.cfg.Names.(ViewNameSink); ok {
		vs.SetMachineView(machine, e.Addrs, zone)
	} else {
		c.cfg.Names.SetMachine(machine, e.Addrs)
	}
}

// clusterMember reports whether m is a member of a cluster zone.
func (c *Controller) clusterMember(m *machine) (string, bool) {
	if c.cl == nil || m.Attach.Zone == "" {
		return "", false
	}
	if z, ok := c.att.zones[m.Attach.Zone]; ok && z.Cluster == nil {
		return "", false
	}
	return m.Attach.Zone, true
}

// leaveClusterZone undoes what ensureClusterZone added besides the bridge.
func (c *Controller) leaveClusterZone(z *zoneState) {
	if z.Cluster == nil || c.cl == nil {
		return
	}
	c.cl.LeaveZone(z.Name)
	if err := c.syncClusterTable(z.Name, nil); err != nil {
		c.log.Warn("cluster zone: subnets of the bridge table", "zone", z.Name, "err", err)
	}
	if st, ok, _ := c.links.Get(z.vx); ok {
		delete(c.managed, st.Index)
	}
	if err := c.links.Delete(z.vx); err != nil {
		c.log.Warn("delete VXLAN port", "zone", z.Name, "err", err)
	}
}

// remoteMachines lists the machines other hosts publish in cluster zones.
func (c *Controller) remoteMachines() []api.Machine {
	if c.cl == nil {
		return nil
	}
	var out []api.Machine
	for _, m := range c.cl.Members() {
		if m.Host == c.cl.Node() {
			continue
		}
		am := api.Machine{Name: m.Name, Class: "container", Service: "netspawn", Host: m.Host, Zone: m.Zone, OS: m.OS}
		for _, a := range m.Addrs {
			am.Addresses = append(am.Addresses, a.String())
		}
		out = append(out, am)
	}
	return out
}

// clusterNetworks describes the cluster zones zs. Called with c.mu held.
func (c *Controller) clusterNetworks(zs []cluster.ZoneInfo) []api.Network {
	var out []api.Network
	for _, z := range zs {
		n := api.Network{Link: naming.PrefixZone + z.Name, Subnet: z.Subnet.String(), Gateway: z.Gateway.String(), Zone: z.Name, VNI: z.VNI}
		for node := range c.cl.Hosts(z.Name) {
			n.Hosts = append(n.Hosts, node)
		}
		sort.Strings(n.Hosts)
		if lz, ok := c.att.zones[z.Name]; ok && lz.Cluster != nil {
			n.Active = true
		}
		out = append(out, n)
	}
	return out
}

// CreateZone creates a cluster zone ahead of its first member, with the
// subnet asked for ("" picks a /16 from the cluster pools).
func (c *Controller) CreateZone(ctx context.Context, name, subnet string) (api.Network, error) {
	if c.cl == nil {
		return api.Network{}, apiErr(api.CodeInvalid, "zone create is for cluster zones: start netspawnd with --cluster-etcd (a local zone is made by its first member, --network-zone=%s)", name)
	}
	if _, err := naming.ZoneBridgeName(name); err != nil {
		return api.Network{}, apiErr(api.CodeInvalid, "zone %q: %v", name, err)
	}
	var p netip.Prefix
	if subnet != "" {
		var err error
		if p, err = netip.ParsePrefix(subnet); err != nil || !p.Addr().Is4() {
			return api.Network{}, apiErr(api.CodeInvalid, "--subnet=%s: want an IPv4 CIDR such as 10.200.0.0/16", subnet)
		}
	}
	z, err := c.cl.Zone(ctx, name, p, c.takenSubnets)
	if err != nil {
		return api.Network{}, clusterErr(err, "%v", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clusterNetworks([]cluster.ZoneInfo{z})[0], nil
}

// Release gives back a stopped machine's addresses in zones: its
// reservation in each local zone and, with cluster zones, its address in
// each cluster zone (in etcd). The next machine of that name gets new ones.
func (c *Controller) Release(ctx context.Context, name string) error {
	c.mu.Lock()
	if _, running := c.machines[name]; running {
		c.mu.Unlock()
		return apiErr(api.CodeConflict, "machine %s is running: stop it first", name)
	}
	c.releaseLocal(name)
	c.mu.Unlock()
	if c.cl == nil {
		return nil
	}
	zs, err := c.cl.ListZones(ctx)
	if err != nil {
		return clusterErr(err, "release %s: %v", name, err)
	}
	var errs []error
	for _, z := range zs {
		if err := c.cl.Release(ctx, z.Name, name); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return clusterErr(err, "release %s: %v", name, err)
	}
	return nil
}

// releaseLocal drops name's reservations in the zones saved on this host
// and its link subnet. Called with c.mu held.
func (c *Controller) releaseLocal(name string) {
	if _, ok := c.alloc.Get(name); ok {
		c.alloc.Release(name)
		if err := os.Remove(filepath.Join(c.ipamDir(), name+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
			c.log.Warn("release subnet", "machine", name, "err", err)
		}
	}
	ents, _ := os.ReadDir(c.zonesDir())
	for _, e := range ents {
		zn, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		z, live := c.att.zones[zn]
		if !live {
			z = &zoneState{}
			if ok, err := store.ReadJSON(filepath.Join(c.zonesDir(), e.Name()), z); err != nil || !ok {
				continue
			}
		}
		if _, had := z.Members[name]; had {
			delete(z.Members, name)
			delete(z.Joined, name)
			c.saveZone(z)
		}
	}
}

// checkNoClusterMembers refuses to run without the cluster when machines
// of cluster zones still run: a single-host netspawnd would take their
// zone for a local one and tear it down.
func (c *Controller) checkNoClusterMembers() error {
	if _, err := os.Stat(c.zonesDir()); errors.Is(err, os.ErrNotExist) {
		return nil // no zone ever
	}
	zones, err := loadDir[zoneState](c.zonesDir())
	if err != nil {
		return err
	}
	saved, err := loadDir[machine](c.machinesDir())
	if err != nil {
		return err
	}
	for name, m := range saved {
		z, ok := zones[m.Attach.Zone]
		if !ok || z.Cluster == nil {
			continue
		}
		if m.running() {
			return fmt.Errorf("machine %s runs in cluster zone %s, and this netspawnd was started without --cluster-etcd: "+
				"set cluster-etcd= (and the other cluster- keys) in /etc/netspawn/netspawnd.conf, or pass them, so that every start of netspawnd joins the cluster", name, m.Attach.Zone)
		}
	}
	return nil
}
