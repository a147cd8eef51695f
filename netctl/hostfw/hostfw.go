// Package hostfw finds other nftables tables (firewalld, Docker,
// iptables-nft's ip filter, hand-written rulesets) that would drop
// container traffic our own table accepts: a packet must be accepted by
// every base chain on its hook, so a forward chain with policy drop and no
// accept for our links, or an explicit drop/reject, breaks containers
// (firewalld#742, systemd #19338). The analysis is pure, over a small model
// of the ruleset; Load builds the model from the kernel without changing
// anything.
package hostfw

import (
	"fmt"
	"sort"
	"strings"
)

// Tri is a three-valued match result.
type Tri int

// Match results.
const (
	No Tri = iota
	Maybe
	Yes
)

// Verdict of a rule.
type Verdict string

// Verdicts ("" is none: the rule only counts or logs).
const (
	Accept   Verdict = "accept"
	Drop     Verdict = "drop"
	Reject   Verdict = "reject"
	Jump     Verdict = "jump"
	Goto     Verdict = "goto"
	Return   Verdict = "return"
	Continue Verdict = ""
)

// Match is one condition of a rule.
type Match struct {
	Key    string // "iifname", "oifname", "l4proto", "dport", "ctstate", "nfproto", or "other"
	Neg    bool   // != instead of ==
	Name   string // iifname/oifname: the name, or its prefix when Prefix
	Prefix bool   // a wildcard like "ve-*"
	Num    uint32 // l4proto, dport, nfproto value; ctstate: the state bits tested (mask)
	Text   string // for "other": how it reads
}

// Rule is one rule: all matches, then the verdict.
type Rule struct {
	Matches []Match
	Verdict Verdict
	Target  string // jump/goto target chain
}

// Chain is one chain; Hook is "" for regular chains.
type Chain struct {
	Name   string
	Hook   string // "forward", "input", ...
	Type   string // "filter", "nat", "route"
	Policy Verdict
	Rules  []Rule
}

// Table is one table with its chains.
type Table struct {
	Family string // "ip", "ip6", "inet", ...
	Name   string
	Chains []Chain
}

// Conntrack state bits (NF_CT_STATE_*).
const (
	CtInvalid     = 1
	CtEstablished = 2
	CtRelated     = 4
	CtNew         = 8
)

// Packet is a kind of container packet to check.
type Packet struct {
	What   string // how the warning names it
	Hook   string
	IIF    string // "" unknown
	OIF    string
	L4     uint32 // IPPROTO_*, 0 unknown
	DPort  uint32 // 0 unknown
	NFProt uint32 // 2 (IPv4) or 10 (IPv6), 0 unknown
}

// Warning is one problem found.
type Warning struct {
	Table   string `json:"table"`  // "inet filter"
	Chain   string `json:"chain"`  // base chain
	Packet  string `json:"packet"` // what is dropped
	Because string `json:"because"`
	Fix     string `json:"fix"`
}

func (w Warning) String() string {
	return fmt.Sprintf("nftables table %s chain %s %s %s; fix: %s", w.Table, w.Chain, w.Because, w.Packet, w.Fix)
}

// Packets returns the kinds of container traffic to check for a link.
func Packets(link string) []Packet {
	const udp, tcp = 17, 6
	return []Packet{
		{What: "forwarded traffic from containers (" + link + ")", Hook: "forward", IIF: link},
		{What: "forwarded traffic to containers (" + link + ", port forwards)", Hook: "forward", OIF: link},
		{What: "DHCP from containers (udp 67 on " + link + ")", Hook: "input", IIF: link, L4: udp, DPort: 67},
		{What: "DNS from containers (udp 53 on " + link + ")", Hook: "input", IIF: link, L4: udp, DPort: 53},
		{What: "DNS over TCP from containers (tcp 53 on " + link + ")", Hook: "input", IIF: link, L4: tcp, DPort: 53},
	}
}

func matchName(m Match, have string) Tri {
	if have == "" {
		return Maybe
	}
	ok := have == m.Name || (m.Prefix && strings.HasPrefix(have, m.Name))
	if ok != m.Neg {
		return Yes
	}
	return No
}

func matchNum(m Match, have uint32) Tri {
	if have == 0 {
		return Maybe
	}
	if (have == m.Num) != m.Neg {
		return Yes
	}
	return No
}

// matches evaluates a rule's conditions for the first packet of a new
// connection.
func matches(r Rule, p Packet) Tri {
	res := Yes
	for _, m := range r.Matches {
		var t Tri
		switch m.Key {
		case "iifname":
			t = matchName(m, p.IIF)
		case "oifname":
			t = matchName(m, p.OIF)
		case "l4proto":
			t = matchNum(m, p.L4)
		case "dport":
			t = matchNum(m, p.DPort)
		case "nfproto":
			t = matchNum(m, p.NFProt)
		case "ctstate":
			// "ct state X" is (state & X) != 0; Neg is == 0.
			if (m.Num&CtNew != 0) != m.Neg {
				t = Yes
			} else {
				t = No
			}
		default:
			t = Maybe
		}
		if t == No {
			return No
		}
		if t == Maybe {
			res = Maybe
		}
	}
	return res
}

