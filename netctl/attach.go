package netctl

// Attachments besides the plain veth: bridged veths (--network-bridge),
// zones (--network-zone), macvlan/ipvlan links and host interfaces moved
// into the container (--network-interface).

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/netspawn/netspawn/netctl/api"
	"github.com/netspawn/netspawn/netctl/cluster"
	"github.com/netspawn/netspawn/netctl/ipam"
	"github.com/netspawn/netspawn/netctl/links"
	"github.com/netspawn/netspawn/netctl/naming"
	"github.com/netspawn/netspawn/netctl/nft"
	"github.com/netspawn/netspawn/netctl/store"
)

// Link kinds of attachments (linkState.Kind).
const (
	kindBridge = "bridge" // vb-NAME in a bridge the user owns
	kindZone   = "zone"   // vb-NAME in vz-ZONE
)

// Zone DHCP layout on the /24: members get a reserved address picked by a
// hash of their name in .2-.254; other clients of the bridge get a dynamic
// one from the same range (the server skips reserved addresses).
const (
	zoneReservedFirst = 2
	zoneReservedLast  = 254
	zonePoolFirst     = 2
	zonePoolLast      = 254
)

// liveAddrInterval is how often a bridged machine's addresses are read
// from its namespace (changes reach DNS/NSS within it).
const liveAddrInterval = 500 * time.Millisecond

// bridgedGrace is how long the controller waits, after the leader of a
// bridged command-mode machine died, for its netspawn to release the DHCP
// lease and unregister before it removes the links itself.
const bridgedGrace = 3 * time.Second

// machineAttach records a machine's attachments (persisted with it).
type machineAttach struct {
	Zone    string    `json:"zone,omitempty"`
	Bridged bool      `json:"bridged,omitempty"` // addresses come from a DHCP server we do not own
	Moved   []movedIf `json:"moved,omitempty"`
	// Virtual are the macvlan/ipvlan links made inside the container,
	// deleted from there on exit so that their MACs are free at once (the
	// kernel dismantles a dead namespace later, asynchronously).
	Virtual []string `json:"virtual,omitempty"`
}

// movedIf is a host interface moved into the container.
type movedIf struct {
	Host      string `json:"host"`
	Container string `json:"container"`
}

// zoneState is one zone bridge (persisted under zones.d).
type zoneState struct {
	Name    string                `json:"name"`
	Bridge  string                `json:"bridge"`
	Alloc   ipam.Allocation       `json:"alloc"`
	Members map[string]netip.Addr `json:"members"` // reservations, kept after members leave
	// Joined is when each member last joined: when every member address
	// is reserved, the stopped member that joined longest ago gives its
	// address up (memberAddr).
	Joined map[string]time.Time `json:"joined,omitempty"`
	// Cluster is the zone's record in etcd when it spans hosts.
	Cluster *cluster.ZoneInfo `json:"cluster,omitempty"`
	MTU     int               `json:"mtu,omitempty"` // of its links (cluster zones)
	active  map[string]bool
	index   int    // the bridge's ifindex
	vx      string // its VXLAN port (cluster zones)
}

func zoneOwner(zone string) string { return "@zone-" + zone }

// attachState is the controller's runtime state for attachments.
type attachState struct {
	zones  map[string]*zoneState    // active zones by name
	ns     map[string]*links.Handle // machine -> rtnetlink handle in its namespace
	stop   map[string]context.CancelFunc
	hostNS *os.File // the controller's own network namespace (opened by New)

	viewMu sync.RWMutex
	views  map[netip.Prefix]string // zone subnet -> zone (DNS views)
}

func (c *Controller) attachInit() {
	if c.att.zones == nil {
		c.att.zones = map[string]*zoneState{}
		c.att.ns = map[string]*links.Handle{}
		c.att.stop = map[string]context.CancelFunc{}
	}
}

func (c *Controller) zonesDir() string { return filepath.Join(c.cfg.StateDir, "zones.d") }

