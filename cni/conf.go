// Package cni is netspawnd's CNI plugin (spec 1.1.0): it turns a runtime's
// network configuration and environment into a registration with
// netspawnd, and netspawnd's reply into a CNI result. Everything here but
// plugin.go is pure and tested without root.
package cni

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"

	"github.com/netspawn/netspawn/netctl/api"
	"github.com/netspawn/netspawn/netctl/naming"
	"github.com/netspawn/netspawn/spawn/config"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
)

// NetConf is the plugin's network configuration.
type NetConf struct {
	types.PluginConf
	// Zone makes the attachment a member of that zone (vz-ZONE), as
	// netspawn --network-zone does; without it, a veth pair of its own
	// (ve-NAME) with a subnet from netspawnd's pools, as netspawn -n.
	Zone string `json:"zone,omitempty"`
	// RuntimeDir is netspawnd's runtime directory (default
	// $NETSPAWN_RUNTIME_DIR, else /run/netspawn).
	RuntimeDir string `json:"runtimeDir,omitempty"`
	// Netspawnd is the netspawnd binary to start when none runs (default:
	// next to the plugin, else in PATH, else /usr/sbin and /usr/local/sbin).
	Netspawnd string `json:"netspawnd,omitempty"`
	// AutoStart starts netspawnd when none answers (default true).
	AutoStart *bool `json:"autoStart,omitempty"`

	RuntimeConfig RuntimeConfig `json:"runtimeConfig,omitempty"`
	Args          *struct {
		CNI struct {
			IPs []string `json:"ips,omitempty"`
			MAC string   `json:"mac,omitempty"`
		} `json:"cni"`
	} `json:"args,omitempty"`
}

// RuntimeConfig holds the capabilities the plugin takes.
type RuntimeConfig struct {
	PortMappings []PortMapping `json:"portMappings,omitempty"`
	IPs          []string      `json:"ips,omitempty"`
	MAC          string        `json:"mac,omitempty"`
	DNS          *RuntimeDNS   `json:"dns,omitempty"`
}

// PortMapping is one entry of the portMappings capability.
type PortMapping struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// RuntimeDNS is the dns capability.
type RuntimeDNS struct {
	Servers  []string `json:"servers,omitempty"`
	Searches []string `json:"searches,omitempty"`
	Options  []string `json:"options,omitempty"`
}

// Error codes (CNI spec, "Error").
const (
	ErrUnknownContainer = types.ErrUnknownContainer
	ErrDecoding         = types.ErrDecodingFailure
	ErrInvalidConfig    = types.ErrInvalidNetworkConfig
	ErrInvalidNetNS     = types.ErrInvalidNetNS
	ErrTryAgain         = types.ErrTryAgainLater
	ErrNotAvailable     = types.ErrPluginNotAvailable
	ErrInvalidEnv       = types.ErrInvalidEnvironmentVariables
)

func cniErr(code uint, format string, a ...any) *types.Error {
	return types.NewError(code, fmt.Sprintf(format, a...), "")
}

// ParseConf decodes and checks the network configuration.
func ParseConf(b []byte) (*NetConf, error) {
	var c NetConf
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, cniErr(ErrDecoding, "netspawn: the network configuration is not valid JSON for this plugin: %v", err)
	}
	if c.Name == "" {
		return nil, cniErr(ErrInvalidConfig, "netspawn: the network configuration has no \"name\"")
	}
	if c.IPAM.Type != "" {
		return nil, cniErr(ErrInvalidConfig, "netspawn: remove the \"ipam\" section (type %q): netspawnd allocates the addresses itself (ask for one with the \"ips\" capability)", c.IPAM.Type)
	}
	if c.Zone != "" {
		if _, err := naming.ZoneBridgeName(c.Zone); err != nil {
			return nil, cniErr(ErrInvalidConfig, "netspawn: \"zone\": %v", err)
		}
	}
	return &c, nil
}

// autoStart reports whether netspawnd is started when none runs.
func (c *NetConf) autoStart() bool { return c.AutoStart == nil || *c.AutoStart }

