package hostfw

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// Load reads every table of the network namespace netnsFd (0: the
// current one) into the model. It only lists; it changes nothing.
func Load(netnsFd int) ([]Table, error) {
	var opts []nftables.ConnOption
	if netnsFd > 0 {
		opts = append(opts, nftables.WithNetNSFd(netnsFd))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	chains, err := c.ListChains()
	if err != nil {
		return nil, fmt.Errorf("list nftables chains: %w", err)
	}
	idx := map[string]int{}
	var out []Table
	for _, ch := range chains {
		fam := familyName(ch.Table.Family)
		k := fam + " " + ch.Table.Name
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, Table{Family: fam, Name: ch.Table.Name})
		}
		mc := Chain{Name: ch.Name, Type: string(ch.Type), Policy: Accept}
		if ch.Hooknum != nil {
			mc.Hook = hookName(ch.Table.Family, *ch.Hooknum)
		}
		if ch.Policy != nil && *ch.Policy == nftables.ChainPolicyDrop {
			mc.Policy = Drop
		}
		rules, err := c.GetRules(ch.Table, ch)
		if err != nil {
			return nil, fmt.Errorf("list rules of %s chain %s: %w", k, ch.Name, err)
		}
		for _, r := range rules {
			mc.Rules = append(mc.Rules, Decode(r.Exprs))
		}
		out[i].Chains = append(out[i].Chains, mc)
	}
	return out, nil
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyARP:
		return "arp"
	case nftables.TableFamilyBridge:
		return "bridge"
	case nftables.TableFamilyNetdev:
		return "netdev"
	}
	return fmt.Sprint(f)
}

func hookName(f nftables.TableFamily, h nftables.ChainHook) string {
	if f == nftables.TableFamilyNetdev || f == nftables.TableFamilyARP {
		return fmt.Sprintf("%s-%d", familyName(f), h)
	}
	switch h {
	case *nftables.ChainHookPrerouting:
		return "prerouting"
	case *nftables.ChainHookInput:
		return "input"
	case *nftables.ChainHookForward:
		return "forward"
	case *nftables.ChainHookOutput:
		return "output"
	case *nftables.ChainHookPostrouting:
		return "postrouting"
	}
	return fmt.Sprint(h)
}

// source is what a register holds.
type source struct {
	key  string // "meta:iifname", "l4proto", "dport", "ctstate", "nfproto", or "" (unknown)
	mask []byte
}

// Decode turns a rule's expressions into the model (pure). Anything it
// does not understand becomes an "other" match, which the analysis treats
// as "may or may not match".
func Decode(exprs []expr.Any) Rule {
	var r Rule
	regs := map[uint32]source{}
	other := func(s string) { r.Matches = append(r.Matches, Match{Key: "other", Text: s}) }
	for _, e := range exprs {
		switch e := e.(type) {
		case *expr.Meta:
			if e.SourceRegister {
				continue
			}
			switch e.Key {
			case expr.MetaKeyIIFNAME:
				regs[e.Register] = source{key: "iifname"}
			case expr.MetaKeyOIFNAME:
				regs[e.Register] = source{key: "oifname"}
			case expr.MetaKeyL4PROTO:
				regs[e.Register] = source{key: "l4proto"}
			case expr.MetaKeyNFPROTO:
				regs[e.Register] = source{key: "nfproto"}
			default:
				regs[e.Register] = source{key: fmt.Sprintf("meta %d", e.Key)}
			}
		case *expr.Payload:
			switch {
			case e.Base == expr.PayloadBaseTransportHeader && e.Offset == 2 && e.Len == 2:
				regs[e.DestRegister] = source{key: "dport"}
			case e.Base == expr.PayloadBaseNetworkHeader && e.Offset == 9 && e.Len == 1:
				regs[e.DestRegister] = source{key: "l4proto4"}
			default:
				regs[e.DestRegister] = source{key: fmt.Sprintf("payload %d/%d/%d", e.Base, e.Offset, e.Len)}
			}
		case *expr.Ct:
			if e.SourceRegister {
				continue
			}
			if e.Key == expr.CtKeySTATE {
				regs[e.Register] = source{key: "ctstate"}
			} else {
				regs[e.Register] = source{key: fmt.Sprintf("ct %d", e.Key)}
			}
		case *expr.Bitwise:
			s := regs[e.SourceRegister]
			s.mask = e.Mask
			regs[e.DestRegister] = s
		case *expr.Cmp:
			s := regs[e.Register]
			if e.Op != expr.CmpOpEq && e.Op != expr.CmpOpNeq {
				other(s.key + " compared")
				continue
			}
			m := Match{Neg: e.Op == expr.CmpOpNeq}
			switch s.key {
			case "iifname", "oifname":
				m.Key = s.key
				name := string(e.Data)
				if i := strings.IndexByte(name, 0); i >= 0 {
					m.Name = name[:i]
				} else {
					m.Name, m.Prefix = name, len(e.Data) < 16
				}
			case "l4proto", "l4proto4", "nfproto":
				if len(e.Data) != 1 {
					other(s.key)
					continue
				}
				m.Key, m.Num = strings.TrimSuffix(s.key, "4"), uint32(e.Data[0])
			case "dport":
				if len(e.Data) != 2 {
					other(s.key)
					continue
				}
				m.Key, m.Num = "dport", uint32(binary.BigEndian.Uint16(e.Data))
			case "ctstate":
				// ct state X: (state & X) != 0, or == 0 for "!= X".
				if len(s.mask) != 4 || len(e.Data) != 4 || binary.NativeEndian.Uint32(e.Data) != 0 {
					other("ct state")
					continue
				}
				m.Key, m.Num, m.Neg = "ctstate", binary.NativeEndian.Uint32(s.mask), e.Op == expr.CmpOpEq
			default:
				other(s.key + " match")
				continue
			}
			r.Matches = append(r.Matches, m)
		case *expr.Verdict:
			switch e.Kind {
			case expr.VerdictAccept:
				r.Verdict = Accept
			case expr.VerdictDrop:
				r.Verdict = Drop
			case expr.VerdictReturn:
				r.Verdict = Return
			case expr.VerdictJump:
				r.Verdict, r.Target = Jump, e.Chain
			case expr.VerdictGoto:
				r.Verdict, r.Target = Goto, e.Chain
			}
		case *expr.Reject:
			r.Verdict = Reject
		case *expr.Counter, *expr.Log, *expr.Immediate:
		case *expr.Lookup:
			if e.IsDestRegSet {
				other("map @" + e.SetName) // a verdict map: unknown outcome
			} else {
				other("@" + e.SetName)
			}
		case *expr.Match:
			other("xt match " + e.Name)
		case *expr.Target:
			switch e.Name {
			case "REJECT":
				r.Verdict = Reject
			default:
				other("xt target " + e.Name)
			}
		default:
			other(fmt.Sprintf("%T", e))
		}
	}
	return r
}