// ViewOf maps a DNS client address to its view: members of a zone see the
// names of their zone; everybody else sees every name.
func (c *Controller) ViewOf(a netip.Addr) (zone string, ok bool) {
	c.att.viewMu.RLock()
	defer c.att.viewMu.RUnlock()
	for p, z := range c.att.views {
		if p.Contains(a) && a != p.Masked().Addr().Next() { // the gateway is the host
			return z, true
		}
	}
	return "", false
}

func (c *Controller) setView(p netip.Prefix, zone string) {
	c.att.viewMu.Lock()
	defer c.att.viewMu.Unlock()
	if c.att.views == nil {
		c.att.views = map[netip.Prefix]string{}
	}
	if zone == "" {
		delete(c.att.views, p)
	} else {
		c.att.views[p] = zone
	}
}

// ViewNameSink is implemented by a NameSink that keeps names per view
// (the DNS server): zone members are published in their zone's view.
type ViewNameSink interface {
	SetMachineView(name string, addrs []netip.Addr, view string)
}

// checkAttach validates the attachment part of a request before anything
// is created.
func (c *Controller) checkAttach(req api.RegisterRequest) error {
	n := req.Network
	if n.Bridge != "" && n.Zone != "" {
		return apiErr(api.CodeInvalid, "--network-bridge and --network-zone may not be combined")
	}
	if n.Bridge != "" && len(n.Ports) > 0 {
		return apiErr(api.CodeInvalid, "port forwards need -n/--network-veth or --network-zone: a bridged container's address belongs to the LAN")
	}
	if n.Zone != "" {
		if _, err := naming.ZoneBridgeName(n.Zone); err != nil {
			return apiErr(api.CodeInvalid, "zone name %q is too long: the bridge vz-%s must fit in %d bytes (at most %d characters): %v",
				n.Zone, n.Zone, naming.MaxIfNameLen, naming.MaxIfNameLen-len(naming.PrefixZone), err)
		}
	}
	if len(n.IPVLAN) > 0 && !links.IPVLANAvailable() {
		return apiErr(api.CodeInvalid, "--network-ipvlan: %v", links.ErrNoIPVLAN)
	}
	for _, s := range append(append(append([]string(nil), n.MACVLAN...), n.IPVLAN...), n.Interfaces...) {
		h, ct := splitPair(s)
		for _, x := range []string{h, ct} {
			if err := naming.ValidIfName(x); err != nil {
				return apiErr(api.CodeInvalid, "%v", err)
			}
		}
		for other, m := range c.machines {
			if other == req.Name {
				continue
			}
			for _, mv := range m.Attach.Moved {
				if mv.Host == h {
					return apiErr(api.CodeConflict, "interface %s is in use: it was moved into machine %q", h, other)
				}
			}
		}
	}
	return nil
}

func splitPair(s string) (host, container string) {
	host, container, _ = strings.Cut(s, ":")
	if container == "" {
		container = host
	}
	return host, container
}

