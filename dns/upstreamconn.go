package dns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Upstream UDP sockets are kept and reused instead of dialled for every
// query: a socket, its connect and its close cost more CPU than the
// exchange itself. A socket serves one exchange at a time and goes back
// to the pool only after a clean exchange (an answer with the query's
// ID; miekg/dns skips stray replies with other IDs), at most
// connMaxUses times and for at most connMaxAge, so source ports keep
// changing (RFC 5452). Each query has a random ID.
const (
	connMaxIdle = 64 // idle sockets kept per upstream
	connMaxUses = 100
	connMaxAge  = time.Minute
)

type upstreamConn struct {
	*dns.Conn
	uses int
	born time.Time
}

type connPool struct {
	mu     sync.Mutex
	idle   map[netip.AddrPort][]*upstreamConn
	closed bool
}

// get returns an idle socket to u, or a new one.
func (p *connPool) get(ctx context.Context, u netip.AddrPort) (*upstreamConn, error) {
	now := time.Now()
	p.mu.Lock()
	for list := p.idle[u]; len(list) > 0; list = p.idle[u] {
		c := list[len(list)-1]
		p.idle[u] = list[:len(list)-1]
		if now.Sub(c.born) < connMaxAge {
			p.mu.Unlock()
			return c, nil
		}
		_ = c.Close()
	}
	p.mu.Unlock()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "udp", u.String())
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", u, err)
	}
	return &upstreamConn{Conn: &dns.Conn{Conn: nc, UDPSize: upstreamUDPSize}, born: now}, nil
}

// put returns a socket after a clean exchange, or closes it.
func (p *connPool) put(u netip.AddrPort, c *upstreamConn) {
	c.uses++
	p.mu.Lock()
	if p.closed || c.uses >= connMaxUses || len(p.idle[u]) >= connMaxIdle {
		p.mu.Unlock()
		_ = c.Close()
		return
	}
	if p.idle == nil {
		p.idle = map[netip.AddrPort][]*upstreamConn{}
	}
	p.idle[u] = append(p.idle[u], c)
	p.mu.Unlock()
}

// close closes the idle sockets; sockets in use are closed when returned.
func (p *connPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, list := range p.idle {
		for _, c := range list {
			_ = c.Close()
		}
	}
	p.idle = nil
}
