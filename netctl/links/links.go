// Package links creates and removes the host-side links of containers with
// rtnetlink (github.com/vishvananda/netlink), in the caller's network
// namespace: veth pairs whose peer is created directly in the container's
// namespace, host-side addresses and per-link sysctls. Netlink dumps are
// retried when the kernel reports them interrupted.
package links

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

const dumpRetries = 8

// retry runs a netlink dump again while the kernel reports it interrupted.
func retry[T any](f func() (T, error)) (T, error) {
	var v T
	var err error
	for range dumpRetries {
		v, err = f()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return v, err
		}
	}
	return v, fmt.Errorf("netlink dump kept being interrupted: %w", err)
}

// MarkPrefix starts the alternative name every container link netspawnd
// makes on the host carries (ve-, vb- and vz- links): networkd's shipped
// 80-container-*.network files match those names, and a .network file that
// matches this prefix (hostsd) keeps networkd off netspawnd's links without
// touching systemd-nspawn's.
const MarkPrefix = "netspawn-"

// Mark is the marking alternative name of link name.
func Mark(name string) string { return MarkPrefix + name }

// Veth describes one veth pair.
type Veth struct {
	HostName    string
	HostAltName string // set as an altname when not empty
	Marked      bool   // give the host side its Mark altname
	HostMAC     net.HardwareAddr
	PeerName    string // e.g. host0
	PeerMAC     net.HardwareAddr
	PeerNetNS   int // fd of the container's network namespace
	MTU         int
}

// Handle creates links in the caller's network namespace.
type Handle struct {
	h *netlink.Handle
}

// New opens a handle in the current network namespace.
func New() (*Handle, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open rtnetlink: %w", err)
	}
	return &Handle{h: h}, nil
}

// Close releases the handle's sockets.
func (h *Handle) Close() { h.h.Close() }

// AddVeth creates the pair with the peer directly in PeerNetNS and returns
// the host side's index. The host side stays down; see Configure.
func (h *Handle) AddVeth(v Veth) (int, error) {
	la := netlink.NewLinkAttrs()
	la.Name = v.HostName
	if v.Marked {
		la.Name = tempName()
	}
	la.HardwareAddr = v.HostMAC
	if v.MTU > 0 {
		la.MTU = v.MTU
	}
	link := &netlink.Veth{LinkAttrs: la, PeerName: v.PeerName, PeerHardwareAddr: v.PeerMAC, PeerNamespace: netlink.NsFd(v.PeerNetNS)}
	if v.MTU > 0 {
		link.PeerMTU = uint32(v.MTU)
	}
	err := h.h.LinkAdd(link)
	if errors.Is(err, unix.EEXIST) && v.PeerNetNS > 0 && dropStalePeer(v.PeerNetNS, v.PeerName) {
		err = h.h.LinkAdd(link)
	}
	if err != nil {
		if errors.Is(err, unix.EEXIST) {
			return 0, fmt.Errorf("create veth %s (peer %s in the container): a link of that name already exists on the host or in the container: %w", v.HostName, v.PeerName, err)
		}
		return 0, fmt.Errorf("create veth %s (peer %s in the container): %w", v.HostName, v.PeerName, err)
	}
	var l netlink.Link
	if v.Marked {
		l, err = h.markAndName(la.Name, v.HostName)
	} else {
		l, err = h.h.LinkByName(v.HostName)
	}
	if err != nil {
		return 0, err
	}
	if v.HostAltName != "" {
		if err := h.h.LinkAddAltName(l, v.HostAltName); err != nil && !errors.Is(err, unix.EEXIST) {
			return 0, fmt.Errorf("set altname %s on %s: %w", v.HostAltName, v.HostName, err)
		}
	}
	return l.Attrs().Index, nil
}

