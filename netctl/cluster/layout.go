// Package cluster keeps the state of zones that span hosts in etcd: each
// zone's subnet, VNI and IPv6 /64, each machine's address (allocated in a
// transaction, never twice), the hosts that carry a zone (their VXLAN
// endpoints) and the machines' names, published under a lease this host
// keeps alive so that a dead host's names vanish when it expires.
//
// This file is the pure part: the key layout, the records and the choices
// (addresses, subnets, VNIs, MACs) made from them. client.go talks to etcd.
package cluster

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"strings"
	"time"
)

// DefaultPrefix is where netspawn keeps its keys in etcd.
const DefaultPrefix = "/netspawn/v1/"

// DefaultZoneBits is the size of a cluster zone's subnet (a /16: 65,533
// members).
const DefaultZoneBits = 16

// VXLANOverhead is what VXLAN over IPv4 adds to a frame: outer IPv4 (20),
// UDP (8), VXLAN (8) and the inner Ethernet header (14).
const VXLANOverhead = 50

// MaxVNI is the largest 24-bit VXLAN network identifier.
const MaxVNI = 1<<24 - 1

// Keys is the key layout under one prefix.
//
//	PREFIX zones/ZONE              ZoneInfo (no lease)
//	PREFIX vnis/VNI                zone name: a VNI is never given twice
//	PREFIX subnets/A.B.C.D_BITS    zone name: a subnet is never given twice
//	PREFIX ula                     the cluster's IPv6 ULA /48
//	PREFIX ipam/ZONE/addr/IP       machine name (no lease: the address stays the machine's)
//	PREFIX ipam/ZONE/machine/NAME  IP
//	PREFIX hosts/ZONE/NODE         HostEntry, under the node's lease
//	PREFIX names/ZONE/NAME         NameEntry, under the node's lease
type Keys struct{ Root string }

func (k Keys) Zone(zone string) string { return k.Root + "zones/" + zone }
func (k Keys) ZonesPrefix() string     { return k.Root + "zones/" }
func (k Keys) VNI(vni uint32) string   { return fmt.Sprintf("%svnis/%d", k.Root, vni) }
func (k Keys) VNIsPrefix() string      { return k.Root + "vnis/" }
func (k Keys) SubnetsPrefix() string   { return k.Root + "subnets/" }
func (k Keys) ULA() string             { return k.Root + "ula" }
func (k Keys) HostsPrefix() string     { return k.Root + "hosts/" }
func (k Keys) NamesPrefix() string     { return k.Root + "names/" }
func (k Keys) Host(zone, node string) string {
	return k.Root + "hosts/" + zone + "/" + node
}
func (k Keys) Name(zone, machine string) string {
	return k.Root + "names/" + zone + "/" + machine
}
func (k Keys) Subnet(p netip.Prefix) string {
	return k.Root + "subnets/" + strings.ReplaceAll(p.Masked().String(), "/", "_")
}
func (k Keys) Addr(zone string, a netip.Addr) string {
	return k.Root + "ipam/" + zone + "/addr/" + a.String()
}
func (k Keys) Machine(zone, machine string) string {
	return k.Root + "ipam/" + zone + "/machine/" + machine
}

// SplitTwo splits "PREFIX A/B" into A and B.
func SplitTwo(key, prefix string) (a, b string, ok bool) {
	rest, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return "", "", false
	}
	a, b, ok = strings.Cut(rest, "/")
	if !ok || a == "" || b == "" || strings.Contains(b, "/") {
		return "", "", false
	}
	return a, b, true
}

// ZoneInfo is a cluster zone as stored in etcd.
type ZoneInfo struct {
	Name    string       `json:"name"`
	Subnet  netip.Prefix `json:"subnet"`
	Gateway netip.Addr   `json:"gateway"` // on every host's bridge (anycast)
	VNI     uint32       `json:"vni"`
	Prefix6 netip.Prefix `json:"prefix6,omitempty"` // the zone's /64 (gateway ::1)
	MAC     string       `json:"mac"`               // the gateway's MAC, the same on every host
	Created time.Time    `json:"created"`
}

// HostEntry is one host carrying a zone: where its VXLAN endpoint is.
type HostEntry struct {
	Underlay netip.Addr `json:"underlay"`
}

// NameEntry is one machine of a zone: where it runs and its addresses.
type NameEntry struct {
	Host  string       `json:"host"`
	Addrs []netip.Addr `json:"addrs"`
	OS    string       `json:"os,omitempty"`
}

