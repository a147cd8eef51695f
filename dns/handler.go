package dns

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// ourUDPSize is the EDNS0 buffer size we announce to clients.
const ourUDPSize = 1232

// ViewFunc maps a client address to the names it may see.
type ViewFunc func(client netip.Addr) View

// Handler chains the stages: request checks, the authority for machine
// names, then the forwarder (cache first). It implements dns.Handler for
// the TCP path and for tests with a recorder; the UDP path calls Local
// and forwards asynchronously.
type Handler struct {
	Authority *Authority
	// Forwarder may be nil: queries that are not ours are REFUSED.
	Forwarder *Forwarder
	// ViewOf may be nil: every client sees every name. Loopback clients
	// (the host) always see every name.
	ViewOf ViewFunc
	// Logger, when set, gets a warning about failed forwards (at most one
	// every 10 s; the others at debug level).
	Logger *slog.Logger
	// Observer, when set, counts the answered queries (see Observer).
	Observer Observer

	lastWarn atomic.Int64 // unix nanoseconds of the last warning
}

// forwardFailed logs a failed forward, rate-limited.
func (h *Handler) forwardFailed(req *dns.Msg, err error) {
	if h.Logger == nil {
		return
	}
	now := time.Now().UnixNano()
	last := h.lastWarn.Load()
	if now-last >= int64(10*time.Second) && h.lastWarn.CompareAndSwap(last, now) {
		h.Logger.Warn("dns: forwarding failed (SERVFAIL to the client)", "name", req.Question[0].Name, "err", err)
		return
	}
	h.Logger.Debug("dns: forwarding failed", "name", req.Question[0].Name, "err", err)
}

func (h *Handler) view(client netip.Addr) View {
	client = client.Unmap()
	if h.ViewOf == nil || client.IsLoopback() {
		return View{All: true}
	}
	return h.ViewOf(client)
}

// Local answers req without network I/O: errors, machine names and
// cached upstream answers. It returns forward=true when req must go to
// the forwarder, and (nil, false) when req must be dropped (it is a
// response). The reply is not yet sized for the transport: see Finish.
func (h *Handler) Local(req *dns.Msg, client netip.Addr) (resp *dns.Msg, forward bool) {
	if req.Response {
		return nil, false
	}
	if req.Opcode != dns.OpcodeQuery {
		return errorReply(req, dns.RcodeNotImplemented), false
	}
	if len(req.Question) != 1 {
		return errorReply(req, dns.RcodeFormatError), false
	}
	if opt := req.IsEdns0(); opt != nil && opt.Version() != 0 {
		return errorReply(req, dns.RcodeBadVers), false
	}
	q := req.Question[0]
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		return errorReply(req, dns.RcodeRefused), false
	}
	if h.Authority != nil {
		if resp, ok := h.Authority.Answer(req, h.view(client)); ok {
			return resp, false
		}
	}
	switch q.Qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		return errorReply(req, dns.RcodeRefused), false
	}
	if h.Forwarder == nil {
		return errorReply(req, dns.RcodeRefused), false
	}
	if resp, ok := h.Forwarder.Cached(req); ok {
		return resp, false
	}
	if resp, ok := h.Forwarder.Immediate(req); ok {
		return resp, false
	}
	return nil, true
}

// Resolve answers req completely, forwarding when needed; it never
// returns nil for a query (failures become SERVFAIL).
func (h *Handler) Resolve(ctx context.Context, req *dns.Msg, client netip.Addr) *dns.Msg {
	resp, forward := h.Local(req, client)
	if !forward {
		return resp
	}
	resp, err := h.Forwarder.Forward(ctx, req)
	if err != nil {
		h.forwardFailed(req, err)
		return errorReply(req, dns.RcodeServerFailure)
	}
	return resp
}

// ServeDNS implements dns.Handler.
func (h *Handler) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	client := addrOf(w.RemoteAddr())
	ctx, cancel := context.WithTimeout(context.Background(), MaxUpstreams*DefaultUpstreamTimeout)
	defer cancel()
	resp := h.Resolve(ctx, req, client)
	if resp == nil {
		return
	}
	_, udp := w.RemoteAddr().(*net.UDPAddr)
	Finish(req, resp, udp)
	h.countMsg(req, resp)
	_ = w.WriteMsg(resp)
}

func addrOf(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

func errorReply(req *dns.Msg, rcode int) *dns.Msg {
	resp := new(dns.Msg)
	resp.SetRcode(req, rcode)
	resp.RecursionAvailable = true
	return resp
}

// Finish fits resp to the client: our OPT record when the client sent
// one (with its DO bit), none otherwise, and truncation (TC bit) to the
// client's UDP buffer size, or to 64 KiB over TCP.
func Finish(req, resp *dns.Msg, udp bool) {
	rcode := resp.Rcode
	// Drop any OPT record (an upstream's) and add ours.
	extra := resp.Extra[:0]
	for _, rr := range resp.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			extra = append(extra, rr)
		}
	}
	resp.Extra = extra
	size := dns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		o.SetUDPSize(ourUDPSize)
		if opt.Do() {
			o.SetDo()
		}
		if rcode > 0xF {
			o.SetExtendedRcode(uint16(rcode))
		}
		resp.Extra = append(resp.Extra, o)
		if s := int(opt.UDPSize()); s > size {
			size = s
		}
	} else if rcode > 0xF {
		resp.Rcode = dns.RcodeServerFailure
	}
	if !udp {
		size = dns.MaxMsgSize
	}
	resp.Truncate(size)
}
