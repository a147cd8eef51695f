package cni

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/netspawn/netspawn/netctl/api"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Plugin-specific error codes (the spec leaves 100 and up to plugins).
const (
	ErrConflict  uint = 100 // the name, the container's interface or a host port is taken
	ErrExhausted uint = 101 // no address left in netspawnd's pools or the zone
)

// Timeout bounds one plugin invocation.
const Timeout = 30 * time.Second

// Funcs are the plugin's commands for skel.PluginMainFuncs.
func Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: cmdAdd, Del: cmdDel, Check: cmdCheck, GC: cmdGC, Status: cmdStatus}
}

// Versions are the spec versions the plugin speaks.
var Versions = version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

// daemonPath picks the netspawnd to start when none runs.
func daemonPath(c *NetConf) string {
	if c.Netspawnd != "" {
		return c.Netspawnd
	}
	if exe, err := os.Executable(); err == nil {
		// make install puts netspawnd in ../sbin of a $PREFIX/lib/cni/netspawn.
		for _, p := range []string{filepath.Join(filepath.Dir(exe), "netspawnd"), filepath.Join(filepath.Dir(exe), "../../sbin/netspawnd")} {
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				return p
			}
		}
	}
	if p, err := exec.LookPath("netspawnd"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/netspawnd", "/usr/local/sbin/netspawnd", "/usr/bin/netspawnd", "/usr/local/bin/netspawnd"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// connect reaches netspawnd, starting it when the configuration allows.
func connect(ctx context.Context, c *NetConf) (*api.Client, error) {
	// A runtime gives a plugin call its time (Timeout here); a netspawnd
	// that reconciles many attachments on a busy host may take more than
	// netspawn's default start wait.
	o := api.ConnectOptions{RuntimeDir: c.RuntimeDir, NoStart: !c.autoStart(), DaemonPath: daemonPath(c), StartTimeout: Timeout * 2 / 3}
	cl, err := api.Connect(ctx, o)
	if err != nil {
		hint := "start it (netspawnd, or its service)"
		if c.autoStart() {
			hint = "it could not be started: set \"netspawnd\" in the network configuration to its path, or start it (netspawnd, or its service)"
		}
		return nil, cniErr(types.ErrTryAgainLater, "netspawn: netspawnd is not reachable: %v; %s", err, hint)
	}
	return cl, nil
}

// withClient runs f with a client of netspawnd and the invocation's time.
func withClient(c *NetConf, f func(ctx context.Context, cl *api.Client) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cl, err := connect(ctx, c)
	if err != nil {
		return err
	}
	defer cl.Close()
	return f(ctx, cl)
}

// fromAPI maps netspawnd's errors onto CNI error codes.
func fromAPI(err error) error {
	var ae *api.Error
	if !errors.As(err, &ae) {
		var te *types.Error
		if errors.As(err, &te) {
			return te
		}
		return cniErr(types.ErrInternal, "netspawn: %v", err)
	}
	switch ae.Code {
	case api.CodeInvalid:
		return cniErr(ErrInvalidConfig, "netspawn: %s", ae.Message)
	case api.CodeConflict:
		return cniErr(ErrConflict, "netspawn: %s", ae.Message)
	case api.CodeExhausted:
		return cniErr(ErrExhausted, "netspawn: %s", ae.Message)
	case api.CodeNotFound:
		return cniErr(ErrUnknownContainer, "netspawn: %s", ae.Message)
	}
	return cniErr(types.ErrInternal, "netspawn: %s", ae.Message)
}

func invocation(a *skel.CmdArgs) Invocation {
	return Invocation{ContainerID: a.ContainerID, NetNS: a.Netns, IfName: a.IfName, Args: a.Args}
}

// checkNetNS fails with ErrInvalidNetNS when the runtime's namespace file
// is missing or not a network namespace.
func checkNetNS(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return cniErr(ErrInvalidNetNS, "netspawn: network namespace %q: %v", path, err)
	}
	defer f.Close()
	if t, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE); err != nil || t != unix.CLONE_NEWNET {
		return cniErr(ErrInvalidNetNS, "netspawn: %q is not a network namespace (CNI_NETNS must name one, e.g. a bind mount under /run/netns)", path)
	}
	return nil
}