// Configure prepares a host-side container link: DAD off (the controller
// numbers the link itself), route_localnet on (so forwards from 127.0.0.1
// can leave through it), the gateway address, and the link up. It is
// idempotent.
func (h *Handle) Configure(name string, gateway netip.Prefix) error {
	_ = writeSysctl("/proc/sys/net/ipv6/conf/"+name+"/accept_dad", "0")
	if err := writeSysctl("/proc/sys/net/ipv4/conf/"+name+"/route_localnet", "1"); err != nil {
		return err
	}
	l, err := h.h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("look up %s: %w", name, err)
	}
	if gateway.IsValid() {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: gateway.Addr().AsSlice(), Mask: net.CIDRMask(gateway.Bits(), 32)}}
		if err := h.h.AddrReplace(l, a); err != nil {
			return fmt.Errorf("add %s to %s: %w", gateway, name, err)
		}
	}
	if err := h.h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

func writeSysctl(path, v string) error {
	if err := os.WriteFile(path, []byte(v+"\n"), 0o644); err != nil {
		return fmt.Errorf("sysctl %s: %w", path, err)
	}
	return nil
}

// Delete removes a link by name; a missing link is not an error.
func (h *Handle) Delete(name string) error {
	l, err := h.h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return nil
		}
		return fmt.Errorf("look up %s: %w", name, err)
	}
	if err := h.h.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// Link is the state of one host link.
type Link struct {
	Name     string
	Index    int
	Up       bool
	Kind     string
	MAC      string
	Addrs    []netip.Prefix
	PeerNSID int  // for veths: the peer's netns id as seen from here (-1 unknown)
	Marked   bool // it carries netspawnd's mark (Mark): netspawnd made it
}

func marked(a *netlink.LinkAttrs) bool {
	for _, n := range a.AltNames {
		if strings.HasPrefix(n, MarkPrefix) {
			return true
		}
	}
	return false
}

// tempPrefix starts the name a marked link has between its creation and
// getting its final name (see markAndName).
const tempPrefix = "nsp"

func tempName() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return tempPrefix + hex.EncodeToString(b) // 15 bytes: IFNAMSIZ-1
}

// isTempName reports whether n is a name tempName makes.
func isTempName(n string) bool {
	if len(n) != len(tempPrefix)+12 || !strings.HasPrefix(n, tempPrefix) {
		return false
	}
	_, err := hex.DecodeString(n[len(tempPrefix):])
	return err == nil
}

// markAndName gives a link just made under a temporary name netspawnd's
// mark, then its final name: no link is ever seen under its final name
// without the mark (networkd matches final names; a netspawnd killed in
// between leaves a marked link, which the next one deletes). A final name
// taken meanwhile deletes the link and is an error.
func (h *Handle) markAndName(tmp, final string) (netlink.Link, error) {
	l, err := h.h.LinkByName(tmp)
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", tmp, err)
	}
	if err := h.h.LinkAddAltName(l, Mark(final)); err != nil {
		_ = h.h.LinkDel(l)
		return nil, fmt.Errorf("set altname %s on %s: %w", Mark(final), final, err)
	}
	if err := h.h.LinkSetName(l, final); err != nil {
		_ = h.h.LinkDel(l)
		return nil, fmt.Errorf("name %s: %w", final, err)
	}
	l.Attrs().Name = final
	return l, nil
}

// Get returns a link's state, or ok=false when it does not exist.
func (h *Handle) Get(name string) (Link, bool, error) {
	l, err := h.h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return Link{}, false, nil
		}
		return Link{}, false, fmt.Errorf("look up %s: %w", name, err)
	}
	a := l.Attrs()
	out := Link{Name: a.Name, Index: a.Index, Up: a.Flags&net.FlagUp != 0, Kind: l.Type(), MAC: a.HardwareAddr.String(), PeerNSID: a.NetNsID, Marked: marked(a)}
	addrs, err := retry(func() ([]netlink.Addr, error) { return h.h.AddrList(l, unix.AF_INET) })
	if err != nil {
		return out, true, fmt.Errorf("addresses of %s: %w", name, err)
	}
	for _, ad := range addrs {
		if p, ok := prefixOf(ad.IPNet); ok {
			out.Addrs = append(out.Addrs, p)
		}
	}
	return out, true, nil
}

