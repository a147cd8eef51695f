package nft

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// VXLANPrefix starts the names of cluster zones' VXLAN ports (vx-ZONE).
const VXLANPrefix = "vx-"

// ClusterTable is the bridge-family table that keeps each host's share of
// a cluster zone local. Every host holds the zone's gateway with the same
// address and MAC (an anycast gateway) and serves DHCP and router
// advertisements to its own members, so on the VXLAN ports:
//   - nothing the host itself sends leaves (its ARP and ND answers for the
//     gateway, its DHCP replies and advertisements would reach members of
//     other hosts, whose own host answers them);
//   - DHCP and router solicitations or advertisements neither leave nor
//     arrive (each host answers its own members only).
//
// And at prerouting, before br_netfilter (which, where it is loaded, sends
// bridged frames through the host's IP hooks and connection tracking),
// frames between two addresses of cluster zones that the bridge forwards
// rather than delivers to the host are not tracked: the host never routes
// or NATs them, and tracking them cost every packet between members a
// conntrack lookup on each host it crosses (see intraZoneNotrack).
func ClusterTable() *nftables.Table {
	return &nftables.Table{Name: TableName, Family: nftables.TableFamilyBridge}
}

func vxPort(key expr.MetaKey) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(VXLANPrefix)},
	}
}

func dropUDPPorts(lo, hi uint16) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: binary.BigEndian.AppendUint16(nil, lo), ToData: binary.BigEndian.AppendUint16(nil, hi)},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
}

func dropICMPv6Types(lo, hi byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: []byte{lo}, ToData: []byte{hi}},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
}

type clusterRule struct {
	chain, tag string
	exprs      []expr.Any
}

// The bridge table's sets: the subnets of the cluster zones this host
// carries (intervals; see ClusterNetElements).
const (
	SetCluster4 = "cluster4"
	SetCluster6 = "cluster6"
)

func clusterSets(t *nftables.Table) []*nftables.Set {
	return []*nftables.Set{
		{Table: t, Name: SetCluster4, KeyType: nftables.TypeIPAddr, Interval: true},
		{Table: t, Name: SetCluster6, KeyType: nftables.TypeIP6Addr, Interval: true},
	}
}

// clusterChains are the bridge table's chains, in order, with their hooks
// and priorities. prerouting runs before br_netfilter's hook (priority 0).
var clusterChains = []struct {
	name string
	hook *nftables.ChainHook
	prio *nftables.ChainPriority
}{
	{"prerouting", nftables.ChainHookPrerouting, nftables.ChainPriorityRef(-300)},
	{"forward", nftables.ChainHookForward, nftables.ChainPriorityFilter},
	{"input", nftables.ChainHookInput, nftables.ChainPriorityFilter},
	{"output", nftables.ChainHookOutput, nftables.ChainPriorityFilter},
}

// intraZoneNotrack is the rule that keeps frames between members of
// cluster zones out of connection tracking, for one address family
// (ethertype, the set of the zones' subnets, where the source address is
// and its length; the destination follows it):
//
//	meta pkttype other meta protocol ip ip saddr @cluster4 ip daddr @cluster4 notrack
//
// pkttype other: the frame is not for the bridge's own MAC (the zone's
// gateway), so the host neither routes nor NATs it; it is bridged from a
// member to a member, here or across the VXLAN port. Without br_netfilter
// such frames never reach conntrack anyway; with it, conntrack would track
// each flow between members on every host it crosses, for nothing. Frames
// to the gateway (DNS, DHCP, the way out, port forwards between members)
// stay tracked.
func intraZoneNotrack(ethertype uint16, set string, saddrOff, addrLen uint32) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyPKTTYPE, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.PACKET_OTHERHOST}},
		&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, ethertype)},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: saddrOff, Len: addrLen},
		&expr.Lookup{SourceRegister: 1, SetName: set},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: saddrOff + addrLen, Len: addrLen},
		&expr.Lookup{SourceRegister: 1, SetName: set},
		&expr.Notrack{},
	}
}

