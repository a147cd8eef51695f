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
	if n.client == nil {
		c, err := api.Connect(ctx, n.Options)
		if err != nil {
			return spawn.NetworkSetup{}, fmt.Errorf("network controller: %w", err)
		}
		n.client = c
		spawn.Trace("netspawnd connected")
	}
	reply, err := n.client.Register(ctx, registerRequest(cfg, leaderPID))
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
