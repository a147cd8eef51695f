// Package nft keeps netspawn's nftables table, `inet netspawn`: base chains
// hooked once, and the per-container state in sets and maps, so that adding
// or removing a container changes elements, never rules. It talks netlink
// through github.com/google/nftables (no nft binary) and never touches any
// other table.
//
// The table, as `nft list table inet netspawn` shows it:
//
//	set links     { type ifname }            host-side container links (ve-*, vz-*)
//	set subnets28 { type ipv4_addr }         network addresses of /28 link subnets
//	set subnets24 { type ipv4_addr }         network addresses of /24 zone subnets
//	set subnets64 { type ipv6_addr }         network addresses of masqueraded /64 link prefixes
//	map fwd4      { type inet_proto . inet_service : ipv4_addr . inet_service }
//	map fwd6      { type inet_proto . inet_service : ipv6_addr . inet_service }
//	chain prerouting  nat dstnat:   fib daddr type local dnat ip to l4proto . th dport map @fwd4 (ip6: @fwd6)
//	chain output      nat dstnat:   the same, for connections from the host (127.0.0.1 included;
//	                                ::1 is not: the kernel drops replies de-NATed to ::1 that
//	                                arrive on a non-loopback link, so netspawnd proxies [::1]:PORT)
//	chain postrouting nat srcnat:   ip saddr & /28 @subnets28 oifname != @links masquerade (and /24)
//	                                ip6 saddr & /64 @subnets64 oifname != @links masquerade
//	                                ip saddr 127.0.0.0/8 oifname @links masquerade (localhost forwards)
//	                                ct status dnat iifname @links oifname @links masquerade (hairpin)
//	chain forward   filter:         iifname @links accept; oifname @links accept
//	chain input     filter:         iifname @links udp dport {53,67} / tcp dport 53 accept
package nft

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Names of the table, sets and chains.
const (
	TableName  = "netspawn"
	SetLinks   = "links"
	SetSub28   = "subnets28"
	SetSub24   = "subnets24"
	SetSub16   = "subnets16"
	MapFwd4    = "fwd4"
	SetSub64   = "subnets64"
	MapFwd6    = "fwd6"
	ruleTagFmt = "netspawn:v1:%s"
)

// Table returns our table.
func Table() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}
}

// Sets returns the sets and maps of the table (pure).
func Sets(t *nftables.Table) map[string]*nftables.Set {
	return map[string]*nftables.Set{
		SetLinks: {Table: t, Name: SetLinks, KeyType: nftables.TypeIFName, KeyByteOrder: binaryutil.NativeEndian},
		SetSub28: {Table: t, Name: SetSub28, KeyType: nftables.TypeIPAddr},
		SetSub24: {Table: t, Name: SetSub24, KeyType: nftables.TypeIPAddr},
		SetSub16: {Table: t, Name: SetSub16, KeyType: nftables.TypeIPAddr},
		MapFwd4: {Table: t, Name: MapFwd4, IsMap: true, Concatenation: true,
			KeyType:  nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService),
			DataType: nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService)},
		SetSub64: {Table: t, Name: SetSub64, KeyType: nftables.TypeIP6Addr},
		MapFwd6: {Table: t, Name: MapFwd6, IsMap: true, Concatenation: true,
			KeyType:  nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService),
			DataType: nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeInetService)},
		SetZonePairs: {Table: t, Name: SetZonePairs, Concatenation: true,
			KeyType: nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIFName)},
	}
}

// Chains returns the base chains (pure).
func Chains(t *nftables.Table) []*nftables.Chain {
	accept := nftables.ChainPolicyAccept
	mk := func(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		return &nftables.Chain{Table: t, Name: name, Type: typ, Hooknum: hook, Priority: prio, Policy: &accept}
	}
	return []*nftables.Chain{
		mk("prerouting", nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest),
		mk("output", nftables.ChainTypeNAT, nftables.ChainHookOutput, nftables.ChainPriorityNATDest),
		mk("postrouting", nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource),
		mk("forward", nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityFilter),
		mk("input", nftables.ChainTypeFilter, nftables.ChainHookInput, nftables.ChainPriorityFilter),
	}
}

// ctStatusDNAT is IPS_DST_NAT in the conntrack status bits.
const ctStatusDNAT uint32 = 0x20

// Rule is one rule with its stable tag (stored in the rule's user data).
type Rule struct {
	Chain string
	Tag   string
	Exprs []expr.Any
}

func ipv4Only() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
	}
}

func ipv6Only() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV6}},
	}
}

// notDaddrLoopback6 matches packets whose IPv6 destination is not ::1.
func notDaddrLoopback6() []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 24, Len: 16},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: netip.IPv6Loopback().AsSlice()},
	}
}

// dnat6FromMap: fib daddr type local dnat ip6 to l4proto . th dport map
// @fwd6. The address lands in the 16-byte register 1, the port in the
// 32-bit register after it (NFT_REG32_04 = 12).
func dnat6FromMap(pre []expr.Any) []expr.Any {
	return cat(ipv6Only(), pre, []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.NativeEndian.AppendUint32(nil, unix.RTN_LOCAL)},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: 1, SetName: MapFwd6, DestRegister: 1, IsDestRegSet: true},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV6, RegAddrMin: 1, RegProtoMin: 12},
	})
}

