package dhcp

import (
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/insomniacslk/dhcp/rfc1035label"
)

// Handler is one step of the reply chain, CoreDHCP style: it reads the
// request and adds to (or rewrites) the reply the server has pre-built.
// It returns stop=true to end the chain; a handler that wants no reply sent
// at all sets the reply's message type to none (pending.finish drops it).
type Handler func(req, resp *dhcpv4.DHCPv4) (stop bool)

// Errors a packet is dropped for (the reason is logged, rate limited).
var (
	errNotRequest    = errors.New("not a BOOTREQUEST")
	errHardware      = errors.New("not an Ethernet hardware address")
	errNoMsgType     = errors.New("no DHCP message type (BOOTP is not served)")
	errWrongType     = errors.New("message type a client never sends")
	errForeignServer = errors.New("server identifier names another server")
	errRelayed       = errors.New("relayed from outside the link's subnet or too many hops")
)

// validate checks what every request must satisfy before it is looked at.
func validate(req *dhcpv4.DHCPv4, serverID netip.Addr, subnet netip.Prefix) error {
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		return errNotRequest
	}
	if req.HWType != iana.HWTypeEthernet || len(req.ClientHWAddr) != 6 {
		return errHardware
	}
	mt := req.MessageType()
	switch mt {
	case dhcpv4.MessageTypeNone:
		return errNoMsgType
	case dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest, dhcpv4.MessageTypeRelease,
		dhcpv4.MessageTypeDecline, dhcpv4.MessageTypeInform:
	default:
		return errWrongType
	}
	if sid := req.GetOneOption(dhcpv4.OptionServerIdentifier); sid != nil {
		a, ok := netip.AddrFromSlice(sid)
		if !ok || a.Unmap() != serverID {
			return errForeignServer
		}
	}
	// A relay agent (perfdhcp plays one) must sit on the link itself.
	if gi := ip4(req.GatewayIPAddr); gi.IsValid() && !gi.IsUnspecified() && (!subnet.Contains(gi) || req.HopCount > 16) {
		return errRelayed
	}
	return nil
}

// ip4 converts a packet address field (nil, 4 or 16 bytes) to netip.
func ip4(ip net.IP) netip.Addr {
	if v := ip.To4(); v != nil {
		return netip.AddrFrom4([4]byte(v))
	}
	return netip.Addr{}
}

func netIP(a netip.Addr) net.IP {
	b := a.As4()
	return net.IP(b[:])
}

// requested reports whether the client asked for an option, or asked for
// nothing in particular (no parameter request list: it gets everything).
func requested(req *dhcpv4.DHCPv4, code dhcpv4.OptionCode) bool {
	if !req.Options.Has(dhcpv4.OptionParameterRequestList) {
		return true
	}
	return req.IsOptionRequested(code)
}

func isAck(resp *dhcpv4.DHCPv4) bool {
	mt := resp.MessageType()
	return mt == dhcpv4.MessageTypeOffer || mt == dhcpv4.MessageTypeAck
}

// optionHandlers builds the option part of the chain from a link's
// configuration. Basic options (mask, router, DNS, domain) always go into
// OFFER and ACK; host name, search list and MTU when the client asks for
// them (or sends no request list). Option values are encoded once here and
// shared, read only, by every reply.
func optionHandlers(cfg LinkConfig) []Handler {
	var hs []Handler
	always := dhcpv4.Options{}
	always.Update(dhcpv4.OptSubnetMask(net.CIDRMask(cfg.Subnet.Bits(), 32)))
	if len(cfg.Routers) > 0 {
		always.Update(dhcpv4.OptRouter(ips(cfg.Routers)...))
	}
	if len(cfg.DNS) > 0 {
		always.Update(dhcpv4.OptDNS(ips(cfg.DNS)...))
	}
	if cfg.Domain != "" {
		always.Update(dhcpv4.OptDomainName(cfg.Domain))
	}
	hs = append(hs, func(req, resp *dhcpv4.DHCPv4) bool {
		if isAck(resp) {
			for code, v := range always {
				resp.Options[code] = v
			}
		}
		return false
	})
	if len(cfg.Search) > 0 {
		search := dhcpv4.OptDomainSearch(&rfc1035label.Labels{Labels: append([]string(nil), cfg.Search...)}).Value.ToBytes()
		hs = append(hs, func(req, resp *dhcpv4.DHCPv4) bool {
			if isAck(resp) && requested(req, dhcpv4.OptionDNSDomainSearchList) {
				resp.Options[dhcpv4.OptionDNSDomainSearchList.Code()] = search
			}
			return false
		})
	}
	if cfg.MTU > 0 && cfg.MTU <= 0xffff {
		mtu := []byte{byte(cfg.MTU >> 8), byte(cfg.MTU)}
		hs = append(hs, func(req, resp *dhcpv4.DHCPv4) bool {
			if isAck(resp) && requested(req, dhcpv4.OptionInterfaceMTU) {
				resp.Options[dhcpv4.OptionInterfaceMTU.Code()] = mtu
			}
			return false
		})
	}
	return hs
}

