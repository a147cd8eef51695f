package dns

import (
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// DefaultDomain is the domain machine names live under unless the
// controller configures another one.
const DefaultDomain = "netspawn.internal"

// DefaultTTL is the TTL of machine answers: short, so that address
// changes reach clients within a second.
const DefaultTTL = 1

// Authority is the stage that answers for machine names: NAME (one
// label), NAME.<domain>, the domain's apex, and the reverse names of the
// machines' addresses. It is pure: it reads a Source and builds replies.
type Authority struct {
	domain string // lower case, fully qualified ("netspawn.internal.")
	src    Source
	ttl    uint32
	soa    *dns.SOA
}

// NewAuthority returns the authority stage for domain (DefaultDomain
// when empty) backed by src; ttl 0 means DefaultTTL.
func NewAuthority(domain string, src Source, ttl uint32) *Authority {
	if domain == "" {
		domain = DefaultDomain
	}
	if ttl == 0 {
		ttl = DefaultTTL
	}
	domain = dns.Fqdn(strings.ToLower(domain))
	return &Authority{
		domain: domain,
		src:    src,
		ttl:    ttl,
		soa: &dns.SOA{
			Hdr:     dns.RR_Header{Name: domain, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
			Ns:      "ns." + domain,
			Mbox:    "hostmaster." + domain,
			Serial:  1,
			Refresh: 3600,
			Retry:   600,
			Expire:  86400,
			Minttl:  ttl,
		},
	}
}

// Domain returns the fully qualified lower-case domain.
func (a *Authority) Domain() string { return a.domain }

// View says which names a client may see: those tagged View, or all of
// them when All is set.
type View struct {
	Name string
	All  bool
}

func (v View) sees(r Record) bool { return v.All || r.View == v.Name }

// Answer builds the reply to req (one question, class IN or ANY) for a
// client in view v. ok is false when the name is not ours and the query
// belongs to the next stage (the forwarder).
func (a *Authority) Answer(req *dns.Msg, v View) (resp *dns.Msg, ok bool) {
	if len(req.Question) != 1 {
		return nil, false
	}
	q := req.Question[0]
	qname := lowerFqdn(q.Name)
	switch {
	case qname == a.domain:
		resp = a.reply(req)
		if q.Qtype == dns.TypeSOA || q.Qtype == dns.TypeANY {
			soa := *a.soa
			soa.Hdr.Name = q.Name
			resp.Answer = append(resp.Answer, &soa)
		} else {
			resp.Ns = append(resp.Ns, a.soa)
		}
		return resp, true
	case strings.HasSuffix(qname, "."+a.domain):
		label := qname[:len(qname)-len(a.domain)-1]
		resp = a.reply(req)
		r, found := a.lookup(label, v)
		if !found {
			resp.Rcode = dns.RcodeNameError
			resp.Ns = append(resp.Ns, a.soa)
			return resp, true
		}
		a.addresses(resp, q, r)
		if len(resp.Answer) == 0 {
			resp.Ns = append(resp.Ns, a.soa)
		}
		return resp, true
	case isSingleLabel(qname):
		r, found := a.lookup(qname[:len(qname)-1], v)
		if !found {
			return nil, false
		}
		resp = a.reply(req)
		a.addresses(resp, q, r)
		return resp, true
	}
	// A machine whose name has dots (a CNI pod's POD.NAMESPACE), asked
	// for as it is: answered here rather than forwarded, as the NSS
	// module answers it.
	if r, found := a.lookup(qname[:len(qname)-1], v); found && q.Qtype != dns.TypePTR {
		resp = a.reply(req)
		a.addresses(resp, q, r)
		return resp, true
	}
	ip, isPTR := parseReverse(qname)
	if !isPTR {
		return nil, false
	}
	r, found := a.src.LookupAddr(ip)
	if !found || !v.sees(r) {
		return nil, false
	}
	resp = a.reply(req)
	if q.Qtype == dns.TypePTR || q.Qtype == dns.TypeANY {
		resp.Answer = append(resp.Answer, &dns.PTR{
			Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: a.ttl},
			Ptr: r.Name + "." + a.domain,
		})
	}
	return resp, true
}

func (a *Authority) reply(req *dns.Msg) *dns.Msg {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.Authoritative = true
	resp.RecursionAvailable = true
	return resp
}

// lookup finds a machine by its name (one label, or several for names
// with dots), honouring the view.
func (a *Authority) lookup(label string, v View) (Record, bool) {
	if label == "" {
		return Record{}, false
	}
	r, ok := a.src.Lookup(label)
	if !ok || !v.sees(r) {
		return Record{}, false
	}
	return r, true
}

// addresses appends the A/AAAA records q asks for; other types get no
// data (NOERROR, empty answer).
func (a *Authority) addresses(resp *dns.Msg, q dns.Question, r Record) {
	if q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY {
		for _, ip := range r.IPv4 {
			b := ip.As4()
			resp.Answer = append(resp.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: a.ttl},
				A:   b[:],
			})
		}
	}
	if q.Qtype == dns.TypeAAAA || q.Qtype == dns.TypeANY {
		for _, ip := range r.IPv6 {
			b := ip.As16()
			resp.Answer = append(resp.Answer, &dns.AAAA{
				Hdr:  dns.RR_Header{Name: q.Name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: a.ttl},
				AAAA: b[:],
			})
		}
	}
}

// lowerFqdn returns name in lower case with a trailing dot, without
// allocating when it already is.
func lowerFqdn(name string) string {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c >= 'A' && c <= 'Z' {
			return dns.Fqdn(strings.ToLower(name))
		}
	}
	return dns.Fqdn(name)
}

// isSingleLabel reports whether fqdn (ending in a dot) has exactly one
// non-empty label. Escaped dots (\.) make a name not ours.
func isSingleLabel(fqdn string) bool {
	if len(fqdn) < 2 {
		return false
	}
	body := fqdn[:len(fqdn)-1]
	return strings.IndexByte(body, '.') < 0 && strings.IndexByte(body, '\\') < 0
}

// parseReverse turns a full-length in-addr.arpa or ip6.arpa name into the
// address it names.
func parseReverse(fqdn string) (netip.Addr, bool) {
	if rest, ok := strings.CutSuffix(fqdn, ".in-addr.arpa."); ok {
		var b [4]byte
		for i := 3; i >= 0; i-- {
			label := rest
			if i > 0 {
				j := strings.IndexByte(rest, '.')
				if j < 0 {
					return netip.Addr{}, false
				}
				label, rest = rest[:j], rest[j+1:]
			}
			n, ok := parseOctet(label)
			if !ok {
				return netip.Addr{}, false
			}
			b[i] = n
		}
		return netip.AddrFrom4(b), true
	}
	if rest, ok := strings.CutSuffix(fqdn, ".ip6.arpa."); ok {
		if len(rest) != 63 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i := 0; i < 32; i++ {
			c := rest[2*i]
			if i < 31 && rest[2*i+1] != '.' {
				return netip.Addr{}, false
			}
			n, ok := hexNibble(c)
			if !ok {
				return netip.Addr{}, false
			}
			pos := 31 - i // nibble index from the most significant end
			if pos%2 == 0 {
				b[pos/2] |= n << 4
			} else {
				b[pos/2] |= n
			}
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}

func parseOctet(s string) (byte, bool) {
	if len(s) == 0 || len(s) > 3 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	if n > 255 {
		return 0, false
	}
	return byte(n), true
}

func hexNibble(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
