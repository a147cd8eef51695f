package netctl

import (
	"context"
	"fmt"

	"github.com/netspawn/netspawn/netctl/api"
	"github.com/netspawn/netspawn/netctl/ipam"
	"github.com/netspawn/netspawn/netctl/naming"
)

// checkCNIAttachment validates a CNI runtime's registration and refuses a
// second one for the same container and interface. Called with c.mu held.
func (c *Controller) checkCNIAttachment(req api.RegisterRequest) error {
	a := req.CNI
	if a == nil {
		return nil
	}
	if req.NetNS == "" {
		return apiErr(api.CodeInvalid, "a CNI attachment needs the network namespace's file (CNI_NETNS)")
	}
	if a.ContainerID == "" {
		return apiErr(api.CodeInvalid, "a CNI attachment needs the container's ID (CNI_CONTAINERID)")
	}
	if err := naming.ValidIfName(a.IfName); err != nil {
		return apiErr(api.CodeInvalid, "CNI_IFNAME: %v", err)
	}
	for name, m := range c.machines {
		if o := m.Req.CNI; o != nil && o.ContainerID == a.ContainerID && o.IfName == a.IfName {
			return apiErr(api.CodeConflict, "container %s already has interface %s attached, as machine %q on network %q (addresses %v): DEL it before adding it again",
				a.ContainerID, a.IfName, name, o.Network, m.summary().Addresses)
		}
	}
	return nil
}

// Capacity reports whether one more machine can get an address on veth
// links (zone "") or in zone.
func (c *Controller) Capacity(_ context.Context, zone string) (api.Capacity, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	active := func(o string) bool { return c.ownerActive(o) }
	if zone != "" {
		if _, err := naming.ZoneBridgeName(zone); err != nil {
			return api.Capacity{}, apiErr(api.CodeInvalid, "zone %q: %v", zone, err)
		}
		if z, ok := c.att.zones[zone]; ok {
			span := zoneReservedLast - zoneReservedFirst + 1
			if z.Cluster == nil && len(z.Members) >= span && reclaimableMember(z, "") == "" {
				return api.Capacity{Detail: fmt.Sprintf("zone %s: all %d member addresses are held by running members", zone, span)}, nil
			}
			return api.Capacity{Room: true}, nil
		}
		if c.cl != nil {
			return api.Capacity{Room: true}, nil // the zone's subnet comes from the cluster's pools
		}
		inUse, err := c.inUse()
		if err != nil {
			return api.Capacity{}, err
		}
		if !c.alloc.HasRoom(ipam.ZoneBits, inUse, active) {
			return api.Capacity{Detail: fmt.Sprintf("no /%d is free in the address pools %v for zone %s", ipam.ZoneBits, c.alloc.Pools(), zone)}, nil
		}
		return api.Capacity{Room: true}, nil
	}
	inUse, err := c.inUse()
	if err != nil {
		return api.Capacity{}, err
	}
	if !c.alloc.HasRoom(ipam.LinkBits, inUse, active) {
		return api.Capacity{Detail: fmt.Sprintf("every /%d of the address pools %v is in use by a running machine; configure larger pools (--pools) or stop machines", ipam.LinkBits, c.alloc.Pools())}, nil
	}
	return api.Capacity{Room: true}, nil
}