// leaseTimeHandler adds lease time, T1 (1/2) and T2 (7/8) to OFFER and to
// ACKs that carry an address (not to the ACK of an INFORM).
func leaseTimeHandler(d time.Duration) Handler {
	times := dhcpv4.Options{}
	times.Update(dhcpv4.OptIPAddressLeaseTime(d))
	times.Update(dhcpv4.OptRenewTimeValue(d / 2))
	times.Update(dhcpv4.OptRebindingTimeValue(d * 7 / 8))
	return func(req, resp *dhcpv4.DHCPv4) bool {
		if !isAck(resp) || ip4(resp.YourIPAddr).IsUnspecified() || !ip4(resp.YourIPAddr).IsValid() {
			return false
		}
		for code, v := range times {
			resp.Options[code] = v
		}
		return false
	}
}

func ips(as []netip.Addr) []net.IP {
	out := make([]net.IP, 0, len(as))
	for _, a := range as {
		if a.Is4() {
			out = append(out, netIP(a))
		}
	}
	return out
}

// newReply pre-builds the RFC 2131 skeleton of the answer to req: op, xid,
// flags, chaddr, client identifier echoed (RFC 6842), server identifier.
func newReply(req *dhcpv4.DHCPv4, mt dhcpv4.MessageType, serverID netip.Addr) *dhcpv4.DHCPv4 {
	resp := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootReply,
		HWType:        req.HWType,
		TransactionID: req.TransactionID,
		Flags:         req.Flags,
		ClientHWAddr:  req.ClientHWAddr,
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    net.IPv4zero,
		ServerIPAddr:  net.IPv4zero,
		GatewayIPAddr: req.GatewayIPAddr, // a relay needs its own address back
		Options:       make(dhcpv4.Options, 16),
	}
	if resp.GatewayIPAddr == nil {
		resp.GatewayIPAddr = net.IPv4zero
	}
	resp.UpdateOption(dhcpv4.OptMessageType(mt))
	resp.UpdateOption(dhcpv4.OptServerIdentifier(netIP(serverID)))
	if cid := req.GetOneOption(dhcpv4.OptionClientIdentifier); len(cid) > 0 && len(cid) <= 255 {
		resp.UpdateOption(dhcpv4.OptClientIdentifier(cid))
	}
	if rai := req.GetOneOption(dhcpv4.OptionRelayAgentInformation); len(rai) > 0 && len(rai) <= 255 {
		resp.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionRelayAgentInformation, rai)) // RFC 3046
	}
	return resp
}

// optionalOptions may be left out of a reply too big for the client, the
// least important first.
var optionalOptions = []dhcpv4.OptionCode{dhcpv4.OptionDNSDomainSearchList, dhcpv4.OptionHostName,
	dhcpv4.OptionDomainName, dhcpv4.OptionInterfaceMTU, dhcpv4.OptionClientIdentifier}

// fitReply drops optional options, least important first, until the reply
// fits the client's maximum message size (at least 576, RFC 2131).
func fitReply(dst []byte, req, resp *dhcpv4.DHCPv4) []byte {
	limit := 576
	if v := req.GetOneOption(dhcpv4.OptionMaximumDHCPMessageSize); len(v) == 2 {
		if n := int(v[0])<<8 | int(v[1]); n > limit {
			limit = n
		}
	}
	limit -= 28 // IP + UDP headers
	b := appendPacket(dst[:0], resp)
	for _, code := range optionalOptions {
		if len(b) <= limit {
			break
		}
		resp.Options.Del(code)
		b = appendPacket(dst[:0], resp)
	}
	return b
}