// setupAttach creates the machine's attachments; m records them as they
// are made so teardown can undo a partial setup.
func (c *Controller) setupAttach(m *machine) error {
	c.attachInit()
	req := m.Req
	n := req.Network
	needNS := n.Bridge != "" || len(n.Interfaces) > 0 || len(n.MACVLAN) > 0 || len(n.IPVLAN) > 0
	var nsf *os.File
	if n.Bridge != "" || n.Zone != "" || len(n.MACVLAN) > 0 || len(n.IPVLAN) > 0 || len(n.Interfaces) > 0 {
		f, err := m.openNetNS()
		if err != nil {
			return err
		}
		defer f.Close()
		nsf = f
	}
	if needNS {
		// A handle inside the container's namespace: it reads live
		// addresses and moves interfaces back, and keeps the namespace
		// (and so the moved interfaces) alive after the leader died.
		h, err := links.NewAt(int(nsf.Fd()))
		if err != nil {
			return err
		}
		c.att.ns[req.Name] = h
	}
	switch {
	case n.Bridge != "":
		if err := c.setupBridged(m, n.Bridge); err != nil {
			return err
		}
	case n.Zone != "":
		if err := c.setupZoneMember(m, n.Zone); err != nil {
			return err
		}
	}
	for i, s := range n.MACVLAN {
		h, ct := splitPair(s)
		mac := naming.MAC(c.mid, req.Name, naming.MACVLANKey, uint64(i)) // nspawn's: stable per host, machine and index
		if err := c.links.AddMACVLAN(h, ct, mac, int(nsf.Fd())); err != nil {
			return apiErr(api.CodeInvalid, "--network-macvlan=%s: %v", s, err)
		}
		m.Attach.Virtual = append(m.Attach.Virtual, ct)
		m.Reply.Interfaces = append(m.Reply.Interfaces, api.Interface{Name: ct, MAC: mac.String()})
	}
	for _, s := range n.IPVLAN {
		h, ct := splitPair(s)
		if err := c.links.AddIPVLAN(h, ct, int(nsf.Fd())); err != nil {
			return apiErr(api.CodeInvalid, "--network-ipvlan=%s: %v", s, err)
		}
		m.Attach.Virtual = append(m.Attach.Virtual, ct)
		m.Reply.Interfaces = append(m.Reply.Interfaces, api.Interface{Name: ct})
	}
	for _, s := range n.Interfaces {
		h, ct := splitPair(s)
		if err := c.links.MoveTo(h, int(nsf.Fd())); err != nil {
			return apiErr(api.CodeConflict, "--network-interface=%s: %v", s, err)
		}
		m.Attach.Moved = append(m.Attach.Moved, movedIf{Host: h, Container: h})
		if ct != h {
			if err := c.att.ns[req.Name].Rename(h, ct); err != nil {
				return err
			}
			m.Attach.Moved[len(m.Attach.Moved)-1].Container = ct
		}
		m.Reply.Interfaces = append(m.Reply.Interfaces, api.Interface{Name: ct})
	}
	return nil
}

// setupBridged adds vb-NAME to the user's bridge.
func (c *Controller) setupBridged(m *machine, bridge string) error {
	br, err := c.links.GetBridge(bridge)
	if err != nil {
		return apiErr(api.CodeInvalid, "--network-bridge=%s: %v", bridge, err)
	}
	if br.Ports >= links.MaxBridgePorts {
		return apiErr(api.CodeExhausted, "bridge %s is full: a Linux bridge takes at most %d ports", bridge, links.MaxBridgePorts)
	}
	ls, err := c.addBridgeVeth(m, 0)
	if err != nil {
		return err
	}
	ls.Kind = kindBridge
	m.Links = append(m.Links, ls)
	if err := c.links.Enslave(ls.Host, bridge); err != nil {
		return err
	}
	m.Attach.Bridged = true // its addresses are read from its namespace
	m.Reply.Interfaces = append(m.Reply.Interfaces, api.Interface{Name: ls.Container, MAC: ls.MAC, HostLink: ls.Host, HostMAC: ls.HostMAC, DHCP: true})
	m.Reply.HostLinks = append(m.Reply.HostLinks, ls.Host)
	return nil
}

// addBridgeVeth creates vb-NAME with host0 in the container.
func (c *Controller) addBridgeVeth(m *machine, mtu int) (linkState, error) {
	hl := naming.HostLinkName(naming.PrefixBridge, m.Req.Name)
	if err := c.del.wait(c.links, hl.Name); err != nil {
		return linkState{}, err
	}
	if err := c.claimLinkName(hl.Name); err != nil {
		return linkState{}, err
	}
	hm, cm := c.vethMACs(m.Req)
	ls := linkState{Kind: kindBridge, Host: hl.Name, AltName: hl.AltName, Container: m.ifName(), HostMAC: hm.String(), MAC: cm.String(), MTU: mtu}
	idx, err := c.addVeth(m, ls)
	if err != nil {
		return linkState{}, err
	}
	ls.Index = idx
	c.managed[idx] = true
	return ls, nil
}