// Names returns the names of all links.
func (h *Handle) Names() ([]string, error) {
	ls, err := retry(h.h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	out := make([]string, 0, len(ls))
	for _, l := range ls {
		out = append(out, l.Attrs().Name)
	}
	return out, nil
}

// dropStalePeer deletes a veth named name in the container's network
// namespace nsFD, and reports whether it did. The namespace is the one
// being set up for a machine, so such a link can only be the half of a pair
// an earlier attempt made (a netspawnd killed between creating the pair
// and naming it, whose retry then meets the old peer).
func dropStalePeer(nsFD int, name string) bool {
	ch, err := NewAt(nsFD)
	if err != nil {
		return false
	}
	defer ch.Close()
	l, err := ch.h.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return true // gone since: deleted with its host side (netspawnd's deleter)
	}
	if err != nil || l.Type() != "veth" {
		return false
	}
	// ENODEV: the host side's deletion took the pair first.
	err = ch.h.LinkDel(l)
	return err == nil || errors.Is(err, unix.ENODEV)
}

// MarkedNames returns the names of the links netspawnd made: those that
// carry its mark, and those still under a temporary name (a netspawnd
// killed between creating a link and naming it).
func (h *Handle) MarkedNames() ([]string, error) {
	ls, err := retry(h.h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var out []string
	for _, l := range ls {
		if marked(l.Attrs()) || isTempName(l.Attrs().Name) {
			out = append(out, l.Attrs().Name)
		}
	}
	return out, nil
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

// InUse dumps the IPv4 prefixes of every address and of every route of
// the non-local tables, except those on links for which skip (given the
// ifindex) returns true: our own container links.
func (h *Handle) InUse(skip func(index int) bool) ([]netip.Prefix, error) {
	var out []netip.Prefix
	addrs, err := retry(func() ([]netlink.Addr, error) { return h.h.AddrList(nil, unix.AF_INET) })
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok && !(skip != nil && skip(a.LinkIndex)) {
			out = append(out, p.Masked())
		}
	}
	routes, err := retry(func() ([]netlink.Route, error) {
		return h.h.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if p, ok := routePrefix(r); ok && !(skip != nil && skip(r.LinkIndex)) {
			out = append(out, p)
		}
	}
	return out, nil
}

// routePrefix returns the destination of a route that blocks a subnet:
// IPv4, not a default route, not in the local table (addresses cover it),
// not loopback.
func routePrefix(r netlink.Route) (netip.Prefix, bool) {
	if r.Dst == nil || r.Table == unix.RT_TABLE_LOCAL {
		return netip.Prefix{}, false
	}
	p, ok := prefixOf(r.Dst)
	if !ok || !p.Addr().Is4() || p.Bits() == 0 || p.Addr().IsLoopback() {
		return netip.Prefix{}, false
	}
	return p.Masked(), true
}

// Announce tells the host's kernel where a container's address will be:
// a neighbour entry on link for addr at mac, in the STALE state (used at
// once, confirmed by a unicast probe the first time it is used after a
// few seconds). Without it, a host that tries the address before the
// container has configured it (a booted OS's DHCP client takes a few
// hundred milliseconds) waits for its next ARP retry, up to a second
// later, before the first packet goes through. The kernel replaces the
// entry if the container answers from another MAC.
func (h *Handle) Announce(link string, addr netip.Addr, mac net.HardwareAddr) error {
	l, err := h.h.LinkByName(link)
	if err != nil {
		return fmt.Errorf("look up %s: %w", link, err)
	}
	family := netlink.FAMILY_V4
	if addr.Is6() {
		family = netlink.FAMILY_V6
	}
	n := &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: family, State: netlink.NUD_STALE, IP: addr.AsSlice(), HardwareAddr: mac}
	if err := h.h.NeighSet(n); err != nil {
		return fmt.Errorf("neighbour %s at %s on %s: %w", addr, mac, link, err)
	}
	return nil
}
