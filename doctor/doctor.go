// Package doctor checks a host for what netspawn's container networking
// needs, reading only: forwarding, other firewalls in the way, the NSS
// module and its nsswitch.conf line, netspawnd's sockets, kernel features,
// the kernel's neighbour tables against their limit, user namespaces, the cgroup layout, and on systemd hosts how networkd,
// resolved and machined treat netspawn's machines. netspawnctl doctor
// prints what Run returns.
package doctor

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/netspawn/netspawn/netctl/api"
	"github.com/netspawn/netspawn/netctl/hostfw"
	"github.com/netspawn/netspawn/netctl/nft"
	"golang.org/x/sys/unix"
)

// Check is one line of `netspawnctl doctor`.
type Check struct {
	Name   string `json:"name"`
	Status string `json:"status"` // OK, WARN or FAIL
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Paths are the files and mounts the checks read: the host's by default
// (see DefaultPaths), others in tests.
type Paths struct {
	NSSwitch   string   // nsswitch.conf
	NSSDirs    []string // where glibc looks for NSS modules
	RuntimeDir string   // netspawnd's sockets
	Proc, Sys  string   // procfs and sysfs mounts
	Modules    string   // the kernel modules' directory (/lib/modules)
}

// DefaultPaths are the host's.
func DefaultPaths() Paths {
	return Paths{NSSwitch: "/etc/nsswitch.conf", NSSDirs: DefaultNSSDirs(), Proc: "/proc", Sys: "/sys", Modules: "/lib/modules"}
}

// DefaultNSSDirs are where glibc looks for NSS modules on this architecture.
func DefaultNSSDirs() []string {
	triplet := map[string]string{"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu", "386": "i386-linux-gnu",
		"arm": "arm-linux-gnueabihf", "riscv64": "riscv64-linux-gnu", "ppc64le": "powerpc64le-linux-gnu", "s390x": "s390x-linux-gnu"}[runtime.GOARCH]
	var out []string
	if triplet != "" {
		out = append(out, "/lib/"+triplet, "/usr/lib/"+triplet)
	}
	return append(out, "/lib64", "/usr/lib64", "/lib", "/usr/lib")
}

// Print writes the checks as a table, with the fix under each that is not OK.
func Print(w io.Writer, cs []Check) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, c := range cs {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Status, c.Name, c.Detail)
		if c.Fix != "" && c.Status != "OK" {
			fmt.Fprintf(tw, "\t\t  fix: %s\n", c.Fix)
		}
	}
	tw.Flush()
}

func readTrim(path string) (string, error) {
	b, err := os.ReadFile(path)
	return strings.TrimSpace(string(b)), err
}

