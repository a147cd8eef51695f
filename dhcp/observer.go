package dhcp

import "github.com/insomniacslk/dhcp/dhcpv4"

// Observer counts what the server does, for metrics; the package knows
// nothing of how they are kept or exported. A nil Observer counts
// nothing.
type Observer interface {
	// Link is asked once, when a link is added, for the counters of that
	// link; the server keeps them for the link's life.
	Link(name string) LinkObserver
	// LinkRemoved says a link is no longer served (its counters may go).
	LinkRemoved(name string)
}

// LinkObserver counts one link's packets. Packet runs on the serving
// goroutine under the link's lock, once per packet: it must be cheap,
// never block and not allocate.
type LinkObserver interface {
	// Packet counts one request: its DHCP message type (MessageTypeNone
	// when the packet could not be read) and what the server made of it.
	Packet(msgType dhcpv4.MessageType, outcome Outcome)
}

// Outcome is what the server made of one request.
type Outcome uint8

const (
	OutcomeOffer   Outcome = iota // answered with an OFFER
	OutcomeAck                    // answered with an ACK
	OutcomeNak                    // answered with a NAK
	OutcomeNoReply                // taken, nothing to answer (RELEASE, DECLINE, a NAK withheld)
	OutcomeDropped                // refused: malformed, invalid, another server's, no address left
	NumOutcomes
)

var outcomeNames = [NumOutcomes]string{"offer", "ack", "nak", "noreply", "dropped"}

// String is the outcome's metric label.
func (o Outcome) String() string {
	if o < NumOutcomes {
		return outcomeNames[o]
	}
	return "unknown"
}

// outcomeOf is the outcome of a decided reply (nil: no reply).
func outcomeOf(resp *dhcpv4.DHCPv4) Outcome {
	if resp == nil {
		return OutcomeNoReply
	}
	switch resp.MessageType() {
	case dhcpv4.MessageTypeOffer:
		return OutcomeOffer
	case dhcpv4.MessageTypeAck:
		return OutcomeAck
	case dhcpv4.MessageTypeNak:
		return OutcomeNak
	}
	return OutcomeNoReply
}