// ClusterNetElements turns subnets into the elements of the bridge
// table's interval sets: for each, its first address and, flagged as an
// interval's end, the address after its last (none when the subnet ends
// the address space). Pure.
func ClusterNetElements(nets []netip.Prefix) (v4, v6 []nftables.SetElement, err error) {
	for _, p := range nets {
		if !p.IsValid() {
			return nil, nil, fmt.Errorf("cluster subnet %v: not a prefix", p)
		}
		p = p.Masked()
		first := p.Addr()
		last := lastAddr(p)
		els := []nftables.SetElement{{Key: first.AsSlice()}}
		if next := last.Next(); next.IsValid() {
			els = append(els, nftables.SetElement{Key: next.AsSlice(), IntervalEnd: true})
		}
		if first.Is4() {
			v4 = append(v4, els...)
		} else {
			v6 = append(v6, els...)
		}
	}
	return v4, v6, nil
}

// lastAddr is the last address of p (masked).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func clusterRules() []clusterRule {
	var rs []clusterRule
	for _, k := range []expr.MetaKey{expr.MetaKeyIIFNAME, expr.MetaKeyOIFNAME} {
		rs = append(rs, clusterRule{"forward", "cluster-dhcp", cat(vxPort(k), dropUDPPorts(67, 68))},
			clusterRule{"forward", "cluster-ra", cat(vxPort(k), dropICMPv6Types(133, 134))})
	}
	rs = append(rs,
		clusterRule{"prerouting", "intrazone-notrack4", intraZoneNotrack(unix.ETH_P_IP, SetCluster4, 12, 4)},
		clusterRule{"prerouting", "intrazone-notrack6", intraZoneNotrack(unix.ETH_P_IPV6, SetCluster6, 8, 16)})
	return append(rs,
		clusterRule{"input", "cluster-dhcp", cat(vxPort(expr.MetaKeyIIFNAME), dropUDPPorts(67, 68))},
		clusterRule{"input", "cluster-ra", cat(vxPort(expr.MetaKeyIIFNAME), dropICMPv6Types(133, 134))},
		clusterRule{"output", "cluster-local", cat(vxPort(expr.MetaKeyOIFNAME), []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}})})
}

// EnsureClusterTable (re)creates the bridge table in the network namespace
// of netnsFd (0: the caller's), its sets holding nets (the subnets of the
// cluster zones this host carries). It is idempotent.
func EnsureClusterTable(netnsFd int, nets []netip.Prefix) error {
	v4, v6, err := ClusterNetElements(nets)
	if err != nil {
		return err
	}
	var opts []nftables.ConnOption
	if netnsFd > 0 {
		opts = append(opts, nftables.WithNetNSFd(netnsFd))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := ClusterTable()
	// Add then delete then add: one transaction that works whether or not
	// the table exists, and leaves exactly this version's rules.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	for _, s := range clusterSets(t) {
		els := v4
		if s.Name == SetCluster6 {
			els = v6
		}
		if err := c.AddSet(s, els); err != nil {
			return fmt.Errorf("nftables set %s: %w", s.Name, err)
		}
	}
	accept := nftables.ChainPolicyAccept
	chains := map[string]*nftables.Chain{}
	for _, ch := range clusterChains {
		chains[ch.name] = c.AddChain(&nftables.Chain{Name: ch.name, Table: t, Type: nftables.ChainTypeFilter, Hooknum: ch.hook,
			Priority: ch.prio, Policy: &accept})
	}
	for _, r := range clusterRules() {
		c.AddRule(&nftables.Rule{Table: t, Chain: chains[r.chain], Exprs: r.exprs, UserData: RuleTag(r.tag)})
	}
	vt := VXLANTable()
	c.AddTable(vt)
	c.DelTable(vt)
	c.AddTable(vt)
	for _, ch := range vxlanChains {
		chain := c.AddChain(&nftables.Chain{Name: ch.name, Table: vt, Type: nftables.ChainTypeFilter, Hooknum: ch.hook,
			Priority: nftables.ChainPriorityRaw, Policy: &accept})
		c.AddRule(&nftables.Rule{Table: vt, Chain: chain, Exprs: vxlanNotrack(), UserData: RuleTag("vxlan-notrack")})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables table bridge %s (cluster zones): %w", TableName, err)
	}
	return nil
}