// eval runs chain c of t for p: the verdict, and the rule that gave it
// (-1 for the policy or none).
func eval(t Table, c Chain, p Packet, depth int) (Verdict, string) {
	if depth > 16 {
		return Continue, ""
	}
	for i, r := range c.Rules {
		if matches(r, p) != Yes {
			continue
		}
		switch r.Verdict {
		case Accept:
			return Accept, ""
		case Drop, Reject:
			return r.Verdict, fmt.Sprintf("rule %d (%s)", i+1, r)
		case Return:
			return Continue, ""
		case Jump, Goto:
			for _, sub := range t.Chains {
				if sub.Name == r.Target {
					v, why := eval(t, sub, p, depth+1)
					if v != Continue {
						if why == "" {
							why = "chain " + sub.Name
						}
						return v, why
					}
				}
			}
			if r.Verdict == Goto {
				return Continue, ""
			}
		}
	}
	return Continue, ""
}

// String renders a rule roughly as nft shows it.
func (r Rule) String() string {
	var parts []string
	for _, m := range r.Matches {
		op := ""
		if m.Neg {
			op = "!= "
		}
		switch m.Key {
		case "iifname", "oifname":
			n := m.Name
			if m.Prefix {
				n += "*"
			}
			parts = append(parts, fmt.Sprintf("%s %s%q", m.Key, op, n))
		case "l4proto":
			name := map[uint32]string{6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6"}[m.Num]
			if name == "" {
				name = fmt.Sprint(m.Num)
			}
			parts = append(parts, fmt.Sprintf("meta l4proto %s%s", op, name))
		case "dport":
			parts = append(parts, fmt.Sprintf("th dport %s%d", op, m.Num))
		case "nfproto":
			parts = append(parts, fmt.Sprintf("meta nfproto %s%d", op, m.Num))
		case "ctstate":
			parts = append(parts, fmt.Sprintf("ct state %s0x%x", op, m.Num))
		default:
			parts = append(parts, m.Text)
		}
	}
	v := string(r.Verdict)
	if r.Target != "" {
		v += " " + r.Target
	}
	if v != "" {
		parts = append(parts, v)
	}
	return strings.Join(parts, " ")
}

// Analyze checks every filter base chain of the tables (ours, named own in
// family inet, excluded) against the container packets of link.
func Analyze(tables []Table, own, link string) []Warning {
	var out []Warning
	for _, t := range tables {
		if t.Family == "inet" && t.Name == own {
			continue
		}
		if t.Family != "inet" && t.Family != "ip" && t.Family != "ip6" {
			continue // arp, bridge, netdev: not on these hooks
		}
		for _, c := range t.Chains {
			if c.Hook == "" || (c.Type != "" && c.Type != "filter") {
				continue
			}
			for _, p := range Packets(link) {
				if p.Hook != c.Hook {
					continue
				}
				v, why := eval(t, c, p, 0)
				if v == Continue {
					if c.Policy != Drop {
						continue
					}
					v, why = Drop, "has policy drop and no accept for"
				} else if v == Accept {
					continue
				} else {
					why = "drops (" + why + ")"
				}
				out = append(out, Warning{Table: t.Family + " " + t.Name, Chain: c.Name, Packet: p.What, Because: why, Fix: fix(t, c, p)})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Table+out[i].Chain < out[j].Table+out[j].Chain })
	return out
}

func fix(t Table, c Chain, p Packet) string {
	pre := fmt.Sprintf("nft insert rule %s %s %s ", t.Family, t.Name, c.Name)
	switch {
	case p.Hook == "forward" && p.IIF != "":
		return pre + `iifname "ve-*" accept; ` + pre + `iifname "vz-*" accept`
	case p.Hook == "forward":
		return pre + `oifname "ve-*" accept; ` + pre + `oifname "vz-*" accept`
	default:
		proto := "udp"
		if p.L4 == 6 {
			proto = "tcp"
		}
		return fmt.Sprintf(`%siifname "ve-*" %s dport %d accept`, pre, proto, p.DPort)
	}
}

// Summarize groups warnings into one line per table and chain.
func Summarize(ws []Warning) []string {
	type key struct{ t, c string }
	order := []key{}
	by := map[key][]Warning{}
	for _, w := range ws {
		k := key{w.Table, w.Chain}
		if _, ok := by[k]; !ok {
			order = append(order, k)
		}
		by[k] = append(by[k], w)
	}
	var out []string
	for _, k := range order {
		g := by[k]
		var what, fixes []string
		seen := map[string]bool{}
		for _, w := range g {
			what = append(what, w.Packet)
			if !seen[w.Fix] {
				seen[w.Fix] = true
				fixes = append(fixes, w.Fix)
			}
		}
		out = append(out, fmt.Sprintf("nftables table %s chain %s %s: %s; add: %s", k.t, k.c, g[0].Because, strings.Join(what, ", "), strings.Join(fixes, "; ")))
	}
	return out
}
