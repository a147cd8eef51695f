package nft

import (
	"github.com/google/nftables/expr"
)

// PrefixZone is the name prefix of zone bridges (vz-ZONE).
const PrefixZone = "vz-"

// SetZonePairs holds "vz-ZONE . vz-ZONE" for every zone: traffic between
// members of one zone crosses the forward hook with the bridge as both
// input and output when br_netfilter is loaded, and must pass.
const SetZonePairs = "zonepairs"

// zoneRules isolate zones: traffic routed from a zone bridge to any other
// container link, or from any container link to a zone bridge, is dropped.
// Members of one zone talk over their bridge, which is never routed, so
// they are not affected; the uplink and the host stay reachable.
//
//	iifname . oifname @zonepairs accept
//	iifname "vz-*" oifname @links drop
//	iifname @links oifname "vz-*" drop
func zoneRules() []Rule {
	drop := []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}
	prefix := func(key expr.MetaKey) []expr.Any {
		return []expr.Any{
			&expr.Meta{Key: key, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(PrefixZone)},
		}
	}
	return []Rule{
		{"forward", "accept-same-zone", []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 2},
			&expr.Lookup{SourceRegister: 1, SetName: SetZonePairs},
			&expr.Verdict{Kind: expr.VerdictAccept},
		}},
		{"forward", "isolate-zone-out", cat(prefix(expr.MetaKeyIIFNAME), ifnameIn(expr.MetaKeyOIFNAME, SetLinks, false), drop)},
		{"forward", "isolate-zone-in", cat(ifnameIn(expr.MetaKeyIIFNAME, SetLinks, false), prefix(expr.MetaKeyOIFNAME), drop)},
	}
}

// rulesFor returns Rules with the zone isolation rules first in the forward
// chain unless o turns them off.
func rulesFor(o RuleOptions) []Rule {
	base := Rules(o)
	if o.NoZoneIsolation {
		return base
	}
	out := make([]Rule, 0, len(base)+2)
	done := false
	for _, r := range base {
		if r.Chain == "forward" && !done {
			out = append(out, zoneRules()...)
			done = true
		}
		out = append(out, r)
	}
	if !done {
		out = append(out, zoneRules()...)
	}
	return out
}