// ensureZone returns the zone, creating its bridge, subnet, DHCP and
// elements on first use.
func (c *Controller) ensureZone(name string, claim *clusterClaim) (*zoneState, error) {
	if z, ok := c.att.zones[name]; ok {
		return z, nil
	}
	brName, err := naming.ZoneBridgeName(name)
	if err != nil {
		return nil, apiErr(api.CodeInvalid, "%v", err)
	}
	z := &zoneState{Name: name, Bridge: brName, Members: map[string]netip.Addr{}, active: map[string]bool{}}
	if ok, err := store.ReadJSON(filepath.Join(c.zonesDir(), name+".json"), z); err != nil {
		c.log.Warn("read zone state", "zone", name, "err", err)
	} else if ok && z.Members == nil {
		z.Members = map[string]netip.Addr{}
	}
	z.Name, z.Bridge = name, brName
	if c.cl != nil {
		return c.ensureClusterZone(z, claim)
	}
	z.Cluster = nil
	if st, ok, _ := c.links.Get(brName); ok && st.Kind == "bridge" {
		// Still there (a controller restart): its own address must not
		// count as someone else's.
		c.managed[st.Index] = true
	}
	inUse, err := c.inUse()
	if err != nil {
		return nil, err
	}
	al, err := c.alloc.Allocate(ipam.Request{Owner: zoneOwner(name), Bits: ipam.ZoneBits, InUse: inUse, Active: c.ownerActive})
	if err != nil {
		return nil, err
	}
	if err := store.WriteJSON(filepath.Join(c.ipamDir(), zoneOwner(name)+".json"), al); err != nil {
		return nil, err
	}
	if al.Subnet != z.Alloc.Subnet && z.Alloc.Subnet.IsValid() {
		// The zone moved (its subnet was taken by the host meanwhile): each
		// member keeps its place in the new subnet, so no reservation is
		// lost or handed to another member.
		z.Members = moveMembers(z.Members, z.Alloc.Subnet, al.Subnet)
	}
	z.Alloc = al
	if _, err := c.links.EnsureBridge(brName); err != nil {
		return nil, apiErr(api.CodeInvalid, "--network-zone=%s: %v", name, err)
	}
	if err := c.links.Configure(brName, netip.PrefixFrom(al.Gateway, al.Subnet.Bits())); err != nil {
		_ = c.links.Delete(brName)
		return nil, err
	}
	if st, ok, _ := c.links.Get(brName); ok {
		z.index = st.Index
		c.managed[st.Index] = true
	}
	if err := c.setupZoneV6(z); err != nil {
		_ = c.links.Delete(brName)
		return nil, err
	}
	if err := c.fw.Add(c.zoneElements6(z)); err != nil {
		_ = c.links.Delete(brName)
		return nil, err
	}
	c.att.zones[name] = z
	c.setView(al.Subnet, name)
	c.publishZone(z)
	c.ensureForwarding()
	c.log.Info("created zone", "zone", name, "bridge", brName, "subnet", al.Subnet)
	return z, nil
}

// zonesElements are the elements of every active zone.
func (c *Controller) zonesElements() nft.Elements {
	var e nft.Elements
	for _, z := range c.att.zones {
		e = e.Merge(c.zoneElements6(z))
	}
	return e
}

func zoneElements(z *zoneState) nft.Elements {
	return nft.Elements{Links: []string{z.Bridge}, Subnets: []netip.Prefix{z.Alloc.Subnet}, Zones: []string{z.Bridge}}
}

// publishZone tells the link hooks (DHCP, DNS) about the zone bridge.
func (c *Controller) publishZone(z *zoneState) {
	base := z.Alloc.Subnet.Masked().Addr().As4()
	at := func(i byte) netip.Addr { b := base; b[3] = i; return netip.AddrFrom4(b) }
	for _, h := range c.hooks() {
		p6, gw6 := c.zonePrefix6(z)
		l := DHCPLink{Name: z.Bridge, Index: z.index, Subnet: z.Alloc.Subnet, Gateway: z.Alloc.Gateway, Prefix6: p6, Gateway6: gw6,
			DNS: c.resolvers(z.Alloc.Gateway), Domain: c.cfg.Domain, LeaseTime: time.Hour,
			PoolStart: at(zonePoolFirst), PoolEnd: at(zonePoolLast)}
		if z.Cluster != nil {
			// Reservations for this host's members only: another host's
			// member asks its own host (the bridge table drops DHCP on the
			// VXLAN port anyway).
			l.PoolStart, l.PoolEnd, l.MTU = netip.Addr{}, netip.Addr{}, z.MTU
		}
		if err := h.AddLink(l); err != nil {
			c.log.Warn("link hook: add zone bridge", "link", z.Bridge, "err", err)
		}
	}
}