// cniArgs parses CNI_ARGS (K=V;K=V).
func cniArgs(s string) (map[string]string, error) {
	out := map[string]string{}
	if s == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ";") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, cniErr(ErrInvalidEnv, "netspawn: CNI_ARGS: %q is not KEY=VALUE", kv)
		}
		out[k] = v
	}
	return out, nil
}

var hexID = regexp.MustCompile(`^[0-9a-f]{32,}$`)

// MachineName is the name an attachment is published under (DNS, NSS,
// netspawnctl list): CNI_ARGS' NETSPAWN_NAME when given; else
// K8S_POD_NAME.K8S_POD_NAMESPACE (Kubernetes' pod and namespace); else the
// container ID, its first 12 characters when it is a long hex ID (as
// Docker and containerd print them).
func MachineName(containerID string, args map[string]string) (string, error) {
	var name, from string
	switch {
	case args["NETSPAWN_NAME"] != "":
		name, from = args["NETSPAWN_NAME"], "CNI_ARGS NETSPAWN_NAME"
	case args["K8S_POD_NAME"] != "":
		name, from = args["K8S_POD_NAME"], "K8S_POD_NAME"
		if ns := args["K8S_POD_NAMESPACE"]; ns != "" {
			name, from = name+"."+ns, "K8S_POD_NAME.K8S_POD_NAMESPACE"
		}
	case hexID.MatchString(containerID):
		name, from = containerID[:12], "the container ID"
	default:
		name, from = containerID, "the container ID"
	}
	if err := config.CheckMachineName(name); err != nil {
		return "", cniErr(ErrInvalidEnv, "netspawn: the name from %s: %v; set NETSPAWN_NAME=NAME in CNI_ARGS", from, err)
	}
	return name, nil
}

// Request builds the registration for an ADD.
func Request(c *NetConf, a Invocation) (api.RegisterRequest, error) {
	args, err := cniArgs(a.Args)
	if err != nil {
		return api.RegisterRequest{}, err
	}
	name, err := MachineName(a.ContainerID, args)
	if err != nil {
		return api.RegisterRequest{}, err
	}
	req := api.RegisterRequest{Name: name, Class: "container", Service: "cni", NetNS: a.NetNS,
		CNI: &api.CNIAttachment{ContainerID: a.ContainerID, IfName: a.IfName, Network: c.Name}}
	n := &req.Network
	n.ContainerIf, n.ConfigureInside = a.IfName, true
	if c.Zone != "" {
		n.Zone = c.Zone
	} else {
		n.Veth = true
	}
	for _, p := range c.RuntimeConfig.PortMappings {
		port, err := portOf(p)
		if err != nil {
			return api.RegisterRequest{}, err
		}
		n.Ports = append(n.Ports, port)
	}
	ips := c.RuntimeConfig.IPs
	mac := c.RuntimeConfig.MAC
	if c.Args != nil {
		ips = append(ips, c.Args.CNI.IPs...)
		if mac == "" {
			mac = c.Args.CNI.MAC
		}
	}
	if v, ok := args["IP"]; ok {
		ips = append(ips, v)
	}
	if v, ok := args["MAC"]; ok && mac == "" {
		mac = v
	}
	if n.Address, err = wantedAddress(ips); err != nil {
		return api.RegisterRequest{}, err
	}
	if mac != "" {
		hw, err := net.ParseMAC(mac)
		if err != nil || len(hw) != 6 || hw[0]&1 != 0 {
			return api.RegisterRequest{}, cniErr(ErrInvalidConfig, "netspawn: mac %q: not a unicast Ethernet address", mac)
		}
		n.MAC = hw.String()
	}
	return req, nil
}