// GatewayMAC is a zone's anycast gateway MAC: locally administered,
// 02:6e:73 ("ns") and the VNI.
func GatewayMAC(vni uint32) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x6e, 0x73, byte(vni >> 16), byte(vni >> 8), byte(vni)}
}

// MemberID is the seed of a cluster zone member's MACs: the same on every
// host, so a machine keeps its MAC (and its EUI-64 IPv6 address) when it
// starts elsewhere.
func MemberID(zone string) [16]byte {
	sum := sha256.Sum256([]byte("netspawn-cluster-zone\x00" + zone))
	var id [16]byte
	copy(id[:], sum[:16])
	return id
}

// ErrExhausted: no free address, subnet or VNI is left.
var ErrExhausted = errors.New("exhausted")

// ErrConflict: the machine runs on another host, or a zone or subnet
// exists already.
var ErrConflict = errors.New("conflict")

// ErrInvalid: a request that cannot be right (a subnet of a size zones do
// not take).
var ErrInvalid = errors.New("invalid")

// kindError is a message that errors.Is matches against its kind.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// errorOf makes an error of kind (ErrConflict, ErrInvalid, ErrExhausted)
// whose message is only the formatted text.
func errorOf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

func u32(a netip.Addr) uint32 { b := a.As4(); return binary.BigEndian.Uint32(b[:]) }
func addr(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// Gateway is the first host address of a zone's subnet.
func Gateway(subnet netip.Prefix) netip.Addr { return addr(u32(subnet.Masked().Addr()) + 1) }

// Candidates yields the addresses a machine may get in subnet, in the order
// to try them: from a hash of its name, then the next ones (wrapping),
// skipping the network, gateway and broadcast addresses. The same name
// tries the same addresses on every host, so concurrent starts of
// different machines rarely collide.
func Candidates(subnet netip.Prefix, machine string) func(yield func(netip.Addr) bool) {
	return func(yield func(netip.Addr) bool) {
		if !subnet.Addr().Is4() || subnet.Bits() > 30 {
			return
		}
		base := u32(subnet.Masked().Addr())
		size := uint32(1) << (32 - subnet.Bits())
		first, span := base+2, size-3 // .0 network, .1 gateway, last broadcast
		h := fnv.New32a()
		h.Write([]byte(machine))
		start := h.Sum32() % span
		for i := range span {
			if !yield(addr(first + (start+i)%span)) {
				return
			}
		}
	}
}

// PickSubnet returns the first /bits of pools that overlaps nothing taken.
func PickSubnet(pools []netip.Prefix, bits int, taken []netip.Prefix) (netip.Prefix, error) {
	for _, pool := range pools {
		if !pool.Addr().Is4() || pool.Bits() > bits {
			continue
		}
		base := u32(pool.Masked().Addr())
		n := uint32(1) << (bits - pool.Bits())
		step := uint32(1) << (32 - bits)
		for i := range n {
			p := netip.PrefixFrom(addr(base+i*step), bits)
			free := true
			for _, t := range taken {
				if t.Overlaps(p) {
					free = false
					break
				}
			}
			if free {
				return p, nil
			}
		}
	}
	return netip.Prefix{}, errorOf(ErrExhausted, "no free /%d left in the cluster pools %v", bits, pools)
}

// PickVNI returns the smallest VNI from 1 that used does not hold.
func PickVNI(used map[uint32]bool) (uint32, error) {
	for v := uint32(1); v <= MaxVNI; v++ {
		if !used[v] {
			return v, nil
		}
	}
	return 0, errorOf(ErrExhausted, "every VXLAN network identifier is taken")
}

// Prefix6 is a zone's /64 in the cluster's /48: subnet ID from the VNI.
func Prefix6(ula netip.Prefix, vni uint32) (netip.Prefix, error) {
	if !ula.Addr().Is6() || ula.Bits() > 48 {
		return netip.Prefix{}, fmt.Errorf("cluster IPv6 prefix %v: want a /48 or shorter", ula)
	}
	if vni > 0xffff {
		return netip.Prefix{}, fmt.Errorf("VNI %d has no /64 in the cluster's /48 (VNIs up to 65535 do)", vni)
	}
	b := ula.Masked().Addr().As16()
	binary.BigEndian.PutUint16(b[6:8], uint16(vni))
	return netip.PrefixFrom(netip.AddrFrom16(b), 64), nil
}

// ValidNode checks a node name: it is a key component and shown in tables.
func ValidNode(n string) error {
	if n == "" || len(n) > 253 || strings.ContainsAny(n, "/ \t\n\x00") {
		return fmt.Errorf("cluster node name %q: want 1-253 characters without '/' or spaces", n)
	}
	return nil
}