func cmdAdd(a *skel.CmdArgs) error {
	c, err := ParseConf(a.StdinData)
	if err != nil {
		return err
	}
	req, err := Request(c, invocation(a))
	if err != nil {
		return err
	}
	if err := checkNetNS(a.Netns); err != nil {
		return err
	}
	return withClient(c, func(ctx context.Context, cl *api.Client) error {
		reply, err := cl.Register(ctx, req)
		if err != nil {
			return fromAPI(err)
		}
		res, err := Result(c, a.Netns, reply)
		if err != nil {
			_ = cl.Unregister(ctx, req.Name)
			return cniErr(types.ErrInternal, "netspawn: %v", err)
		}
		return types.PrintResult(res, c.CNIVersion)
	})
}

// find returns the attachment of the container's interface, if any.
func find(ctx context.Context, cl *api.Client, containerID, ifName string) (api.Machine, bool, error) {
	m, ok, err := cl.FindCNI(ctx, containerID, ifName)
	if err != nil {
		return api.Machine{}, false, fromAPI(err)
	}
	return m, ok, nil
}

func cmdDel(a *skel.CmdArgs) error {
	c, err := ParseConf(a.StdinData)
	if err != nil {
		return err
	}
	return withClient(c, func(ctx context.Context, cl *api.Client) error {
		m, ok, err := find(ctx, cl, a.ContainerID, a.IfName)
		if err != nil || !ok {
			return err // gone already: a DEL succeeds
		}
		return unregister(ctx, cl, m.Name)
	})
}

// unregister removes an attachment; one already gone is no error.
func unregister(ctx context.Context, cl *api.Client, name string) error {
	if err := cl.Unregister(ctx, name); err != nil {
		var ae *api.Error
		if errors.As(err, &ae) && ae.Code == api.CodeNotFound {
			return nil
		}
		return fromAPI(err)
	}
	return nil
}

func cmdCheck(a *skel.CmdArgs) error {
	c, err := ParseConf(a.StdinData)
	if err != nil {
		return err
	}
	if err := version.ParsePrevResult(&c.PluginConf); err != nil {
		return cniErr(ErrDecoding, "netspawn: CHECK: prevResult: %v", err)
	}
	if c.PrevResult == nil {
		return cniErr(ErrInvalidConfig, "netspawn: CHECK needs the prevResult of the ADD")
	}
	prev, err := current.NewResultFromResult(c.PrevResult)
	if err != nil {
		return cniErr(ErrDecoding, "netspawn: CHECK: prevResult: %v", err)
	}
	if err := checkNetNS(a.Netns); err != nil {
		return err
	}
	return withClient(c, func(ctx context.Context, cl *api.Client) error {
		m, ok, err := find(ctx, cl, a.ContainerID, a.IfName)
		if err != nil {
			return err
		}
		if !ok {
			return cniErr(ErrUnknownContainer, "netspawn: CHECK: container %s has no interface %s attached", a.ContainerID, a.IfName)
		}
		st, err := cl.Status(ctx, m.Name)
		if err != nil {
			return fromAPI(err)
		}
		if len(st.Warnings) > 0 {
			return cniErr(types.ErrInternal, "netspawn: CHECK: machine %s: %v", m.Name, st.Warnings)
		}
		return checkInside(a.Netns, a.IfName, st, prev)
	})
}