func (c *Controller) saveZone(z *zoneState) {
	if err := os.MkdirAll(c.zonesDir(), 0o700); err != nil {
		c.log.Warn("save zone", "zone", z.Name, "err", err)
		return
	}
	if err := store.WriteJSON(filepath.Join(c.zonesDir(), z.Name+".json"), z); err != nil {
		c.log.Warn("save zone", "zone", z.Name, "err", err)
	}
}

// moveMembers carries reservations from one subnet into another of the same
// size, each at the same offset.
func moveMembers(members map[string]netip.Addr, from, to netip.Prefix) map[string]netip.Addr {
	out := make(map[string]netip.Addr, len(members))
	if from.Bits() != to.Bits() || !from.Addr().Is4() || !to.Addr().Is4() {
		return out // cannot keep them: new ones are picked
	}
	fb, tb := from.Masked().Addr().As4(), to.Masked().Addr().As4()
	f, t := uint32(fb[0])<<24|uint32(fb[1])<<16|uint32(fb[2])<<8|uint32(fb[3]), uint32(tb[0])<<24|uint32(tb[1])<<16|uint32(tb[2])<<8|uint32(tb[3])
	for name, a := range members {
		if !from.Contains(a) {
			continue
		}
		ab := a.As4()
		v := uint32(ab[0])<<24 | uint32(ab[1])<<16 | uint32(ab[2])<<8 | uint32(ab[3])
		n := v - f + t
		out[name] = netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
	}
	return out
}

// memberAddr returns the machine's reserved address in the zone: the one
// it had, else one picked by a hash of its name (probing on collisions).
// When every member address is reserved, the reservation of the member
// that does not run and joined longest ago is taken over, as the veth
// pools reclaim stopped machines' subnets: reclaimed names that member
// (its reservation is dropped from z). Without it, a zone of attachments
// named after their containers (CNI) would fill up for good after 253
// of them, however few ran.
func memberAddr(z *zoneState, machine string) (addr netip.Addr, reclaimed string, err error) {
	if a, ok := z.Members[machine]; ok && z.Alloc.Subnet.Contains(a) {
		return a, "", nil
	}
	used := map[netip.Addr]bool{}
	for _, a := range z.Members {
		used[a] = true
	}
	h := fnv.New32a()
	h.Write([]byte(machine))
	span := uint32(zoneReservedLast - zoneReservedFirst + 1)
	start := h.Sum32() % span
	base := z.Alloc.Subnet.Masked().Addr().As4()
	for i := range span {
		b := base
		b[3] = byte(zoneReservedFirst + (start+i)%span)
		a := netip.AddrFrom4(b)
		if !used[a] {
			return a, "", nil
		}
	}
	if victim := reclaimableMember(z, machine); victim != "" {
		a := z.Members[victim]
		delete(z.Members, victim)
		delete(z.Joined, victim)
		return a, victim, nil
	}
	return netip.Addr{}, "", fmt.Errorf("zone %s: all %d member addresses are held by running members: %w", z.Name, span, ipam.ErrExhausted)
}

// reclaimableMember is the member of z, other than machine, that does not
// run and joined longest ago (a record without the time counts as oldest),
// or "".
func reclaimableMember(z *zoneState, machine string) string {
	victim := ""
	var oldest time.Time
	for name, a := range z.Members {
		if name == machine || z.active[name] || !z.Alloc.Subnet.Contains(a) {
			continue
		}
		t := z.Joined[name]
		if victim == "" || t.Before(oldest) || (t.Equal(oldest) && name < victim) {
			victim, oldest = name, t
		}
	}
	return victim
}

