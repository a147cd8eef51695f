// Package netclient attaches netspawn's containers to their networks: it
// asks netspawnd (started on demand) for links and addresses, and runs the
// DHCP client of containers bridged to a LAN. It is the spawn.NetworkHook
// cmd/netspawn gives the runtime, which itself knows neither netspawnd's API
// nor DHCP.
package netclient

import (
	"context"
	"fmt"
	"os"

	"github.com/netspawn/netspawn/spawn"
	"github.com/netspawn/netspawn/spawn/config"

	"github.com/netspawn/netspawn/netctl/api"
)

// Network attaches containers to their networks through netspawnd,
// starting it on demand. It implements spawn.NetworkHook.
type Network struct {
	Options api.ConnectOptions
	client  *api.Client
	leases  []*bridgeLease // bridged interfaces' DHCP leases (command mode)
}

// Attach registers the machine; the controller creates its links in the
// leader's network namespace and answers how to configure them.
func (n *Network) Attach(ctx context.Context, cfg *config.Config, leaderPID int) (spawn.NetworkSetup, error) {
	return n.attach(ctx, cfg, registerRequest(cfg, leaderPID))
}

// AttachStarting registers the machine before its first process exists:
// the controller creates its links in netnsPath, a namespace netspawn made
// and holds, and netspawn's exit ends the machine until SetLeader. It
// implements spawn.EarlyNetworkHook.
//
// netspawnd also configures the container's side (ConfigureInside): it
// holds the namespace already, and its netlink code is warm where a
// netspawn just started would take a page fault for each first use of
// it (20 us apiece on a paravirtualised guest), on the start's critical
// path.
func (n *Network) AttachStarting(ctx context.Context, cfg *config.Config, netnsPath string) (spawn.NetworkSetup, error) {
	req := registerRequest(cfg, os.Getpid())
	req.NetNS, req.Starting = netnsPath, true
	req.Network.ConfigureInside = true
	setup, err := n.attach(ctx, cfg, req)
	setup.Configured = err == nil
	return setup, err
}

// Dial connects to netspawnd (starting it on demand) ahead of
// AttachStarting, while netspawn makes the network namespace.
func (n *Network) Dial(ctx context.Context) error {
	if n.client != nil {
		return nil
	}
	c, err := api.Connect(ctx, n.Options)
	if err != nil {
		return fmt.Errorf("network controller: %w", err)
	}
	n.client = c
	spawn.Trace("netspawnd connected")
	return nil
}

// DialRunning connects to netspawnd when it runs, without starting it
// (spawn.ControllerDialer): Attach then uses the connection.
func (n *Network) DialRunning(ctx context.Context) error {
	if n.client != nil {
		return nil
	}
	o := n.Options
	o.NoStart = true
	c, err := api.Connect(ctx, o)
	if err != nil {
		return err
	}
	n.client = c
	spawn.Trace("netspawnd connected")
	return nil
}

// SetLeader names the first process of a machine attached with
// AttachStarting.
func (n *Network) SetLeader(ctx context.Context, cfg *config.Config, leaderPID int) error {
	if n.client == nil {
		return fmt.Errorf("network controller: machine %s was not attached", cfg.Machine)
	}
	if err := n.client.SetLeader(ctx, cfg.Machine, leaderPID); err != nil {
		return fmt.Errorf("network controller: naming the leader of %s: %w", cfg.Machine, err)
	}
	return nil
}

func (n *Network) attach(ctx context.Context, cfg *config.Config, req api.RegisterRequest) (spawn.NetworkSetup, error) {
	if err := n.Dial(ctx); err != nil {
		return spawn.NetworkSetup{}, err
	}
	leaderPID := req.Leader
	reply, err := n.client.Register(ctx, req)
	if err != nil {
		return spawn.NetworkSetup{}, err
	}
	spawn.Trace("netspawnd answered")
	setup := spawn.NetworkSetup{DNS: reply.DNS, Search: reply.SearchDomains}
	if cfg.Boot {
		// A booted OS configures its own interfaces (DHCP from netspawnd).
		return setup, nil
	}
	for _, ifc := range reply.Interfaces {
		if ifc.DHCP {
			if req.Starting {
				// netspawn attaches bridged machines once their leader runs.
				_ = n.client.Unregister(ctx, cfg.Machine)
				return spawn.NetworkSetup{}, fmt.Errorf("network controller: %s needs a DHCP lease from the LAN, which a machine registered while starting cannot take", ifc.Name)
			}
			// Bridged: the LAN's DHCP server numbers it.
			bl, is, dns, search, err := acquireLease(ctx, leaderPID, ifc.Name, func(f string, a ...any) { warnf(cfg.Quiet, f, a...) })
			if err != nil {
				n.releaseLeases()
				_ = n.client.Unregister(ctx, cfg.Machine)
				return spawn.NetworkSetup{}, err
			}
			if bl != nil {
				n.leases = append(n.leases, bl)
				bl.start()
			}
			setup.Interfaces = append(setup.Interfaces, is)
			setup.DNS = append(setup.DNS, dns...)
			setup.Search = append(setup.Search, search...)
			continue
		}
		setup.Interfaces = append(setup.Interfaces, spawn.InterfaceSetup{
			Name: ifc.Name, Addresses: ifc.Addresses, Gateway4: ifc.Gateway4, Gateway6: ifc.Gateway6, MTU: ifc.MTU,
		})
	}
	return setup, nil
}

// releaseLeases gives bridged interfaces' leases back to the LAN.
func (n *Network) releaseLeases() {
	for _, bl := range n.leases {
		if err := bl.release(); err != nil {
			warnf(false, "%v", err)
		}
	}
	n.leases = nil
}

// Release unregisters the machine: its links and forwards go, its address
// stays reserved for it.
func (n *Network) Release(ctx context.Context, cfg *config.Config) {
	n.releaseLeases()
	if n.client == nil {
		return
	}
	// A machine without networking has nothing to take down in a hurry:
	// netspawnd notices its leader is gone (pidfd) and forgets it, so its
	// netspawn does not wait for a round trip on its way out.
	if cfg.NeedsNetworkController() {
		_ = n.client.Unregister(ctx, cfg.Machine)
	}
	n.client.Close()
	n.client = nil
}

func registerRequest(cfg *config.Config, leaderPID int) api.RegisterRequest {
	nw := api.NetworkRequest{
		Veth:       cfg.Network.Veth,
		Bridge:     cfg.Network.Bridge,
		Zone:       cfg.Network.Zone,
		MACVLAN:    cfg.Network.MACVLAN,
		IPVLAN:     cfg.Network.IPVLAN,
		Interfaces: cfg.Network.Interfaces,
		MAC:        cfg.NetworkMAC,
	}
	for _, v := range cfg.Network.VethExtra {
		nw.VethExtra = append(nw.VethExtra, api.VethExtra{Host: v.Host, Container: v.Container})
	}
	for _, p := range cfg.Network.Ports {
		nw.Ports = append(nw.Ports, api.Port{Protocol: p.Protocol, HostPort: p.HostPort, ContainerPort: p.ContainerPort})
	}
	return api.RegisterRequest{
		Name: cfg.Machine, Leader: leaderPID, Root: cfg.Source(),
		Class: "container", Service: cfg.Service(), Boot: cfg.Boot, Network: nw,
	}
}

// warnf prints a warning on stderr, unless quiet.
func warnf(quiet bool, format string, args ...any) {
	if !quiet {
		fmt.Fprintf(os.Stderr, "netspawn: warning: "+format+"\n", args...)
	}
}
