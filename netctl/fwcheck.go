package netctl

import (
	"slices"
	"time"

	"github.com/netspawn/netspawn/netctl/hostfw"
	"github.com/netspawn/netspawn/netctl/nft"
)

// checkHostFirewall looks for other nftables tables that would drop the
// traffic of link (a sample ve- name at start) and logs each problem once,
// in one line naming the table, the chain and the rule to add. It runs at
// start; for new networks checkHostFirewallLater runs it. The caller holds
// c.mu.
func (c *Controller) checkHostFirewall(link string) {
	c.applyFirewallFindings(firewallFindings(link))
}

// firewallFindings reads the host's whole ruleset (a dump of every table,
// a millisecond or more where Docker or firewalld keep theirs) and
// analyses it for link; nil when it cannot be read.
func firewallFindings(link string) []string {
	tables, err := hostfw.Load(0)
	if err != nil {
		return nil
	}
	return hostfw.Summarize(hostfw.Analyze(tables, nft.TableName, link))
}

// applyFirewallFindings logs the findings not logged before and keeps
// them for status and doctor. The caller holds c.mu.
func (c *Controller) applyFirewallFindings(lines []string) {
	for _, l := range lines {
		if !slices.Contains(c.fwWarnings, l) {
			c.log.Warn("host firewall drops container traffic: " + l)
		}
	}
	c.fwWarnings = lines
}

// checkHostFirewallLater checks the host's firewall for new links off the
// registration's path: the reply does not wait for the ruleset dump.
// Checks run one after another; Status and FirewallWarnings wait for the
// last one, so what they report is never older than the last network
// created. The caller holds c.mu.
func (c *Controller) checkHostFirewallLater(links []string) {
	if len(links) == 0 {
		return
	}
	prev, done := c.fwDone, make(chan struct{})
	c.fwDone = done
	go func() {
		defer close(done)
		if prev != nil {
			<-prev
		}
		var lines []string
		for _, l := range links {
			lines = firewallFindings(l)
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.closed {
			c.applyFirewallFindings(lines)
		}
	}()
}

// waitFirewallCheck waits (briefly) for a check started by
// checkHostFirewallLater. The caller does not hold c.mu.
func (c *Controller) waitFirewallCheck() {
	c.mu.Lock()
	done := c.fwDone
	c.mu.Unlock()
	if done == nil {
		return
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// FirewallWarnings returns the last check's findings.
func (c *Controller) FirewallWarnings() []string {
	c.waitFirewallCheck()
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.fwWarnings)
}
