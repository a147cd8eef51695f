package hostfw

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
)

func ifname(key expr.MetaKey, name string, wildcard bool) []expr.Any {
	data := []byte(name)
	if !wildcard {
		data = make([]byte, 16)
		copy(data, name)
	}
	return []expr.Any{&expr.Meta{Key: key, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data}}
}

func ctState(bits uint32) []expr.Any {
	return []expr.Any{&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binary.NativeEndian.AppendUint32(nil, bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)}}
}

func udpDport(p uint16) []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{17}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, p)}}
}

func v(k expr.VerdictKind) []expr.Any { return []expr.Any{&expr.Verdict{Kind: k}} }

func cat(xs ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, x := range xs {
		out = append(out, x...)
	}
	return out
}

func TestDecode(t *testing.T) {
	r := Decode(cat(ifname(expr.MetaKeyIIFNAME, "ve-", true), []expr.Any{&expr.Counter{}}, v(expr.VerdictAccept)))
	if r.String() != `iifname "ve-*" accept` {
		t.Fatalf("got %q", r)
	}
	r = Decode(cat(ctState(CtEstablished|CtRelated), v(expr.VerdictAccept)))
	if len(r.Matches) != 1 || r.Matches[0].Key != "ctstate" || r.Matches[0].Num != 6 || r.Matches[0].Neg {
		t.Fatalf("ct state: %+v", r)
	}
	r = Decode(cat(udpDport(67), []expr.Any{&expr.Reject{}}))
	if r.Verdict != Reject || len(r.Matches) != 2 || r.Matches[1].Num != 67 {
		t.Fatalf("udp 67 reject: %+v", r)
	}
	r = Decode(cat([]expr.Any{&expr.Match{Name: "conntrack"}}, []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: "DOCKER"}}))
	if r.Verdict != Jump || r.Target != "DOCKER" || r.Matches[0].Key != "other" {
		t.Fatalf("xt: %+v", r)
	}
}

func TestAnalyze(t *testing.T) {
	mk := func(policy Verdict, rules ...[]expr.Any) Table {
		c := Chain{Name: "forward", Hook: "forward", Type: "filter", Policy: policy}
		for _, r := range rules {
			c.Rules = append(c.Rules, Decode(r))
		}
		return Table{Family: "inet", Name: "filter", Chains: []Chain{c}}
	}
	own := Table{Family: "inet", Name: "netspawn", Chains: []Chain{{Name: "forward", Hook: "forward", Type: "filter", Policy: Drop}}}
	// Policy drop with nothing for us: both directions flagged; our own table never.
	ws := Analyze([]Table{own, mk(Drop, cat(ctState(CtEstablished|CtRelated), v(expr.VerdictAccept)))}, "netspawn", "ve-web")
	if len(ws) != 2 || ws[0].Table != "inet filter" || ws[0].Chain != "forward" || !strings.Contains(ws[0].Because, "policy drop") ||
		!strings.Contains(ws[0].Fix, `nft insert rule inet filter forward iifname "ve-*" accept`) {
		t.Fatalf("policy drop: %+v", ws)
	}
	if s := Summarize(ws); len(s) != 1 || !strings.Contains(s[0], "inet filter chain forward") {
		t.Fatalf("summary %q", s)
	}
	// Accepts for our links (wildcard in, exact name out): fine.
	if ws := Analyze([]Table{mk(Drop, cat(ifname(expr.MetaKeyIIFNAME, "ve-", true), v(expr.VerdictAccept)),
		cat(ifname(expr.MetaKeyOIFNAME, "ve-web", false), v(expr.VerdictAccept)))}, "netspawn", "ve-web"); len(ws) != 0 {
		t.Fatalf("accepted traffic flagged: %+v", ws)
	}
	// An explicit drop before the accept, in a jumped-to chain.
	tb := mk(Accept, []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: "fw"}})
	tb.Chains = append(tb.Chains, Chain{Name: "fw", Rules: []Rule{Decode(v(expr.VerdictReturn)[:0]), Decode(cat(ifname(expr.MetaKeyIIFNAME, "ve-", true), []expr.Any{&expr.Reject{}}))}})
	ws = Analyze([]Table{tb}, "netspawn", "ve-web")
	if len(ws) != 1 || !strings.Contains(ws[0].Because, "reject") || !strings.Contains(ws[0].Packet, "from containers") {
		t.Fatalf("explicit reject: %+v", ws)
	}
	// Rules that may or may not match (unknown matches) do not count as accepts.
	if ws := Analyze([]Table{mk(Drop, cat([]expr.Any{&expr.Match{Name: "physdev"}}, v(expr.VerdictAccept)))}, "netspawn", "ve-web"); len(ws) != 2 {
		t.Fatalf("unknown accept: %+v", ws)
	}
	// Input: DHCP dropped, DNS accepted.
	in := Table{Family: "ip", Name: "filter", Chains: []Chain{{Name: "INPUT", Hook: "input", Type: "filter", Policy: Drop,
		Rules: []Rule{Decode(cat(udpDport(53), v(expr.VerdictAccept)))}}}}
	ws = Analyze([]Table{in}, "netspawn", "ve-web")
	if len(ws) != 2 || !strings.Contains(ws[0].Packet, "DHCP") || !strings.Contains(ws[0].Fix, `udp dport 67 accept`) || !strings.Contains(ws[1].Packet, "tcp 53") {
		t.Fatalf("input: %+v", ws)
	}
}