// Run runs every check, in the order netspawnctl doctor prints them.
func Run(ctx context.Context, p Paths) []Check {
	if ctx == nil {
		ctx = context.Background()
	}
	var cs []Check
	add := func(c Check) { cs = append(cs, c) }
	// Forwarding (netspawnd turns both on when the first container starts).
	for _, f := range []struct{ name, path, sysctl string }{
		{"IPv4 forwarding", "sys/net/ipv4/ip_forward", "net.ipv4.ip_forward"},
		{"IPv6 forwarding", "sys/net/ipv6/conf/all/forwarding", "net.ipv6.conf.all.forwarding"},
	} {
		v, err := readTrim(filepath.Join(p.Proc, f.path))
		switch {
		case err != nil:
			add(Check{f.name, "WARN", "cannot read " + f.sysctl + ": " + err.Error(), ""})
		case v == "1":
			add(Check{f.name, "OK", f.sysctl + " = 1", ""})
		default:
			add(Check{f.name, "WARN", f.sysctl + " = " + v + " (netspawnd enables it when a container starts; something may turn it off again)", "sysctl -w " + f.sysctl + "=1"})
		}
	}
	// Other nftables tables that drop container traffic.
	brnf, _ := readTrim(filepath.Join(p.Proc, "sys/net/bridge/bridge-nf-call-iptables"))
	drops := false
	if tables, err := hostfw.Load(0); err != nil {
		add(Check{"host firewall", "WARN", "cannot read the nftables ruleset: " + err.Error(), "run as root"})
	} else if lines := hostfw.Summarize(hostfw.Analyze(tables, nft.TableName, "ve-machine")); len(lines) == 0 {
		add(Check{"host firewall", "OK", fmt.Sprintf("no other table drops container traffic (%d tables read)", len(tables)), ""})
	} else {
		drops = true
		for _, l := range lines {
			detail, fix, _ := strings.Cut(l, "; add: ")
			add(Check{"host firewall", "WARN", detail, fix})
		}
	}
	// br_netfilter (Docker, Kubernetes) sends bridged frames through the IP
	// hooks: traffic between members of a zone then meets those chains too.
	switch {
	case brnf != "1":
		add(Check{"br_netfilter", "OK", "bridged traffic does not cross the IP firewall (net.bridge.bridge-nf-call-iptables is not 1)", ""})
	case drops:
		add(Check{"br_netfilter", "WARN", "br_netfilter is on (net.bridge.bridge-nf-call-iptables = 1): traffic between members of a zone crosses the forward chains above too, with the zone bridge vz-ZONE as its interface", "the host firewall fixes above cover it (iifname \"vz-*\")"})
	default:
		add(Check{"br_netfilter", "OK", "br_netfilter is on: traffic inside zones crosses the IP firewall, and no table drops it", ""})
	}
	// The NSS module: the nsswitch.conf line and the library.
	add(checkNsswitch(p.NSSwitch))
	for _, c := range checkSystemd(ctx, p.NSSwitch) {
		add(c)
	}
	add(checkModule(p.NSSDirs))
	// The controller's sockets.
	add(checkDaemon(ctx, p.RuntimeDir))
	add(checkNSSSocket(p.RuntimeDir))
	// Kernel features.
	rel := ""
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		rel = unix.ByteSliceToString(u.Release[:])
	}
	syms := kernelSymbols(p.Proc)
	for _, k := range []struct{ name, module, symbol, need, use string }{
		{"veth", "veth", "veth_xmit", "FAIL", "-n/--network-veth"},
		{"bridge", "bridge", "br_dev_xmit", "WARN", "--network-bridge, --network-zone"},
		{"nf_tables", "nf_tables", "nft_do_chain", "FAIL", "NAT and port forwards"},
		{"macvlan", "macvlan", "macvlan_start_xmit", "WARN", "--network-macvlan"},
		{"ipvlan", "ipvlan", "ipvlan_start_xmit", "WARN", "--network-ipvlan"},
		{"overlayfs", "overlay", "ovl_fill_super", "WARN", "--overlay"},
	} {
		c := checkModuleKernel(p, rel, k.name, k.module, k.need, k.use)
		if c.Status != "OK" && syms[k.symbol] {
			c = Check{k.name, "OK", "built in", ""}
		}
		add(c)
	}
	for _, c := range checkNeigh(p) {
		add(c)
	}
	if v, err := readTrim(filepath.Join(p.Proc, "sys/user/max_user_namespaces")); err == nil && v != "0" {
		add(Check{"user namespaces", "OK", "max_user_namespaces = " + v, ""})
	} else {
		add(Check{"user namespaces", "WARN", "user namespaces unavailable (-U/--private-users)", "sysctl -w user.max_user_namespaces=65536"})
	}
	switch {
	case exists(filepath.Join(p.Sys, "fs/cgroup/cgroup.controllers")):
		add(Check{"cgroup version", "OK", "v2 (unified)", ""})
	case exists(filepath.Join(p.Sys, "fs/cgroup/unified")):
		add(Check{"cgroup version", "WARN", "hybrid v1/v2: resource limits use v1 controllers", "boot with systemd.unified_cgroup_hierarchy=1"})
	default:
		add(Check{"cgroup version", "WARN", "v1 only", "boot with systemd.unified_cgroup_hierarchy=1 or mount cgroup2 on /sys/fs/cgroup"})
	}
	return cs
}

