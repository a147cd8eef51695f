package dhcp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/netspawn/netspawn/dhcp/lease"
)

// destKind says how a reply reaches the client (RFC 2131 4.1).
type destKind uint8

const (
	destRelay     destKind = iota + 1 // unicast to the relay agent (giaddr), port 67
	destBroadcast                     // 255.255.255.255:68 on the link
	destUnicast                       // UDP to ciaddr:68 (client has its address)
	destL2                            // client has no address yet: frame to chaddr, IP yiaddr
)

type dest struct {
	kind destKind
	ip   netip.Addr
	mac  net.HardwareAddr
}

var errNoAddress = errors.New("no address to offer (pool exhausted or none configured)")

// process answers one packet that arrived on link l: it returns the reply
// bytes (nil: no reply), where they go, and the lease changes it made,
// which are in the log (written to the kernel) before it returns.
func (s *Server) process(l *link, pkt []byte) ([]byte, dest, []lease.Change, error) {
	var p pending
	l.mu.Lock()
	if err := s.decide(l, pkt, &p); err != nil {
		l.mu.Unlock()
		return nil, dest{}, nil, err
	}
	changes := l.table.TakeChanges()
	if err := s.persist(changes); err != nil {
		l.mu.Unlock()
		return nil, dest{}, nil, fmt.Errorf("lease not persisted, not answering: %w", err)
	}
	l.mu.Unlock()
	if p.resp == nil {
		return nil, dest{}, changes, nil
	}
	out, d := p.finish(nil)
	return out, d, changes, nil
}

// pending is a request decided on under the link's lock, its reply not
// yet finished (handler chain, size) nor sent.
type pending struct {
	req, resp *dhcpv4.DHCPv4
	hostname  string // reserved host name to offer, if any
	chain     []Handler
	out       []byte
	dest      dest
}

// batchResult is what processBatch made of one batch of packets.
type batchResult struct {
	replies []pending
	changes []lease.Change
	drops   []error  // one per dropped packet
	lost    error    // the log write failed: nothing of the batch is answered
	bufs    [][]byte // reply storage, reused between batches
}

// processBatch answers a batch of packets that arrived on link l together:
// every decision is taken under one hold of the link's lock and the lease
// changes of the whole batch reach the log with one write (group commit)
// before any reply is built, so a reply never leaves before its lease is
// in the kernel. r is reused between calls.
func (s *Server) processBatch(l *link, pkts [][]byte, r *batchResult) {
	if len(r.bufs) < len(pkts) {
		r.bufs = append(r.bufs, make([][]byte, len(pkts)-len(r.bufs))...)
	}
	r.replies, r.changes, r.drops, r.lost = r.replies[:0], nil, r.drops[:0], nil
	l.mu.Lock()
	for _, pkt := range pkts {
		var p pending
		if err := s.decide(l, pkt, &p); err != nil {
			r.drops = append(r.drops, err)
			continue
		}
		if p.resp != nil {
			r.replies = append(r.replies, p)
		}
	}
	r.changes = l.table.TakeChanges()
	if err := s.persist(r.changes); err != nil {
		l.mu.Unlock()
		r.replies, r.changes = r.replies[:0], nil
		r.lost = fmt.Errorf("lease not persisted, not answering %d packets: %w", len(pkts), err)
		return
	}
	l.mu.Unlock()
	for i := range r.replies {
		p := &r.replies[i]
		p.out, p.dest = p.finish(r.bufs[i])
		if cap(p.out) <= 64<<10 {
			r.bufs[i] = p.out[:0] // reuse its storage next batch
		}
	}
}

// decide parses and validates one packet and applies it to the link's lease
// table; the caller holds l.mu. It fills p.resp with the reply skeleton, or
// leaves it nil when nothing is to be answered.
func (s *Server) decide(l *link, pkt []byte, p *pending) error {
	req, err := dhcpv4.FromBytes(pkt)
	if err != nil {
		if l.obs != nil {
			l.obs.Packet(dhcpv4.MessageTypeNone, OutcomeDropped)
		}
		return fmt.Errorf("malformed packet (%d bytes): %w", len(pkt), err)
	}
	err = s.decideRequest(l, req, p)
	if l.obs != nil {
		o := OutcomeDropped
		if err == nil {
			o = outcomeOf(p.resp)
		}
		l.obs.Packet(req.MessageType(), o)
	}
	return err
}

