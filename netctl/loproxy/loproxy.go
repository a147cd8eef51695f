// Package loproxy makes TCP port forwards reachable on the host's IPv6
// loopback address, [::1]:PORT. IPv4 forwards from 127.0.0.1 work in the
// kernel (DNAT in output, route_localnet and masquerade), but IPv6 has no
// route_localnet: a reply de-NATed back to ::1 arrives on the container's
// link and the kernel drops it. So, as docker-proxy does, netspawnd accepts
// on [::1]:PORT itself and splices each connection to the container.
package loproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Target is one forward: connections to [::1]:HostPort go to Addr:Port.
type Target struct {
	HostPort uint16
	Addr     netip.Addr
	Port     uint16
}

// Proxy holds the listeners of every owner (machine).
type Proxy struct {
	log    *slog.Logger
	listen netip.Addr

	mu     sync.Mutex
	owners map[string][]*listener
	closed bool
}

type listener struct {
	t      Target
	ln     net.Listener
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a proxy listening on ::1 (or listen when valid, for tests).
func New(listen netip.Addr, log *slog.Logger) *Proxy {
	if !listen.IsValid() {
		listen = netip.IPv6Loopback()
	}
	if log == nil {
		log = slog.Default()
	}
	return &Proxy{log: log, listen: listen, owners: map[string][]*listener{}}
}

// Set replaces owner's forwards with ts. A port that cannot be bound is
// logged and skipped; the others still work.
func (p *Proxy) Set(owner string, ts []Target) error {
	p.Remove(owner)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("loopback proxy closed")
	}
	var errs []error
	for _, t := range ts {
		ln, err := net.Listen("tcp6", netip.AddrPortFrom(p.listen, t.HostPort).String())
		if err != nil {
			errs = append(errs, fmt.Errorf("listen on [%s]:%d: %w", p.listen, t.HostPort, err))
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		l := &listener{t: t, ln: ln, cancel: cancel}
		l.wg.Add(1)
		go p.serve(ctx, l)
		p.owners[owner] = append(p.owners[owner], l)
	}
	return errors.Join(errs...)
}

// Remove closes owner's listeners and their connections.
func (p *Proxy) Remove(owner string) {
	p.mu.Lock()
	ls := p.owners[owner]
	delete(p.owners, owner)
	p.mu.Unlock()
	for _, l := range ls {
		l.cancel()
		l.ln.Close()
		l.wg.Wait()
	}
}

// Close removes every owner.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	owners := make([]string, 0, len(p.owners))
	for o := range p.owners {
		owners = append(owners, o)
	}
	p.mu.Unlock()
	for _, o := range owners {
		p.Remove(o)
	}
}

func (p *Proxy) serve(ctx context.Context, l *listener) {
	defer l.wg.Done()
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			p.splice(ctx, c, l.t)
		}()
	}
}

func (p *Proxy) splice(ctx context.Context, c net.Conn, t Target) {
	defer c.Close()
	d := net.Dialer{Timeout: 10 * time.Second}
	up, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(t.Addr, t.Port).String())
	if err != nil {
		p.log.Debug("loopback forward: dial container", "port", t.HostPort, "to", t.Addr, "err", err)
		return
	}
	defer up.Close()
	stop := context.AfterFunc(ctx, func() { c.Close(); up.Close() })
	defer stop()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	<-done
}
