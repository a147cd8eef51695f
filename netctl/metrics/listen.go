package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sys/unix"
)

// Endpoint is where /metrics is served: a TCP address or a Unix socket.
type Endpoint struct {
	Network string // "tcp" or "unix"
	Address string // HOST:PORT, or the socket's path
}

// ParseEndpoint reads --metrics-listen: "HOST:PORT" (an IP address, or
// "localhost") or "unix:/PATH". A HOST that is not a loopback address
// (a wildcard like ":9153" or "0.0.0.0:9153" included) is refused unless
// public is set: the metrics name machines and links, and netspawnd
// never puts them on the network unasked.
func ParseEndpoint(s string, public bool) (Endpoint, error) {
	if path, ok := strings.CutPrefix(s, "unix:"); ok {
		if !strings.HasPrefix(path, "/") {
			return Endpoint{}, fmt.Errorf("metrics listener %q: want unix:/ABSOLUTE/PATH", s)
		}
		return Endpoint{Network: "unix", Address: path}, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return Endpoint{}, fmt.Errorf("metrics listener %q: want HOST:PORT (e.g. 127.0.0.1:9153) or unix:/PATH", s)
	}
	if _, err := net.LookupPort("tcp", port); err != nil || port == "" {
		return Endpoint{}, fmt.Errorf("metrics listener %q: bad port %q", s, port)
	}
	loopback := false
	switch {
	case host == "localhost":
		loopback = true
	case host == "":
	default:
		a, err := netip.ParseAddr(host)
		if err != nil {
			return Endpoint{}, fmt.Errorf("metrics listener %q: %q is not an IP address (or localhost)", s, host)
		}
		loopback = a.Unmap().IsLoopback()
	}
	if !loopback && !public {
		return Endpoint{}, fmt.Errorf("metrics listener %q is not a loopback address: the metrics name machines and links; add --metrics-public to serve them on the network anyway", s)
	}
	return Endpoint{Network: "tcp", Address: s}, nil
}

// Listen opens the endpoint. A Unix socket replaces a stale one and is
// made mode 0600 (root reads the metrics; chmod or a proxy for others).
func Listen(ep Endpoint) (net.Listener, error) {
	if ep.Network == "unix" {
		if fi, err := os.Lstat(ep.Address); err == nil && fi.Mode()&os.ModeSocket != 0 {
			_ = os.Remove(ep.Address)
		}
		old := unix.Umask(0o177)
		ln, err := net.Listen("unix", ep.Address)
		unix.Umask(old)
		if err != nil {
			return nil, fmt.Errorf("metrics listener: %w", err)
		}
		return ln, nil
	}
	ln, err := net.Listen(ep.Network, ep.Address)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	return ln, nil
}

// Handler serves /metrics (and a pointer to it on /).
func (m *Metrics) Handler(log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog: slogPrinter{log}, ErrorHandling: promhttp.ContinueOnError, Registry: m.reg}))
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "netspawnd: metrics at /metrics")
	})
	return mux
}

type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) {
	p.log.Warn("metrics: " + strings.TrimSpace(fmt.Sprintln(v...)))
}

// Serve serves the metrics on ln until ctx ends.
func (m *Metrics) Serve(ctx context.Context, ln net.Listener, log *slog.Logger) error {
	srv := &http.Server{Handler: m.Handler(log), ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second,
		IdleTimeout: time.Minute}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	defer stop()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