// decideRequest is decide for a parsed request.
func (s *Server) decideRequest(l *link, req *dhcpv4.DHCPv4, p *pending) error {
	cfg := l.cfg
	if err := validate(req, cfg.ServerIP, cfg.Subnet); err != nil {
		return fmt.Errorf("%s from %s: %w", req.MessageType(), req.ClientHWAddr, err)
	}
	c := lease.Client{MAC: req.ClientHWAddr, Hostname: sanitizeHostname(req.HostName())}
	if cid := req.GetOneOption(dhcpv4.OptionClientIdentifier); len(cid) > 0 && len(cid) <= 255 {
		c.ClientID = cid
	}
	now := s.opts.Now()
	reqIP := ip4(req.GetOneOption(dhcpv4.OptionRequestedIPAddress))
	ciaddr := ip4(req.ClientIPAddr)
	if ciaddr.IsUnspecified() {
		ciaddr = netip.Addr{}
	}
	var resp *dhcpv4.DHCPv4
	var granted lease.Lease
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		le, ok := l.table.Offer(c, reqIP, now)
		if !ok {
			return fmt.Errorf("DISCOVER from %s: %w", c.MAC, errNoAddress)
		}
		granted = le
		resp = newReply(req, dhcpv4.MessageTypeOffer, cfg.ServerIP)
		resp.YourIPAddr = netIP(le.IP)
	case dhcpv4.MessageTypeRequest:
		want := reqIP
		if !want.IsValid() {
			want = ciaddr // RENEWING / REBINDING
		}
		le, v := l.table.Request(c, want, now)
		switch v {
		case lease.ACK:
			granted = le
			resp = newReply(req, dhcpv4.MessageTypeAck, cfg.ServerIP)
			resp.YourIPAddr = netIP(le.IP)
			if ciaddr.IsValid() {
				resp.ClientIPAddr = netIP(ciaddr)
			}
		case lease.NAK:
			resp = newReply(req, dhcpv4.MessageTypeNak, cfg.ServerIP)
			resp.UpdateOption(dhcpv4.OptMessage("requested address not available"))
		}
	case dhcpv4.MessageTypeRelease:
		l.table.Release(c, ciaddr)
	case dhcpv4.MessageTypeDecline:
		l.table.Decline(c, reqIP, now)
	case dhcpv4.MessageTypeInform:
		resp = newReply(req, dhcpv4.MessageTypeAck, cfg.ServerIP)
		resp.ClientIPAddr = req.ClientIPAddr
	}
	if s.debug {
		reply := "none"
		if resp != nil {
			reply = resp.MessageType().String() + " " + resp.YourIPAddr.String()
		}
		s.log.Debug("dhcp: packet", "link", cfg.Name, "type", req.MessageType().String(), "mac", c.MAC.String(),
			"ciaddr", ciaddr, "requested", reqIP, "giaddr", req.GatewayIPAddr.String(), "flags", req.Flags, "reply", reply)
	}
	p.req, p.resp, p.chain = req, resp, l.chain
	if r, ok := l.reserved[string(c.MAC)]; ok && granted.IP == r.ip {
		p.hostname = r.hostname
	}
	return nil
}

// finish runs the handler chain over a decided reply and encodes it into
// dst's storage; it needs no lock.
func (p *pending) finish(dst []byte) ([]byte, dest) {
	req, resp := p.req, p.resp
	if p.hostname != "" && requested(req, dhcpv4.OptionHostName) {
		resp.UpdateOption(dhcpv4.OptHostName(p.hostname))
	}
	for _, h := range p.chain {
		if h(req, resp) {
			break
		}
	}
	if resp.MessageType() == dhcpv4.MessageTypeNone {
		return nil, dest{} // a handler withdrew the reply
	}
	d := destination(req, resp)
	return fitReply(dst, req, resp), d
}

// destination picks where a reply goes (RFC 2131 section 4.1).
func destination(req, resp *dhcpv4.DHCPv4) dest {
	gi := ip4(req.GatewayIPAddr)
	ci := ip4(req.ClientIPAddr)
	yi := ip4(resp.YourIPAddr)
	switch {
	case gi.IsValid() && !gi.IsUnspecified():
		if resp.MessageType() == dhcpv4.MessageTypeNak {
			resp.SetBroadcast()
		}
		return dest{kind: destRelay, ip: gi}
	case resp.MessageType() == dhcpv4.MessageTypeNak:
		return dest{kind: destBroadcast}
	case ci.IsValid() && !ci.IsUnspecified():
		return dest{kind: destUnicast, ip: ci}
	case req.IsBroadcast():
		return dest{kind: destBroadcast}
	case yi.IsValid() && !yi.IsUnspecified():
		return dest{kind: destL2, ip: yi, mac: req.ClientHWAddr}
	}
	return dest{kind: destBroadcast}
}

// sanitizeHostname keeps a client-sent host name only if it is a plausible
// DNS label sequence; anything else is ignored.
func sanitizeHostname(h string) string {
	if len(h) == 0 || len(h) > 63 {
		return ""
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return ""
		}
	}
	return h
}
