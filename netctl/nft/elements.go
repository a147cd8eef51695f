package nft

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// Forward is one port forward: Proto HostPort on any host address goes to
// Addr:Port.
type Forward struct {
	Proto    string     `json:"proto"` // "tcp" or "udp"
	HostPort uint16     `json:"host_port"`
	Addr     netip.Addr `json:"addr"`
	Port     uint16     `json:"port"`
}

// Elements is a set of elements of our sets and maps: what one machine (or
// the whole table) owns.
type Elements struct {
	Links    []string       `json:"links,omitempty"`
	Subnets  []netip.Prefix `json:"subnets,omitempty"` // /28 or /24
	Forwards []Forward      `json:"forwards,omitempty"`
	// Zones are zone bridges: traffic that enters and leaves the same one
	// (bridged, seen here through br_netfilter) passes zone isolation.
	Zones []string `json:"zones,omitempty"`
}

// Empty reports whether e holds nothing.
func (e Elements) Empty() bool {
	return len(e.Links) == 0 && len(e.Subnets) == 0 && len(e.Forwards) == 0 && len(e.Zones) == 0
}

// Merge appends o to e.
func (e Elements) Merge(o Elements) Elements {
	e.Links = append(append([]string(nil), e.Links...), o.Links...)
	e.Subnets = append(append([]netip.Prefix(nil), e.Subnets...), o.Subnets...)
	e.Forwards = append(append([]Forward(nil), e.Forwards...), o.Forwards...)
	e.Zones = append(append([]string(nil), e.Zones...), o.Zones...)
	return e
}

// ProtoNumber maps "tcp"/"udp" to the IP protocol number.
func ProtoNumber(p string) (byte, error) {
	switch strings.ToLower(p) {
	case "tcp", "":
		return unix.IPPROTO_TCP, nil
	case "udp":
		return unix.IPPROTO_UDP, nil
	}
	return 0, fmt.Errorf("unsupported protocol %q (want tcp or udp)", p)
}

func protoName(n byte) string {
	if n == unix.IPPROTO_UDP {
		return "udp"
	}
	return "tcp"
}

// element is one kernel element with the set it belongs to; key is its
// identity (the set key bytes).
type element struct {
	set string
	key []byte
	val []byte
}

func (el element) id() string { return el.set + "/" + string(el.key) }

func ifnameKey(n string) []byte {
	b := make([]byte, 16)
	copy(b, n)
	return b
}

func pad4(b []byte) []byte {
	out := make([]byte, (len(b)+3)&^3)
	copy(out, b)
	return out
}

// FwdKey is the map key of a forward: l4proto . dport, each padded to 4 bytes.
func FwdKey(proto byte, port uint16) []byte {
	return append(pad4([]byte{proto}), pad4(binary.BigEndian.AppendUint16(nil, port))...)
}

// toKernel turns e into kernel elements (pure).
func (e Elements) toKernel() ([]element, error) {
	var out []element
	for _, l := range e.Links {
		out = append(out, element{set: SetLinks, key: ifnameKey(l)})
	}
	for _, p := range e.Subnets {
		if p.Addr().Is6() {
			if p.Bits() != 64 {
				return nil, fmt.Errorf("subnet %s: only /64 IPv6 subnets are supported", p)
			}
			a := p.Masked().Addr().As16()
			out = append(out, element{set: SetSub64, key: a[:]})
			continue
		}
		set := SetSub28
		switch p.Bits() {
		case 28:
		case 24:
			set = SetSub24
		case 16:
			set = SetSub16 // cluster zones
		default:
			return nil, fmt.Errorf("subnet %s: only /28, /24 and /16 subnets are supported", p)
		}
		a := p.Masked().Addr().As4()
		out = append(out, element{set: set, key: a[:]})
	}
	for _, f := range e.Forwards {
		pn, err := ProtoNumber(f.Proto)
		if err != nil {
			return nil, err
		}
		if f.Addr.Is6() && !f.Addr.Is4In6() {
			a := f.Addr.As16()
			out = append(out, element{set: MapFwd6, key: FwdKey(pn, f.HostPort),
				val: append(a[:], pad4(binary.BigEndian.AppendUint16(nil, f.Port))...)})
			continue
		}
		if !f.Addr.Is4() {
			return nil, fmt.Errorf("forward to %s: not an IP address", f.Addr)
		}
		a := f.Addr.As4()
		out = append(out, element{set: MapFwd4, key: FwdKey(pn, f.HostPort),
			val: append(a[:], pad4(binary.BigEndian.AppendUint16(nil, f.Port))...)})
	}
	for _, z := range e.Zones {
		out = append(out, element{set: SetZonePairs, key: append(ifnameKey(z), ifnameKey(z)...)})
	}
	return out, nil
}