// checkInside compares the container's interface with what netspawnd
// recorded and what the ADD returned.
func checkInside(path, ifName string, st api.MachineStatus, prev *current.Result) error {
	var want api.Link
	found := false
	for _, l := range st.Links {
		if l.Container == ifName {
			want, found = l, true
		}
	}
	if !found {
		return cniErr(types.ErrInternal, "netspawn: CHECK: netspawnd has no link for %s of machine %s", ifName, st.Name)
	}
	addrs := map[string]bool{}
	for _, ipc := range prev.IPs {
		if ipc.Interface != nil && *ipc.Interface < len(prev.Interfaces) && prev.Interfaces[*ipc.Interface].Name == ifName {
			addrs[ipc.Address.IP.String()] = true
		}
	}
	for _, a := range []string{want.Address, want.Address6} {
		if a != "" && !addrs[a] {
			return cniErr(types.ErrInternal, "netspawn: CHECK: %s is %s's address per netspawnd but not in the ADD's result", a, ifName)
		}
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return cniErr(ErrInvalidNetNS, "netspawn: CHECK: %v", err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return cniErr(types.ErrInternal, "netspawn: CHECK: netlink in %s: %v", path, err)
	}
	defer h.Close()
	link, err := h.LinkByName(ifName)
	if err != nil {
		return cniErr(types.ErrInternal, "netspawn: CHECK: %s is missing in %s: %v", ifName, path, err)
	}
	if want.MAC != "" && link.Attrs().HardwareAddr.String() != want.MAC {
		return cniErr(types.ErrInternal, "netspawn: CHECK: %s has MAC %s, netspawnd set %s", ifName, link.Attrs().HardwareAddr, want.MAC)
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		return cniErr(types.ErrInternal, "netspawn: CHECK: %s is down", ifName)
	}
	have, err := h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return cniErr(types.ErrInternal, "netspawn: CHECK: addresses of %s: %v", ifName, err)
	}
	var haveS []string
	for _, ad := range have {
		haveS = append(haveS, ad.IP.String())
	}
	var missing []string
	for a := range addrs {
		if !slices.Contains(haveS, a) {
			missing = append(missing, a)
		}
	}
	if len(missing) > 0 {
		// Every missing address, in one stable order: the runtime's log
		// names them all, whatever the order of the map.
		slices.Sort(missing)
		return cniErr(types.ErrInternal, "netspawn: CHECK: %s lacks %s (it has %v)", ifName, strings.Join(missing, ", "), haveS)
	}
	if want.Gateway != "" {
		routes, err := h.RouteList(link, netlink.FAMILY_V4)
		if err != nil {
			return cniErr(types.ErrInternal, "netspawn: CHECK: routes of %s: %v", ifName, err)
		}
		ok := false
		for _, r := range routes {
			if (r.Dst == nil || r.Dst.IP.IsUnspecified()) && r.Gw.String() == want.Gateway {
				ok = true
			}
		}
		if !ok {
			return cniErr(types.ErrInternal, "netspawn: CHECK: no default route via %s on %s", want.Gateway, ifName)
		}
	}
	return nil
}

func cmdGC(a *skel.CmdArgs) error {
	c, err := ParseConf(a.StdinData)
	if err != nil {
		return err
	}
	valid := map[types.GCAttachment]bool{}
	for _, v := range c.ValidAttachments {
		valid[v] = true
	}
	return withClient(c, func(ctx context.Context, cl *api.Client) error {
		ms, err := cl.List(ctx)
		if err != nil {
			return fromAPI(err)
		}
		var errs []error
		for _, m := range ms {
			if m.CNI == nil || m.NetNS == "" || m.CNI.Network != c.Name {
				continue
			}
			if valid[types.GCAttachment{ContainerID: m.CNI.ContainerID, IfName: m.CNI.IfName}] {
				continue
			}
			if err := unregister(ctx, cl, m.Name); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", m.Name, err))
				continue
			}
			if err := cl.Release(ctx, m.Name); err != nil {
				errs = append(errs, fmt.Errorf("release %s: %w", m.Name, err))
			}
		}
		if err := errors.Join(errs...); err != nil {
			return cniErr(types.ErrInternal, "netspawn: GC: %v", err)
		}
		return nil
	})
}

func cmdStatus(a *skel.CmdArgs) error {
	c, err := ParseConf(a.StdinData)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cl, err := connect(ctx, c)
	if err != nil {
		var te *types.Error
		if errors.As(err, &te) {
			te.Code = ErrNotAvailable
		}
		return err
	}
	defer cl.Close()
	capy, err := cl.Capacity(ctx, c.Zone)
	if err != nil {
		return cniErr(ErrNotAvailable, "netspawn: %v", err)
	}
	if !capy.Room {
		return cniErr(ErrNotAvailable, "netspawn: no address left: %s", capy.Detail)
	}
	return nil
}
