// Package loproxy makes TCP and UDP port forwards reachable on the host's
// IPv6 loopback address, [::1]:PORT. IPv4 forwards from 127.0.0.1 work in the
// kernel (DNAT in output, route_localnet and masquerade), but IPv6 has no
// route_localnet: a reply de-NATed back to ::1 arrives on the container's
// link and the kernel drops it. So, as docker-proxy does, netspawnd accepts
// on [::1]:PORT itself and splices each connection to the container (for
// UDP: relays each client's datagrams through a socket of its own).
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
	Proto    string // "tcp" (default) or "udp"
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
	ln     io.Closer // net.Listener (tcp) or net.PacketConn (udp)
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
		addr := netip.AddrPortFrom(p.listen, t.HostPort).String()
		ctx, cancel := context.WithCancel(context.Background())
		l := &listener{t: t, cancel: cancel}
		if t.Proto == "udp" {
			pc, err := net.ListenPacket("udp6", addr)
			if err != nil {
				cancel()
				errs = append(errs, fmt.Errorf("listen on udp [%s]:%d: %w", p.listen, t.HostPort, err))
				continue
			}
			l.ln = pc
			l.wg.Add(1)
			go p.serveUDP(ctx, l, pc)
		} else {
			ln, err := net.Listen("tcp6", addr)
			if err != nil {
				cancel()
				errs = append(errs, fmt.Errorf("listen on [%s]:%d: %w", p.listen, t.HostPort, err))
				continue
			}
			l.ln = ln
			l.wg.Add(1)
			go p.serve(ctx, l, ln)
		}
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

func (p *Proxy) serve(ctx context.Context, l *listener, ln net.Listener) {
	defer l.wg.Done()
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		c, err := ln.Accept()
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

// udpIdle is how long a UDP client's relay socket lives without traffic.
const udpIdle = 2 * time.Minute

// serveUDP relays datagrams: each client address gets a socket connected to
// the container, so replies find their way back to the right client.
func (p *Proxy) serveUDP(ctx context.Context, l *listener, pc net.PacketConn) {
	defer l.wg.Done()
	var mu sync.Mutex
	sessions := map[string]*net.UDPConn{}
	var relays sync.WaitGroup
	defer func() {
		mu.Lock()
		for _, s := range sessions {
			s.Close()
		}
		mu.Unlock()
		relays.Wait()
	}()
	target := net.UDPAddrFromAddrPort(netip.AddrPortFrom(l.t.Addr, l.t.Port))
	buf := make([]byte, 64*1024)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		key := from.String()
		mu.Lock()
		up, ok := sessions[key]
		if !ok {
			up, err = net.DialUDP("udp", nil, target)
			if err != nil {
				mu.Unlock()
				p.log.Debug("loopback forward: udp to container", "port", l.t.HostPort, "err", err)
				continue
			}
			sessions[key] = up
			relays.Add(1)
			go func(client net.Addr, up *net.UDPConn) {
				defer relays.Done()
				defer func() {
					mu.Lock()
					delete(sessions, client.String())
					mu.Unlock()
					up.Close()
				}()
				rb := make([]byte, 64*1024)
				for {
					_ = up.SetReadDeadline(time.Now().Add(udpIdle))
					m, err := up.Read(rb)
					if err != nil || ctx.Err() != nil {
						return
					}
					if _, err := pc.WriteTo(rb[:m], client); err != nil {
						return
					}
				}
			}(from, up)
		}
		mu.Unlock()
		_, _ = up.Write(buf[:n])
	}
}
