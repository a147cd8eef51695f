package netctl

import (
	"time"

	"github.com/netspawn/netspawn/spawn/cgroup"
)

// A netspawn killed before netspawnd heard of its machine (one without
// networking registers in the background) leaves the machine's cgroups
// behind, and nothing else would ever remove them: netspawnd looks for
// such stray scopes at start and every Config.CgroupSweep, and removes
// those that are empty and that no netspawn holds (cgroup.RemoveStray: a
// netspawn holds its scope's lock while its machine lives, and one making
// the scope right now makes it again). Where systemd is PID 1 the scopes
// are systemd's units, which it removes itself once empty: netspawnd
// leaves them alone.

// sweeper sweeps at once, then every interval until stop is closed.
func (c *Controller) sweeper(every time.Duration, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	c.sweepCgroups()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			c.sweepCgroups()
		}
	}
}

// sweepCgroups removes the stray machine scopes: of no machine registered
// here, empty, not held by a netspawn.
func (c *Controller) sweepCgroups() {
	if cgroup.SystemdRunning() {
		return
	}
	// A machine registering after this look holds its scope's lock: its
	// netspawn took it before it cloned the machine's leader.
	c.mu.Lock()
	known := make(map[string]bool, len(c.machines))
	for name := range c.machines {
		known[cgroup.ScopeUnit(name)] = true
	}
	c.mu.Unlock()
	strays, err := cgroup.StrayScopes(known)
	if err != nil {
		c.log.Warn("looking for stray machine cgroups", "err", err)
		return
	}
	for _, s := range strays {
		r, err := cgroup.RemoveStray(s)
		switch {
		case err != nil:
			c.log.Warn("removing a stray machine cgroup", "scope", s.V2, "err", err)
		case r == cgroup.StrayRemoved:
			c.log.Info("removed the empty cgroups of a machine no netspawn runs (its netspawn was gone before it registered)",
				"scope", s.Unit, "cgroups", s.Dirs())
		default:
			c.log.Debug("machine cgroup not registered here, left alone", "scope", s.V2, "because", r.String())
		}
	}
}