// wantedMemberAddr checks an address a machine asks for in zone z.
func wantedMemberAddr(z *zoneState, machine, want string) (netip.Addr, error) {
	a, err := netip.ParseAddr(want)
	if err != nil || !a.Is4() {
		return netip.Addr{}, apiErr(api.CodeInvalid, "address %q: not an IPv4 address", want)
	}
	sub := z.Alloc.Subnet.Masked()
	if !sub.Contains(a) || a == sub.Addr() || a == z.Alloc.Gateway || a == lastAddr(sub) {
		return netip.Addr{}, apiErr(api.CodeInvalid, "address %s is not a member address of zone %s (%s, gateway %s)", a, z.Name, sub, z.Alloc.Gateway)
	}
	for other, oa := range z.Members {
		if oa == a && other != machine {
			return netip.Addr{}, apiErr(api.CodeConflict, "address %s in zone %s is reserved for machine %q", a, z.Name, other)
		}
	}
	return a, nil
}

// lastAddr is the broadcast address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= uint32(1)<<(32-p.Bits()) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// setupZoneMember joins m to its zone.
func (c *Controller) setupZoneMember(m *machine, zone string) error {
	req := m.Req
	z, err := c.ensureZone(zone, m.claim)
	if err != nil {
		return err
	}
	m.Attach.Zone = zone
	z.active[req.Name] = true // from here on, teardown leaves the zone
	if st, ok, _ := c.links.Get(z.Bridge); ok {
		if br, err := c.links.GetBridge(st.Name); err == nil && br.Ports >= links.MaxBridgePorts {
			return apiErr(api.CodeExhausted, "zone %s is full: its bridge %s already has %d ports, the most a Linux bridge takes", zone, z.Bridge, links.MaxBridgePorts)
		}
	}
	var addr netip.Addr
	if z.Cluster != nil {
		if m.claim == nil || m.claim.zone.Name != zone {
			return apiErr(api.CodeInternal, "cluster zone %s: no address claimed in etcd for %s", zone, req.Name)
		}
		addr = m.claim.addr
	} else if req.Network.Address != "" {
		if addr, err = wantedMemberAddr(z, req.Name, req.Network.Address); err != nil {
			return err
		}
	} else {
		var reclaimed string
		if addr, reclaimed, err = memberAddr(z, req.Name); err != nil {
			return err
		}
		if reclaimed != "" {
			c.log.Info("zone full: a stopped member's address goes to a new one", "zone", zone, "address", addr, "from", reclaimed, "to", req.Name)
		}
	}
	z.Members[req.Name] = addr
	if z.Joined == nil {
		z.Joined = map[string]time.Time{}
	}
	z.Joined[req.Name] = time.Now().UTC()
	c.saveZone(z)
	ls, err := c.addBridgeVeth(m, z.MTU)
	if err != nil {
		return err
	}
	ls.Kind = kindZone
	ls.Alloc = &ipam.Allocation{Subnet: z.Alloc.Subnet, Gateway: z.Alloc.Gateway, Address: addr}
	m.Links = append(m.Links, ls)
	if err := c.links.Enslave(ls.Host, z.Bridge); err != nil {
		return err
	}
	if mac, err := net.ParseMAC(ls.MAC); err == nil {
		if err := c.links.Announce(z.Bridge, addr, mac); err != nil {
			c.log.Warn("the zone member's address may answer late", "machine", m.Req.Name, "err", err)
		}
	}
	m.Reply.Interfaces = append(m.Reply.Interfaces, api.Interface{Name: ls.Container, MAC: ls.MAC, HostLink: ls.Host, HostMAC: ls.HostMAC,
		Addresses: []string{netip.PrefixFrom(addr, z.Alloc.Subnet.Bits()).String()}, Gateway4: z.Alloc.Gateway.String(), MTU: z.MTU})
	m.Reply.HostLinks = append(m.Reply.HostLinks, ls.Host)
	m.Elements.Forwards = append(m.Elements.Forwards, forwardsTo(req.Network.Ports, addr)...)
	if err := c.zoneMemberV6(m, z, &m.Reply.Interfaces[len(m.Reply.Interfaces)-1]); err != nil {
		return err
	}
	for _, d := range c.resolvers(z.Alloc.Gateway) {
		m.Reply.DNS = append(m.Reply.DNS, d.String())
	}
	if c.cfg.Domain != "" {
		m.Reply.SearchDomains = []string{c.cfg.Domain}
	}
	return nil
}