// fromKernel decodes kernel elements of one set back into e.
func (e *Elements) addKernel(set string, els []nftables.SetElement) {
	for _, el := range els {
		switch set {
		case SetLinks:
			e.Links = append(e.Links, strings.TrimRight(string(el.Key), "\x00"))
		case SetSub28, SetSub24, SetSub16:
			if len(el.Key) != 4 {
				continue
			}
			bits := map[string]int{SetSub28: 28, SetSub24: 24, SetSub16: 16}[set]
			e.Subnets = append(e.Subnets, netip.PrefixFrom(netip.AddrFrom4([4]byte(el.Key)), bits))
		case SetZonePairs:
			if len(el.Key) == 32 {
				e.Zones = append(e.Zones, strings.TrimRight(string(el.Key[:16]), "\x00"))
			}
		case MapFwd4:
			if len(el.Key) != 8 || len(el.Val) != 8 {
				continue
			}
			e.Forwards = append(e.Forwards, Forward{Proto: protoName(el.Key[0]), HostPort: binary.BigEndian.Uint16(el.Key[4:6]),
				Addr: netip.AddrFrom4([4]byte(el.Val[:4])), Port: binary.BigEndian.Uint16(el.Val[4:6])})
		case SetSub64:
			if len(el.Key) != 16 {
				continue
			}
			e.Subnets = append(e.Subnets, netip.PrefixFrom(netip.AddrFrom16([16]byte(el.Key)), 64))
		case MapFwd6:
			if len(el.Key) != 8 || len(el.Val) != 20 {
				continue
			}
			e.Forwards = append(e.Forwards, Forward{Proto: protoName(el.Key[0]), HostPort: binary.BigEndian.Uint16(el.Key[4:6]),
				Addr: netip.AddrFrom16([16]byte(el.Val[:16])), Port: binary.BigEndian.Uint16(el.Val[16:18])})
		}
	}
}

// Sort orders e canonically (for comparisons and output).
func (e Elements) Sort() Elements {
	sort.Strings(e.Links)
	sort.Strings(e.Zones)
	sort.Slice(e.Subnets, func(i, j int) bool { return e.Subnets[i].String() < e.Subnets[j].String() })
	sort.Slice(e.Forwards, func(i, j int) bool {
		a, b := e.Forwards[i], e.Forwards[j]
		if a.Proto != b.Proto {
			return a.Proto < b.Proto
		}
		if a.HostPort != b.HostPort {
			return a.HostPort < b.HostPort
		}
		return a.Addr.Is4() && !b.Addr.Is4()
	})
	return e
}

// Diff returns what must be added to and deleted from have to reach want
// (pure). A forward whose key exists with a different target is replaced.
func Diff(want, have Elements) (add, del Elements, err error) {
	w, err := want.toKernel()
	if err != nil {
		return add, del, err
	}
	h, err := have.toKernel()
	if err != nil {
		return add, del, err
	}
	hm := map[string]element{}
	for _, el := range h {
		hm[el.id()] = el
	}
	wm := map[string]bool{}
	for i, el := range w {
		wm[el.id()] = true
		old, ok := hm[el.id()]
		if ok && string(old.val) == string(el.val) {
			continue
		}
		if ok {
			pickInto(&del, want, i)
		}
		pickInto(&add, want, i)
	}
	for i, el := range h {
		if !wm[el.id()] {
			pickInto(&del, have, i)
		}
	}
	return add, del, nil
}

// pickInto appends the i-th element (in toKernel order) of src to dst.
func pickInto(dst *Elements, src Elements, i int) {
	switch {
	case i < len(src.Links):
		dst.Links = append(dst.Links, src.Links[i])
	case i < len(src.Links)+len(src.Subnets):
		dst.Subnets = append(dst.Subnets, src.Subnets[i-len(src.Links)])
	case i < len(src.Links)+len(src.Subnets)+len(src.Forwards):
		dst.Forwards = append(dst.Forwards, src.Forwards[i-len(src.Links)-len(src.Subnets)])
	default:
		dst.Zones = append(dst.Zones, src.Zones[i-len(src.Links)-len(src.Subnets)-len(src.Forwards)])
	}
}

func toSetElements(el element) []nftables.SetElement {
	return []nftables.SetElement{{Key: el.key, Val: el.val}}
}
