package links

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/netspawn/netspawn/internal/netconf"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// MaxBridgePorts is the Linux bridge's port limit (BR_MAX_PORTS - 1).
const MaxBridgePorts = 1023

// ErrNoIPVLAN is returned when the kernel cannot create ipvlan links.
var ErrNoIPVLAN = errors.New("this kernel has no ipvlan support (module ipvlan, CONFIG_IPVLAN): load it with `modprobe ipvlan` or use --network-macvlan")

// Bridge describes an existing link that should be a bridge.
type Bridge struct {
	Name  string
	Index int
	Ports int
}

// GetBridge returns the bridge name, with clear errors when no such link
// exists or it is not a bridge.
func (h *Handle) GetBridge(name string) (Bridge, error) {
	l, err := h.h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return Bridge{}, fmt.Errorf("bridge %s does not exist (create it first, e.g. `ip link add %s type bridge`)", name, name)
		}
		return Bridge{}, fmt.Errorf("look up bridge %s: %w", name, err)
	}
	if l.Type() != "bridge" {
		return Bridge{}, fmt.Errorf("%s is not a bridge (it is a %s link)", name, l.Type())
	}
	ls, err := retry(h.h.LinkList)
	if err != nil {
		return Bridge{}, fmt.Errorf("list links: %w", err)
	}
	b := Bridge{Name: name, Index: l.Attrs().Index}
	for _, o := range ls {
		if o.Attrs().MasterIndex == b.Index {
			b.Ports++
		}
	}
	return b, nil
}

// EnsureBridge creates a bridge (down, no address) unless it exists, and
// reports whether it created it. An existing link of another kind is an error.
func (h *Handle) EnsureBridge(name string) (bool, error) {
	if _, ok, err := h.Get(name); err != nil {
		return false, err
	} else if ok {
		_, err := h.GetBridge(name)
		return false, err
	}
	la := netlink.NewLinkAttrs()
	la.Name = tempName()
	if err := h.h.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil {
		return false, fmt.Errorf("create bridge %s: %w", name, err)
	}
	if _, err := h.markAndName(la.Name, name); err != nil {
		if errors.Is(err, unix.EEXIST) {
			_, err := h.GetBridge(name) // made meanwhile
			return false, err
		}
		return false, err
	}
	return true, nil
}

// Enslave makes link a port of bridge and sets it up. The port gets no
// IPv6 of its own (the bridge has the addresses; frames for the port's
// own link-local address would reach the bridge, not the port): no
// link-local address and routes for the kernel to walk on the host's
// every later link event.
func (h *Handle) Enslave(link, bridge string) error {
	l, err := h.h.LinkByName(link)
	if err != nil {
		return fmt.Errorf("look up %s: %w", link, err)
	}
	if err := h.DisableIPv6(link); err != nil {
		return fmt.Errorf("bridge port %s: %w", link, err)
	}
	b, err := h.h.LinkByName(bridge)
	if err != nil {
		return fmt.Errorf("look up %s: %w", bridge, err)
	}
	if err := h.h.LinkSetMasterByIndex(l, b.Attrs().Index); err != nil {
		if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EXFULL) {
			return fmt.Errorf("add %s to bridge %s: the bridge is full (a Linux bridge takes at most %d ports): %w", link, bridge, MaxBridgePorts, err)
		}
		return fmt.Errorf("add %s to bridge %s: %w", link, bridge, err)
	}
	if err := h.h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", link, err)
	}
	return nil
}

// Usable checks that a host interface exists and is free to be given to a
// container: not a bridge port, not a bridge with ports.
func (h *Handle) Usable(name string) (netlink.Link, error) {
	l, err := h.h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return nil, fmt.Errorf("interface %s does not exist on the host (already moved into a container?)", name)
		}
		return nil, fmt.Errorf("look up %s: %w", name, err)
	}
	if m := l.Attrs().MasterIndex; m != 0 {
		master := fmt.Sprint(m)
		if ml, err := h.h.LinkByIndex(m); err == nil {
			master = ml.Attrs().Name
		}
		return nil, fmt.Errorf("interface %s is in use: it is a port of %s", name, master)
	}
	return l, nil
}