// ownerActive reports whether an allocation owner (machine or zone) is in use.
func (c *Controller) ownerActive(owner string) bool {
	if _, ok := c.machines[owner]; ok {
		return true
	}
	if z, ok := strings.CutPrefix(owner, "@zone-"); ok {
		_, act := c.att.zones[z]
		return act
	}
	return false
}

// teardownAttach undoes m's attachments that teardown's link loop does not:
// moved interfaces go back to the host under their own names, the
// namespace handle closes, and a zone left empty is removed.
func (c *Controller) teardownAttach(m *machine) {
	c.attachInit()
	name := m.Req.Name
	if cancel, ok := c.att.stop[name]; ok {
		cancel()
		delete(c.att.stop, name)
	}
	h := c.att.ns[name]
	if len(m.Attach.Moved) > 0 {
		if h == nil {
			c.log.Warn("cannot move interfaces back: the container's namespace is gone (physical ones return to the initial namespace)", "machine", name)
		} else if err := c.moveBack(h, m.Attach.Moved); err != nil {
			c.log.Warn("move interfaces back", "machine", name, "err", err)
		}
	}
	if h != nil {
		for _, v := range m.Attach.Virtual {
			if err := h.Delete(v); err != nil {
				c.log.Warn("delete link in the container", "machine", name, "link", v, "err", err)
			}
		}
		h.Close()
		delete(c.att.ns, name)
	}
	if m.Attach.Zone != "" {
		c.leaveZone(m.Attach.Zone, name)
	}
}

func (c *Controller) moveBack(h *links.Handle, moved []movedIf) error {
	if c.att.hostNS == nil {
		return errors.New("the host's network namespace is not open")
	}
	var errs []error
	for _, mv := range moved {
		if err := h.MoveOut(mv.Container, int(c.att.hostNS.Fd())); err != nil {
			errs = append(errs, err)
			continue
		}
		if mv.Container != mv.Host {
			if err := c.links.Rename(mv.Container, mv.Host); err != nil {
				errs = append(errs, err)
			}
		}
		c.log.Info("moved interface back to the host", "interface", mv.Host)
	}
	return errors.Join(errs...)
}

// leaveZone removes a member; the last one out removes the zone bridge,
// its DHCP service and its elements (its subnet stays allocated).
func (c *Controller) leaveZone(zone, machine string) {
	z, ok := c.att.zones[zone]
	if !ok {
		return
	}
	delete(z.active, machine)
	if len(z.active) > 0 {
		return
	}
	for _, h := range c.hooks() {
		if err := h.RemoveLink(z.Bridge); err != nil {
			c.log.Debug("link hook: remove zone bridge", "link", z.Bridge, "err", err)
		}
	}
	delete(c.managed, z.index)
	c.leaveClusterZone(z)
	if err := c.fw.Delete(c.zoneElements6(z)); err != nil {
		c.log.Warn("delete zone elements", "zone", zone, "err", err)
	}
	if err := c.links.Delete(z.Bridge); err != nil {
		c.log.Warn("delete zone bridge", "zone", zone, "err", err)
	}
	// The live view of host prefixes hears of the deletion a moment later:
	// until then the zone's own subnet would look taken by the host, and the
	// zone, back a moment later, would get another subnet and lose its
	// members' reservations (as the deleter does for veths).
	if c.pfx != nil {
		c.pfx.Forget(z.index)
	}
	c.setView(z.Alloc.Subnet, "")
	delete(c.att.zones, zone)
	c.log.Info("removed zone (last member left)", "zone", zone, "bridge", z.Bridge)
}

