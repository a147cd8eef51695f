package dns

import (
	"time"

	"github.com/miekg/dns"
)

// Observer counts what the server does, for metrics; the package knows
// nothing of how they are kept or exported. Query is called on the
// serving goroutines once per answered query and Upstream once per
// upstream exchange: both must be cheap, never block and not allocate
// (resolve counters once, not per call). A nil Observer counts nothing.
type Observer interface {
	// Query counts one answered query: its question's type (0 when the
	// query had no readable question) and the reply's rcode. Dropped
	// datagrams are not counted.
	Query(qtype uint16, rcode int)
	// Upstream counts one answer from (or failure of) an upstream
	// resolver: how long it took since the query was sent, the answer's
	// rcode, or err (a timeout, a network error) with rcode -1.
	Upstream(took time.Duration, rcode int, err error)
}

// countWire counts a UDP reply in wire form: the rcode of its header and
// the type of its question, read without parsing the message.
func (h *Handler) countWire(b []byte) {
	if h.Observer == nil || len(b) < hdrLen {
		return
	}
	h.Observer.Query(wireQType(b), int(b[3]&0x0F))
}

// countMsg counts a reply built as a message.
func (h *Handler) countMsg(req, resp *dns.Msg) {
	if h.Observer == nil || resp == nil {
		return
	}
	var qtype uint16
	if req != nil && len(req.Question) > 0 {
		qtype = req.Question[0].Qtype
	}
	h.Observer.Query(qtype, resp.Rcode)
}

// wireQType is the type of the first question of a message (0: none).
func wireQType(b []byte) uint16 {
	if len(b) < hdrLen || b[4] == 0 && b[5] == 0 {
		return 0
	}
	off, ok := skipName(b, hdrLen)
	if !ok || off+2 > len(b) {
		return 0
	}
	return uint16(b[off])<<8 | uint16(b[off+1])
}