// AddMACVLAN creates a macvlan (mode bridge) on parent, named name and
// created directly in the network namespace nsFD.
func (h *Handle) AddMACVLAN(parent, name string, mac net.HardwareAddr, nsFD int) error {
	p, err := h.Usable(parent)
	if err != nil {
		return err
	}
	la := netlink.NewLinkAttrs()
	la.Name = name
	la.ParentIndex = p.Attrs().Index
	la.HardwareAddr = mac
	la.Namespace = netlink.NsFd(nsFD)
	if err := h.h.LinkAdd(&netlink.Macvlan{LinkAttrs: la, Mode: netlink.MACVLAN_MODE_BRIDGE}); err != nil {
		return fmt.Errorf("create macvlan %s on %s in the container: %w", name, parent, err)
	}
	return nil
}

// AddIPVLAN creates an ipvlan (mode l2) on parent directly in nsFD.
func (h *Handle) AddIPVLAN(parent, name string, nsFD int) error {
	p, err := h.Usable(parent)
	if err != nil {
		return err
	}
	la := netlink.NewLinkAttrs()
	la.Name = name
	la.ParentIndex = p.Attrs().Index
	la.Namespace = netlink.NsFd(nsFD)
	if err := h.h.LinkAdd(&netlink.IPVlan{LinkAttrs: la, Mode: netlink.IPVLAN_MODE_L2}); err != nil {
		if !ipvlanAvailable() && (errors.Is(err, unix.EOPNOTSUPP) || strings.Contains(err.Error(), "not supported")) {
			return fmt.Errorf("create ipvlan %s on %s: %w (%v)", name, parent, ErrNoIPVLAN, err)
		}
		return fmt.Errorf("create ipvlan %s on %s in the container: %w", name, parent, err)
	}
	return nil
}

// ipvlanAvailable reports whether the kernel has the ipvlan driver: loaded
// or built in, or as a module it loads on the first ipvlan link (the host
// lane's guest had it so, and netspawnd refused it before trying).
func ipvlanAvailable() bool { return KernelHas("ipvlan") }

// IPVLANAvailable reports whether this kernel can create ipvlan links.
func IPVLANAvailable() bool { return ipvlanAvailable() }

// KernelHas reports whether the running kernel has a driver: loaded, built
// in, or as a module it can load (listed for this release in
// /lib/modules).
func KernelHas(module string) bool {
	if _, err := os.Stat("/sys/module/" + module); err == nil {
		return true
	}
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	rel := unix.ByteSliceToString(u.Release[:])
	for _, f := range []string{"modules.builtin", "modules.dep"} {
		b, err := os.ReadFile(filepath.Join("/lib/modules", rel, f))
		if err == nil && strings.Contains(string(b), "/"+module+".ko") {
			return true
		}
	}
	return false
}

// MoveTo moves a host interface into the namespace nsFD; the container
// side renames it (see NSHandle.Rename).
func (h *Handle) MoveTo(name string, nsFD int) error {
	l, err := h.Usable(name)
	if err != nil {
		return err
	}
	if err := h.h.LinkSetNsFd(l, nsFD); err != nil {
		return fmt.Errorf("move %s into the container: %w", name, err)
	}
	return nil
}

// Rename renames a link (down first, as the kernel requires).
func (h *Handle) Rename(from, to string) error {
	if from == to {
		return nil
	}
	l, err := h.h.LinkByName(from)
	if err != nil {
		return fmt.Errorf("look up %s: %w", from, err)
	}
	_ = h.h.LinkSetDown(l)
	if err := h.h.LinkSetName(l, to); err != nil {
		return fmt.Errorf("rename %s to %s: %w", from, to, err)
	}
	return nil
}