// kernelSymbols returns which of a few function names the running kernel
// has (built-in features leave no trace in /sys/module).
func kernelSymbols(proc string) map[string]bool {
	want := []string{"veth_xmit", "br_dev_xmit", "nft_do_chain", "macvlan_start_xmit", "ipvlan_start_xmit", "ovl_fill_super"}
	out := map[string]bool{}
	b, err := os.ReadFile(filepath.Join(proc, "kallsyms"))
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 {
			for _, w := range want {
				if f[2] == w {
					out[w] = true
				}
			}
		}
	}
	return out
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func checkNsswitch(path string) Check {
	b, err := os.ReadFile(path)
	if err != nil {
		return Check{"nsswitch.conf", "WARN", "cannot read " + path + ": " + err.Error(), ""}
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(strings.SplitN(line, "#", 2)[0])
		if len(f) == 0 || f[0] != "hosts:" {
			continue
		}
		for i, s := range f[1:] {
			if s == "netspawn" {
				if j := indexOf(f[1:], "dns"); j >= 0 && j < i {
					return Check{"nsswitch.conf", "WARN", path + ": netspawn comes after dns on the hosts line (slow lookups)", "put netspawn before resolve/dns on the hosts: line"}
				}
				return Check{"nsswitch.conf", "OK", path + ": hosts: " + strings.Join(f[1:], " "), ""}
			}
		}
		return Check{"nsswitch.conf", "WARN", path + ": hosts line lacks netspawn: the host cannot resolve machine names", "hosts: files netspawn dns (netspawn before resolve/dns)"}
	}
	return Check{"nsswitch.conf", "WARN", path + " has no hosts: line", "add: hosts: files netspawn dns"}
}

func indexOf(xs []string, s string) int {
	for i, x := range xs {
		if x == s {
			return i
		}
	}
	return -1
}

func checkModule(dirs []string) Check {
	for _, d := range dirs {
		p := filepath.Join(d, "libnss_netspawn.so.2")
		if exists(p) {
			return Check{"NSS module", "OK", p, ""}
		}
	}
	return Check{"NSS module", "WARN", "libnss_netspawn.so.2 not found in " + strings.Join(dirs, ":"), "install it where glibc finds NSS modules (e.g. /usr/lib/" + "x86_64-linux-gnu) and run ldconfig"}
}

func checkDaemon(ctx context.Context, dir string) Check {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	c, err := api.Connect(ctx, api.ConnectOptions{RuntimeDir: dir, NoStart: true})
	if err != nil {
		return Check{"netspawnd", "WARN", "not answering on " + filepath.Join(dir, api.SocketName) + ": " + err.Error() + " (netspawn starts it on demand)", "netspawnd &  (or enable its service)"}
	}
	defer c.Close()
	ms, err := c.List(ctx)
	if err != nil {
		return Check{"netspawnd", "FAIL", "socket accepts but does not answer: " + err.Error(), "restart netspawnd"}
	}
	return Check{"netspawnd", "OK", fmt.Sprintf("answering on %s (%d machines)", filepath.Join(dir, api.SocketName), len(ms)), ""}
}

func checkNSSSocket(dir string) Check {
	p := filepath.Join(dir, "nss.sock")
	c, err := net.DialTimeout("unixpacket", p, 2*time.Second)
	if err != nil {
		c, err = net.DialTimeout("unix", p, 2*time.Second)
	}
	if err != nil {
		return Check{"NSS socket", "WARN", "not answering on " + p + ": " + err.Error(), "start netspawnd"}
	}
	c.Close()
	return Check{"NSS socket", "OK", p, ""}
}

// checkModuleKernel reports a kernel feature as loaded, built in or
// loadable.
func checkModuleKernel(p Paths, rel, name, module, need, use string) Check {
	if exists(filepath.Join(p.Sys, "module", module)) {
		return Check{name, "OK", "loaded", ""}
	}
	if module == "overlay" {
		if b, err := os.ReadFile(filepath.Join(p.Proc, "filesystems")); err == nil && strings.Contains(string(b), "\toverlay\n") {
			return Check{name, "OK", "built in", ""}
		}
	}
	indexed := false
	if rel != "" && p.Modules != "" {
		for _, f := range []string{"modules.builtin", "modules.dep"} {
			b, err := os.ReadFile(filepath.Join(p.Modules, rel, f))
			if err != nil {
				continue
			}
			indexed = true
			if strings.Contains(string(b), "/"+module+".ko") {
				if f == "modules.builtin" {
					return Check{name, "OK", "built in", ""}
				}
				return Check{name, "OK", "available as a module", ""}
			}
		}
	}
	if !indexed {
		// Not loaded, and nothing says whether the kernel has it: a
		// container or a trimmed host without the kernel's module index.
		return Check{name, "WARN", "cannot tell: not loaded, and no module index in " + filepath.Join(p.Modules, rel) + " (needed for " + use + ")",
			"run netspawnctl doctor on the host, or modprobe " + module}
	}
	return Check{name, need, "not in this kernel (needed for " + use + ")", "use a kernel with CONFIG for " + name + ", or avoid " + use}
}
