package netctl

import "time"

// Observer counts the controller's work for metrics; netctl knows
// nothing of how they are kept or exported. A nil Observer counts
// nothing.
type Observer interface {
	// NFT counts one nftables transaction on the controller's table (op
	// "ensure", "add", "delete" or "remove") and its error.
	NFT(op string, err error)
	// APICall counts one call on the API socket: its method ("unknown"
	// for one not in the protocol, "invalid" for a line that is not a
	// request), how long it took and whether it failed.
	APICall(method string, took time.Duration, err error)
}

// Census is a count of the controller's machines and links, read when
// metrics are scraped.
type Census struct {
	// Machines by state: "running" (registered on this host) and, with
	// cluster zones, "remote" (published by the other hosts).
	Machines map[string]int
	// Links by kind: "veth" (ve-NAME), "bridge" and "zone" (vb-NAME in
	// the user's bridge or in vz-ZONE), "veth-extra"
	// (--network-veth-extra), "moved" (--network-interface), "virtual"
	// (macvlan/ipvlan made inside the container).
	Links map[string]int
}

// Census counts the machines and links now.
func (c *Controller) Census() Census {
	out := Census{Machines: map[string]int{"running": 0}, Links: map[string]int{}}
	c.mu.Lock()
	defer c.mu.Unlock()
	out.Machines["running"] = len(c.machines)
	if c.cl != nil {
		out.Machines["remote"] = len(c.remoteMachines())
	}
	for _, m := range c.machines {
		for _, l := range m.Links {
			k := l.Kind
			if k == "" {
				k = "veth"
			}
			out.Links[k]++
		}
		if n := len(m.Attach.Moved); n > 0 {
			out.Links["moved"] += n
		}
		if n := len(m.Attach.Virtual); n > 0 {
			out.Links["virtual"] += n
		}
	}
	return out
}

func (c *Controller) observeNFT(op string, err error) {
	if o := c.cfg.Observer; o != nil {
		o.NFT(op, err)
	}
}
