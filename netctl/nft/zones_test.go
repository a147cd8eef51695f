package nft

import (
	"net/netip"
	"testing"
)

func TestRulesForZoneIsolation(t *testing.T) {
	on, off := rulesFor(RuleOptions{}), rulesFor(RuleOptions{NoZoneIsolation: true})
	if len(off) != len(Rules(RuleOptions{})) || len(on) != len(Rules(RuleOptions{}))+len(zoneRules()) {
		t.Fatalf("rule counts: on %d off %d base %d", len(on), len(off), len(Rules(RuleOptions{})))
	}
	// The zone rules come first in the forward chain, before its accepts.
	first := -1
	for i, r := range on {
		if r.Chain == "forward" {
			first = i
			break
		}
	}
	if first < 0 || on[first].Tag != "accept-same-zone" || on[first+1].Tag != "isolate-zone-out" || on[first+2].Tag != "isolate-zone-in" {
		t.Fatalf("forward chain starts with %+v", on[first:first+3])
	}
}

func TestZoneElements(t *testing.T) {
	e := Elements{Links: []string{"vz-blue"}, Subnets: []netip.Prefix{netip.MustParsePrefix("10.1.2.0/24")}, Zones: []string{"vz-blue"}}
	els, err := e.toKernel()
	if err != nil {
		t.Fatal(err)
	}
	var pair []byte
	for _, el := range els {
		if el.set == SetZonePairs {
			pair = el.key
		}
	}
	if len(pair) != 32 || string(pair[:7]) != "vz-blue" || string(pair[16:23]) != "vz-blue" {
		t.Fatalf("zone pair key %q", pair)
	}
	add, del, err := Diff(e, Elements{Links: []string{"vz-blue"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(add.Zones) != 1 || len(add.Subnets) != 1 || len(add.Links) != 0 || !del.Empty() {
		t.Fatalf("diff: add %+v del %+v", add, del)
	}
	var back Elements
	for _, el := range els {
		if el.set == SetZonePairs {
			back.addKernel(SetZonePairs, toSetElements(el))
		}
	}
	if len(back.Zones) != 1 || back.Zones[0] != "vz-blue" {
		t.Fatalf("decoded %+v", back)
	}
}