func masqSubnet6(set string, bits int) []expr.Any {
	mask := make([]byte, 16)
	for i := 0; i < bits/8; i++ {
		mask[i] = 0xff
	}
	return cat(ipv6Only(), []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 16},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 16, Mask: mask, Xor: make([]byte, 16)},
		&expr.Lookup{SourceRegister: 1, SetName: set},
	}, ifnameIn(expr.MetaKeyOIFNAME, SetLinks, true), []expr.Any{&expr.Masq{}})
}

func ifnameIn(key expr.MetaKey, set string, invert bool) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Lookup{SourceRegister: 1, SetName: set, Invert: invert},
	}
}

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func dnatFromMap() []expr.Any {
	return cat(ipv4Only(), []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.NativeEndian.AppendUint32(nil, unix.RTN_LOCAL)},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: 1, SetName: MapFwd4, DestRegister: 1, IsDestRegSet: true},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 9},
	})
}

func masqSubnet(set string, bits int) []expr.Any {
	m := make([]byte, 4)
	binary.BigEndian.PutUint32(m, ^uint32(0)<<(32-bits))
	return cat(ipv4Only(), []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: m, Xor: []byte{0, 0, 0, 0}},
		&expr.Lookup{SourceRegister: 1, SetName: set},
	}, ifnameIn(expr.MetaKeyOIFNAME, SetLinks, true), []expr.Any{&expr.Masq{}})
}

func l4accept(proto byte, port uint16) []expr.Any {
	return cat(ifnameIn(expr.MetaKeyIIFNAME, SetLinks, false), []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, port)},
		&expr.Verdict{Kind: expr.VerdictAccept},
	})
}

// RuleOptions parametrise the table.
type RuleOptions struct {
	// DNSSteer, when set, is where DNS queries (UDP and TCP port 53) that
	// containers send to any host address (their gateway) are redirected:
	// one DNS socket serves every container link. A loopback address works
	// because route_localnet is on for container links.
	DNSSteer netip.AddrPort
	// NoZoneIsolation lets zones reach each other and ve- containers (by
	// default routed traffic between a zone and any other container link
	// is dropped; see zoneRules).
	NoZoneIsolation bool
}

func dnsSteer(to netip.AddrPort, proto byte) []expr.Any {
	a := to.Addr().As4()
	return cat(ipv4Only(), ifnameIn(expr.MetaKeyIIFNAME, SetLinks, false), []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.NativeEndian.AppendUint32(nil, unix.RTN_LOCAL)},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, 53)},
		&expr.Immediate{Register: 1, Data: a[:]},
		&expr.Immediate{Register: 2, Data: binary.BigEndian.AppendUint16(nil, to.Port())},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2},
	})
}

// Rules returns every rule of the table in order (pure).
func Rules(o RuleOptions) []Rule {
	accept := []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}
	var steer []Rule
	if o.DNSSteer.IsValid() && o.DNSSteer.Addr().Is4() {
		steer = append(steer,
			Rule{"prerouting", "dns-steer-udp:" + o.DNSSteer.String(), dnsSteer(o.DNSSteer, unix.IPPROTO_UDP)},
			Rule{"prerouting", "dns-steer-tcp:" + o.DNSSteer.String(), dnsSteer(o.DNSSteer, unix.IPPROTO_TCP)})
	}
	return append(steer, []Rule{
		{"prerouting", "dnat-fwd4", dnatFromMap()},
		{"output", "dnat-fwd4", dnatFromMap()},
		{"prerouting", "dnat-fwd6", dnat6FromMap(nil)},
		{"output", "dnat-fwd6", dnat6FromMap(notDaddrLoopback6())},
		{"postrouting", "masq-subnets28", masqSubnet(SetSub28, 28)},
		{"postrouting", "masq-subnets24", masqSubnet(SetSub24, 24)},
		{"postrouting", "masq-subnets16", masqSubnet(SetSub16, 16)},
		{"postrouting", "masq-subnets64", masqSubnet6(SetSub64, 64)},
		{"postrouting", "masq-localhost", cat(ipv4Only(), []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{127}},
		}, ifnameIn(expr.MetaKeyOIFNAME, SetLinks, false), []expr.Any{&expr.Masq{}})},
		{"postrouting", "masq-hairpin", cat([]expr.Any{
			&expr.Ct{Key: expr.CtKeySTATUS, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binary.NativeEndian.AppendUint32(nil, ctStatusDNAT), Xor: []byte{0, 0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
		}, ifnameIn(expr.MetaKeyIIFNAME, SetLinks, false), ifnameIn(expr.MetaKeyOIFNAME, SetLinks, false), []expr.Any{&expr.Masq{}})},
		{"forward", "accept-from-links", cat(ifnameIn(expr.MetaKeyIIFNAME, SetLinks, false), accept)},
		{"forward", "accept-to-links", cat(ifnameIn(expr.MetaKeyOIFNAME, SetLinks, false), accept)},
		{"input", "accept-dhcp", l4accept(unix.IPPROTO_UDP, 67)},
		{"input", "accept-dns-udp", l4accept(unix.IPPROTO_UDP, 53)},
		{"input", "accept-dns-tcp", l4accept(unix.IPPROTO_TCP, 53)},
	}...)
}

// RuleTag is the user data that marks one of our rules.
func RuleTag(tag string) []byte { return []byte(fmt.Sprintf(ruleTagFmt, tag)) }
