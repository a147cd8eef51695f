package netctl

import (
	"slices"

	"github.com/netspawn/netspawn/netctl/hostfw"
	"github.com/netspawn/netspawn/netctl/nft"
)

// checkHostFirewall looks for other nftables tables that would drop the
// traffic of link (a sample ve- name at start) and logs each problem once,
// in one line naming the table, the chain and the rule to add. It runs at
// start and whenever a network is created.
func (c *Controller) checkHostFirewall(link string) {
	tables, err := hostfw.Load(0)
	if err != nil {
		c.log.Debug("cannot read the host's nftables ruleset", "err", err)
		return
	}
	lines := hostfw.Summarize(hostfw.Analyze(tables, nft.TableName, link))
	for _, l := range lines {
		if !slices.Contains(c.fwWarnings, l) {
			c.log.Warn("host firewall drops container traffic: " + l)
		}
	}
	c.fwWarnings = lines
}

// FirewallWarnings returns the last check's findings.
func (c *Controller) FirewallWarnings() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.fwWarnings)
}