func portOf(p PortMapping) (api.Port, error) {
	proto := strings.ToLower(p.Protocol)
	if proto == "" {
		proto = "tcp"
	}
	if proto != "tcp" && proto != "udp" {
		return api.Port{}, cniErr(ErrInvalidConfig, "netspawn: portMappings: protocol %q: netspawnd forwards tcp and udp", p.Protocol)
	}
	if p.HostPort < 1 || p.HostPort > 65535 || p.ContainerPort < 1 || p.ContainerPort > 65535 {
		return api.Port{}, cniErr(ErrInvalidConfig, "netspawn: portMappings: ports %d -> %d: both must be 1-65535", p.HostPort, p.ContainerPort)
	}
	switch p.HostIP {
	case "", "0.0.0.0", "::":
	default:
		return api.Port{}, cniErr(ErrInvalidConfig, "netspawn: portMappings: hostIP %q: netspawnd forwards a host port from every host address (and localhost); leave hostIP out", p.HostIP)
	}
	return api.Port{Protocol: proto, HostPort: uint16(p.HostPort), ContainerPort: uint16(p.ContainerPort)}, nil
}

// wantedAddress reduces the ips capability to the one IPv4 address asked for.
func wantedAddress(ips []string) (string, error) {
	var want netip.Addr
	for _, s := range ips {
		a, err := netip.ParseAddr(s)
		if err != nil {
			p, perr := netip.ParsePrefix(s)
			if perr != nil {
				return "", cniErr(ErrInvalidConfig, "netspawn: ips: %q is not an address or address/prefix", s)
			}
			a = p.Addr()
		}
		if !a.Is4() {
			return "", cniErr(ErrInvalidConfig, "netspawn: ips: %s: netspawnd gives IPv6 addresses from the link's prefix and the interface's MAC; ask for an IPv4 address only", a)
		}
		if want.IsValid() && want != a {
			return "", cniErr(ErrInvalidConfig, "netspawn: ips: %s and %s: one IPv4 address per attachment", want, a)
		}
		want = a
	}
	if !want.IsValid() {
		return "", nil
	}
	return want.String(), nil
}

// Invocation is what the runtime passes in the environment.
type Invocation struct {
	ContainerID, NetNS, IfName, Args string
}

// Result turns netspawnd's reply into a CNI result: the host side and the
// container side of each link, the addresses, default routes and DNS.
func Result(c *NetConf, netns string, reply api.RegisterReply) (*current.Result, error) {
	r := &current.Result{CNIVersion: current.ImplementedSpecVersion}
	for _, ifc := range reply.Interfaces {
		if ifc.HostLink != "" {
			r.Interfaces = append(r.Interfaces, &current.Interface{Name: ifc.HostLink, Mac: ifc.HostMAC})
		}
		idx := len(r.Interfaces)
		r.Interfaces = append(r.Interfaces, &current.Interface{Name: ifc.Name, Mac: ifc.MAC, Sandbox: netns, Mtu: ifc.MTU})
		for _, a := range ifc.Addresses {
			p, err := netip.ParsePrefix(a)
			if err != nil {
				return nil, fmt.Errorf("netspawnd replied with a bad address %q: %w", a, err)
			}
			ipc := &current.IPConfig{Interface: current.Int(idx), Address: net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
			gw := ifc.Gateway4
			if p.Addr().Is6() {
				gw = ifc.Gateway6
			}
			if gw != "" {
				ipc.Gateway = net.ParseIP(gw)
			}
			r.IPs = append(r.IPs, ipc)
		}
		if ifc.Gateway4 != "" {
			r.Routes = append(r.Routes, &types.Route{Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, GW: net.ParseIP(ifc.Gateway4)})
		}
		if ifc.Gateway6 != "" {
			r.Routes = append(r.Routes, &types.Route{Dst: net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}, GW: net.ParseIP(ifc.Gateway6)})
		}
	}
	r.DNS.Nameservers = append(r.DNS.Nameservers, reply.DNS...)
	r.DNS.Search = append(r.DNS.Search, reply.SearchDomains...)
	if d := c.RuntimeConfig.DNS; d != nil {
		// The runtime's own wishes first (its pod's DNS policy), then
		// netspawnd's resolver, which answers machine names.
		r.DNS.Nameservers = append(append([]string(nil), d.Servers...), r.DNS.Nameservers...)
		r.DNS.Search = append(append([]string(nil), d.Searches...), r.DNS.Search...)
		r.DNS.Options = append(r.DNS.Options, d.Options...)
	}
	if c.DNS.Domain != "" {
		r.DNS.Domain = c.DNS.Domain
	}
	return r, nil
}