// publishAttach publishes zone reservations, zone names in their view and
// starts following the live addresses of bridged machines.
func (c *Controller) publishAttach(m *machine) {
	c.attachInit()
	name := m.Req.Name
	if zn := m.Attach.Zone; zn != "" {
		if z, ok := c.att.zones[zn]; ok {
			for _, l := range m.Links {
				if l.Kind != kindZone || l.Alloc == nil {
					continue
				}
				mac, _ := net.ParseMAC(l.MAC)
				for _, h := range c.hooks() {
					if err := h.Reserve(z.Bridge, mac, l.Alloc.Address, name); err != nil {
						c.log.Warn("link hook: reserve", "link", z.Bridge, "err", err)
					}
				}
			}
		}
		if vs, ok := c.cfg.Names.(ViewNameSink); ok {
			vs.SetMachineView(name, m.addrs(), zn)
		}
	}
	if m.Attach.Bridged {
		if _, running := c.att.stop[name]; !running {
			if h := c.att.ns[name]; h != nil {
				ctx, cancel := context.WithCancel(context.Background())
				c.att.stop[name] = cancel
				go c.followAddrs(ctx, name, h)
			}
		}
	}
}

// followAddrs polls a bridged machine's addresses in its namespace and
// republishes its name when they change.
func (c *Controller) followAddrs(ctx context.Context, name string, h *links.Handle) {
	t := time.NewTicker(liveAddrInterval)
	defer t.Stop()
	var last []netip.Addr
	for {
		addrs, err := h.Addrs()
		if err == nil && !slices.Equal(addrs, last) {
			last = addrs
			c.mu.Lock()
			if ctx.Err() == nil {
				if m, ok := c.machines[name]; ok {
					m.live = addrs
					if c.cfg.Names != nil {
						c.cfg.Names.SetMachine(name, m.addrs())
					}
				}
				c.log.Info("bridged machine addresses", "machine", name, "addrs", addrs)
			}
			c.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// deferTeardown postpones the teardown of a bridged command-mode machine
// whose leader died, once, by bridgedGrace: its netspawn still holds the
// namespace and releases the DHCP lease through vb-NAME before it
// unregisters. Called with c.mu held; reports whether it deferred.
func (c *Controller) deferTeardown(m *machine) bool {
	if !m.Attach.Bridged || m.Req.Boot || m.graced {
		return false
	}
	m.graced = true
	name := m.Req.Name
	time.AfterFunc(bridgedGrace, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if cur, ok := c.machines[name]; ok && cur == m && !c.closed {
			c.unregisterLocked(m, "leader exited")
		}
	})
	return true
}

// reconcileAttach re-creates runtime state for a machine that survived a
// controller restart: its zone (bridge, DHCP, elements) and its namespace
// handle.
func (c *Controller) reconcileAttach(m *machine) nft.Elements {
	c.attachInit()
	var want nft.Elements
	if m.Attach.Bridged || len(m.Attach.Moved) > 0 || len(m.Attach.Virtual) > 0 {
		if f, err := m.openNetNS(); err == nil {
			if h, err := links.NewAt(int(f.Fd())); err == nil {
				c.att.ns[m.Req.Name] = h
			}
			f.Close()
		}
	}
	for _, l := range m.Links {
		if l.Kind == kindBridge && m.Req.Network.Bridge != "" {
			if err := c.links.Enslave(l.Host, m.Req.Network.Bridge); err != nil {
				c.log.Warn("re-enslave", "link", l.Host, "err", err)
			}
		}
	}
	if zn := m.Attach.Zone; zn != "" {
		z, err := c.ensureZone(zn, nil)
		if err != nil {
			c.log.Warn("restore zone", "zone", zn, "err", err)
			return want
		}
		z.active[m.Req.Name] = true
		for _, l := range m.Links {
			if l.Kind == kindZone {
				if err := c.links.Enslave(l.Host, z.Bridge); err != nil {
					c.log.Warn("re-enslave", "link", l.Host, "err", err)
				}
			}
		}
		want = c.zoneElements6(z)
	}
	return want
}

// attachedLinkName names the host link of an allocation owner.
func attachedLinkName(owner string) string {
	if z, ok := strings.CutPrefix(owner, "@zone-"); ok {
		return naming.PrefixZone + z
	}
	return naming.HostLinkName(naming.PrefixVeth, owner).Name
}