// RenameAway frees a link's names before it is deleted: its alternative
// names go and it gets a temporary name (one MarkedNames reports, so a
// netspawnd killed before deleting it deletes it when it starts again). A
// new link can then take the names at once, while the kernel takes its time
// deleting the old one. It returns the temporary name. Kernels before 6.2
// refuse to rename a link that is up: the caller deletes it by name then.
//
// The link stays up until it is deleted. Taking it down first would spare
// the kernel a walk of the IPv6 routing tree for each alternative name
// dropped (on a link that is up, that is a state change, NETDEV_CHANGE,
// which IPv6 answers with rt6_sync_up), but the down waits for an RCU grace
// period, and until the names are gone a CNI runtime or ip(8) still sees
// the link after its DEL (see the cni section of docs/benchmarks.md).
func (h *Handle) RenameAway(name string) (string, error) {
	l, err := h.h.LinkByName(name)
	if err != nil {
		return "", fmt.Errorf("look up %s: %w", name, err)
	}
	for _, alt := range l.Attrs().AltNames {
		if err := h.h.LinkDelAltName(l, alt); err != nil {
			return "", fmt.Errorf("drop altname %s of %s: %w", alt, name, err)
		}
	}
	tmp := tempName()
	if err := h.h.LinkSetName(l, tmp); err != nil {
		return "", fmt.Errorf("rename %s to %s: %w", name, tmp, err)
	}
	return tmp, nil
}

// MoveOut moves the link name of this handle's namespace into nsFD.
func (h *Handle) MoveOut(name string, nsFD int) error {
	l, err := h.h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("look up %s: %w", name, err)
	}
	_ = h.h.LinkSetDown(l)
	if err := h.h.LinkSetNsFd(l, nsFD); err != nil {
		return fmt.Errorf("move %s out: %w", name, err)
	}
	return nil
}

// Addrs returns the global and link-local addresses on every link but lo,
// IPv4 first.
func (h *Handle) Addrs() ([]netip.Addr, error) {
	as, err := retry(func() ([]netlink.Addr, error) { return h.h.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	var v4, v6 []netip.Addr
	for _, a := range as {
		p, ok := prefixOf(a.IPNet)
		if !ok || p.Addr().IsLoopback() {
			continue
		}
		if p.Addr().Is4() {
			v4 = append(v4, p.Addr())
		} else if !p.Addr().IsLinkLocalUnicast() {
			v6 = append(v6, p.Addr())
		}
	}
	return append(v4, v6...), nil
}

// NewAt opens a handle in the network namespace nsFD; its sockets stay in
// that namespace and keep it alive until Close.
//
// The socket is opened on a locked OS thread that enters the namespace and
// goes back to its own before it is unlocked. The thread must not simply
// be discarded while still inside the container's namespace: when the
// goroutine happens to run on the main thread, the Go runtime cannot end
// that thread and parks it instead, and the main thread is the one
// /proc/self/ns/net and /proc/PID/ns/net show. The whole process would
// then appear to live in the container's namespace (and would keep it
// alive). Only when going back fails is the thread left locked, so that
// it ends with its goroutine rather than serve others in the wrong
// namespace.
func NewAt(nsFD int) (*Handle, error) {
	type res struct {
		h   *Handle
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- res{err: fmt.Errorf("open own network namespace: %w", err)}
			return
		}
		defer own.Close()
		if err := unix.Setns(nsFD, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- res{err: fmt.Errorf("enter network namespace: %w", err)}
			return
		}
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if berr := unix.Setns(int(own.Fd()), unix.CLONE_NEWNET); berr != nil {
			// Stays locked: the thread ends with this goroutine.
			if h != nil {
				h.Close()
			}
			ch <- res{err: fmt.Errorf("return to own network namespace: %w", berr)}
			return
		}
		runtime.UnlockOSThread()
		if err != nil {
			ch <- res{err: fmt.Errorf("open rtnetlink in the container: %w", err)}
			return
		}
		ch <- res{h: &Handle{h: h}}
	}()
	r := <-ch
	return r.h, r.err
}

// ApplyInside configures interfaces in the handle's namespace (see
// netconf.Apply); for a handle made by NewAt.
func (h *Handle) ApplyInside(ifs []netconf.Interface) error { return netconf.Apply(h.h, ifs) }