// VXLANTable holds the one rule that keeps the VXLAN packets between hosts
// out of connection tracking (their outer UDP needs no state: nothing NATs
// or filters it by connection here), which would otherwise cost every
// packet of a cluster zone a lookup in each direction.
func VXLANTable() *nftables.Table {
	return &nftables.Table{Name: TableName + "-vxlan", Family: nftables.TableFamilyINet}
}

var vxlanChains = []struct {
	name string
	hook *nftables.ChainHook
}{{"prerouting", nftables.ChainHookPrerouting}, {"output", nftables.ChainHookOutput}}

// vxlanNotrack: udp dport 4789 notrack.
func vxlanNotrack() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, VXLANPort)},
		&expr.Notrack{},
	}
}

// VXLANPort is the UDP port of cluster zones' VXLAN (IANA's).
const VXLANPort = 4789

// ClusterTableOK reports whether the bridge table is there with every
// chain and rule of this version (in the caller's network namespace).
// EnsureClusterTable rebuilds the table, which a watch on the ruleset sees
// as a deletion: asking this first keeps a restore from feeding itself.
func ClusterTableOK() (bool, error) {
	c, err := nftables.New()
	if err != nil {
		return false, fmt.Errorf("nftables: %w", err)
	}
	vt := VXLANTable()
	if _, err := c.ListTableOfFamily(vt.Name, vt.Family); err != nil {
		return false, nil
	}
	for _, ch := range vxlanChains {
		rules, err := c.GetRules(vt, &nftables.Chain{Name: ch.name, Table: vt})
		if err != nil || len(rules) != 1 || !bytes.Equal(rules[0].UserData, RuleTag("vxlan-notrack")) {
			return false, nil
		}
	}
	t := ClusterTable()
	if _, err := c.ListTableOfFamily(t.Name, t.Family); err != nil {
		return false, nil // no such table
	}
	for _, s := range clusterSets(t) {
		if _, err := c.GetSetByName(t, s.Name); err != nil {
			return false, nil
		}
	}
	want := map[string][][]byte{}
	for _, r := range clusterRules() {
		want[r.chain] = append(want[r.chain], RuleTag(r.tag))
	}
	for _, ch := range clusterChains {
		rules, err := c.GetRules(t, &nftables.Chain{Name: ch.name, Table: t})
		if err != nil || len(rules) != len(want[ch.name]) {
			return false, nil // chain missing or changed
		}
		for i, r := range rules {
			if !bytes.Equal(r.UserData, want[ch.name][i]) {
				return false, nil
			}
		}
	}
	return true, nil
}

// SetClusterNets makes the bridge table's sets hold exactly nets, in one
// transaction, in the network namespace of netnsFd (0: the caller's).
func SetClusterNets(netnsFd int, nets []netip.Prefix) error {
	v4, v6, err := ClusterNetElements(nets)
	if err != nil {
		return err
	}
	var opts []nftables.ConnOption
	if netnsFd > 0 {
		opts = append(opts, nftables.WithNetNSFd(netnsFd))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	for _, s := range clusterSets(ClusterTable()) {
		els := v4
		if s.Name == SetCluster6 {
			els = v6
		}
		c.FlushSet(s)
		if len(els) > 0 {
			if err := c.SetAddElements(s, els); err != nil {
				return fmt.Errorf("nftables set %s: %w", s.Name, err)
			}
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables sets of table bridge %s (cluster zones' subnets): %w", TableName, err)
	}
	return nil
}
