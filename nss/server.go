package nss

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/netspawn/netspawn/dns"
)

// SocketName is the socket's file name in the runtime directory
// (/run/netspawn/nss.sock by default).
const SocketName = "nss.sock"

// Server answers the NSS module from a name source. The host sees every
// machine (no views).
type Server struct {
	// Source provides the names.
	Source dns.Source
	// Domain, when set, is stripped from names (NAME.<domain> resolves
	// like NAME).
	Domain string
	// Logger; slog.Default() when nil.
	Logger *slog.Logger
}

// Serve answers on l (a "unixpacket" listener) until ctx is done, with
// the default domain (NAME and NAME.netspawn.internal both resolve). Use
// a Server for another domain.
func Serve(ctx context.Context, l net.Listener, src dns.Source) error {
	return (&Server{Source: src, Domain: dns.DefaultDomain}).Serve(ctx, l)
}

// Listen creates the module's socket at path (removing a stale one),
// readable and writable by every user: any process on the host may look
// up names.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("nss: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("nss: remove stale socket: %w", err)
	}
	l, err := net.Listen("unixpacket", path)
	if err != nil {
		return nil, fmt.Errorf("nss: listen %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		l.Close()
		return nil, fmt.Errorf("nss: chmod %s: %w", path, err)
	}
	return l, nil
}

// Serve answers on l until ctx is done; it closes l.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	var wg sync.WaitGroup
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	defer wg.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("nss: accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(c, log)
		}()
	}
}

// serveConn answers requests on one connection (the module sends one).
func (s *Server) serveConn(c net.Conn, log *slog.Logger) {
	defer c.Close()
	buf := make([]byte, MaxRequest+1)
	out := make([]byte, 0, MaxReply)
	for {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil || n == 0 {
			return
		}
		req, err := ParseRequest(buf[:n])
		if err != nil {
			log.Debug("nss: bad request", "err", err)
			return
		}
		out = AppendReply(out[:0], s.Answer(req))
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// Answer computes the reply to one request.
func (s *Server) Answer(req Request) Reply {
	if s.Source == nil {
		return Reply{Status: StatusError}
	}
	switch req.Op {
	case OpByName:
		name := dns.Canonical(req.Name)
		if s.Domain != "" {
			d := "." + dns.Canonical(s.Domain)
			name = strings.TrimSuffix(name, d)
		}
		if name == "" || strings.Contains(name, ".") {
			return Reply{Status: StatusNotFound}
		}
		r, ok := s.Source.Lookup(name)
		if !ok {
			return Reply{Status: StatusNotFound}
		}
		rep := Reply{Status: StatusFound, Name: r.Name}
		if req.Family != FamilyIPv6 {
			rep.IPv4 = r.IPv4
		}
		if req.Family != FamilyIPv4 {
			rep.IPv6 = r.IPv6
		}
		if len(rep.IPv4) == 0 && len(rep.IPv6) == 0 {
			return Reply{Status: StatusNoData}
		}
		return rep
	case OpByAddr:
		r, ok := s.Source.LookupAddr(req.Addr)
		if !ok || r.Name == "" || len(r.Name) > 255 {
			return Reply{Status: StatusNotFound}
		}
		return Reply{Status: StatusFound, Name: r.Name}
	}
	return Reply{Status: StatusError}
}
