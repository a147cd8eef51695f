// Package hostsd fits netspawnd into a host run by systemd, where
// systemd-networkd and systemd-resolved may manage the network beside it:
// networkd is kept off netspawnd's links (its shipped 80-container-*.network
// files would run a second DHCP server on them and replace their
// addresses), and resolved is told which links answer for the machines'
// domain, so lookups through nss-resolve find machines whatever the order
// of nsswitch.conf.
package hostsd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/netspawn/netspawn/internal/atomicfile"
	"github.com/netspawn/netspawn/netctl/links"
)

// NetworkdDir is where networkd reads runtime .network files.
const NetworkdDir = "/run/systemd/network"

// UnmanagedFile is the .network file that keeps networkd off netspawnd's
// links. Its name sorts before networkd's 80-container-*.network: the first
// file that matches a link is the one networkd uses.
const UnmanagedFile = "10-netspawn-unmanaged.network"

// unmanaged matches the alternative name netspawnd marks its links with
// (links.MarkPrefix), never systemd-nspawn's own ve-, vb- and vz- links.
var unmanaged = `# Written by netspawnd: systemd-networkd leaves netspawn's container links
# (ve-*, vb-*, vz-* with the alternative name ` + links.MarkPrefix + `*) to netspawnd,
# which numbers them and serves DHCP and DNS on them. systemd-nspawn's own
# links keep networkd's 80-container-*.network.
[Match]
Name=` + links.MarkPrefix + `*

[Link]
Unmanaged=yes
`

// SystemdRunning reports whether systemd is the host's init (sd_booted).
func SystemdRunning() bool {
	st, err := os.Stat("/run/systemd/system")
	return err == nil && st.IsDir()
}

// KeepNetworkdAway writes UnmanagedFile into dir (NetworkdDir on a real
// host) and, when networkd runs, has it reload its configuration. It
// reports what it did, for the log.
func KeepNetworkdAway(ctx context.Context, dir string) (string, error) {
	p := filepath.Join(dir, UnmanagedFile)
	if b, err := os.ReadFile(p); err != nil || string(b) != unmanaged {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", err
		}
		if err := atomicfile.WriteFile(p, []byte(unmanaged), 0o644); err != nil {
			return "", err
		}
	}
	conn, err := dbus.ConnectSystemBus(dbus.WithContext(ctx))
	if err != nil {
		return p + " written; the system bus is not available to ask networkd to reload", nil
	}
	defer conn.Close()
	if !hasOwner(ctx, conn, "org.freedesktop.network1") {
		return p + " written; networkd is not running", nil
	}
	obj := conn.Object("org.freedesktop.network1", "/org/freedesktop/network1")
	if err := obj.CallWithContext(ctx, "org.freedesktop.network1.Manager.Reload", 0).Err; err != nil {
		return "", fmt.Errorf("asking networkd to reload after writing %s: %w", p, err)
	}
	return p + " written; networkd reloaded", nil
}

// hasOwner reports whether a bus name is taken (without activating it).
func hasOwner(ctx context.Context, conn *dbus.Conn, name string) bool {
	var ok bool
	err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, name).Store(&ok)
	return err == nil && ok
}

// ResolvedLink is what resolved is told of one link.
type ResolvedLink struct {
	Index  int
	Name   string
	DNS    []netip.AddrPort // netspawnd's DNS server for the link
	Domain string           // the machines' domain: a search domain on this link only
}

// Resolved tells a running systemd-resolved about netspawnd's links: their
// DNS server (netspawnd's) answers for the machines' domain, which is also
// a search domain there (so single-label machine names resolve), and
// nothing else goes there (no default route, no LLMNR or mDNS on them).
// Callers hold netspawnd's lock: Add only queues.
type Resolved struct {
	log  *slog.Logger
	reqs chan ResolvedLink
	done chan struct{}
}

// NewResolved starts the sender.
func NewResolved(log *slog.Logger) *Resolved {
	r := &Resolved{log: log, reqs: make(chan ResolvedLink, 256), done: make(chan struct{})}
	go r.loop()
	return r
}

// Add queues a link (dropped with a warning when the queue is full).
func (r *Resolved) Add(l ResolvedLink) {
	select {
	case r.reqs <- l:
	default:
		r.log.Warn("resolved: too many links queued; not told of this one", "link", l.Name)
	}
}

// Close stops the sender after what is queued.
func (r *Resolved) Close() {
	close(r.reqs)
	<-r.done
}

// NetifLinksDir is where networkd publishes each link's state.
const NetifLinksDir = "/run/systemd/netif/links"

func (r *Resolved) loop() {
	defer close(r.done)
	var conn *dbus.Conn
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		if conn != nil {
			conn.Close()
		}
	}()
	for l := range r.reqs {
		if conn == nil {
			// No dbus.WithContext: a connection given a context closes when
			// the context ends, and this one lives as long as the sender.
			c, err := dbus.ConnectSystemBus()
			if err != nil {
				r.log.Debug("resolved: no system bus", "err", err)
				continue
			}
			conn = c
		}
		// resolved takes settings from networkd for the links networkd
		// manages, and a link networkd has not decided on yet counts as
		// managed: settings given before networkd calls it unmanaged are
		// flushed (resolved-link.c, link_read_settings). Where networkd
		// runs, wait for its verdict.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		networkd := hasOwner(ctx, conn, "org.freedesktop.network1")
		cancel()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if networkd && !waitUnmanaged(NetifLinksDir, l.Index, 10*time.Second) {
				r.log.Warn("resolved: networkd did not leave the link to netspawnd; its DNS for the machines is not set there", "link", l.Name)
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			switch err := tellResolved(ctx, conn, l); {
			case errors.Is(err, errNotRunning):
				r.log.Debug("resolved is not running", "link", l.Name)
			case err != nil:
				r.log.Warn("resolved: could not register the machines' DNS on a link", "link", l.Name, "err", err)
			default:
				r.log.Debug("resolved told of link", "link", l.Name, "dns", l.DNS, "domain", l.Domain)
			}
		}()
	}
}

// waitUnmanaged waits until networkd's state of link index says it leaves
// the link alone, for at most d.
func waitUnmanaged(dir string, index int, d time.Duration) bool {
	p := filepath.Join(dir, strconv.Itoa(index))
	for end := time.Now().Add(d); ; time.Sleep(50 * time.Millisecond) {
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), "ADMIN_STATE=unmanaged") {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

var errNotRunning = errors.New("not running")

// tellResolved makes resolved's calls for one link, as resolvectl dns,
// domain, default-route, llmnr and mdns do.
func tellResolved(ctx context.Context, conn *dbus.Conn, l ResolvedLink) error {
	if !hasOwner(ctx, conn, "org.freedesktop.resolve1") {
		return errNotRunning
	}
	type addr struct {
		Family int32
		Addr   []byte
		Port   uint16
		Name   string
	}
	var dns []addr
	for _, a := range l.DNS {
		if a.Addr().Is4() {
			dns = append(dns, addr{2, a.Addr().AsSlice(), a.Port(), ""}) // AF_INET
		} else if a.IsValid() {
			dns = append(dns, addr{10, a.Addr().AsSlice(), a.Port(), ""}) // AF_INET6
		}
	}
	type domain struct {
		Domain      string
		RoutingOnly bool
	}
	obj := conn.Object("org.freedesktop.resolve1", "/org/freedesktop/resolve1")
	call := func(method string, args ...any) error {
		if err := obj.CallWithContext(ctx, "org.freedesktop.resolve1.Manager."+method, 0, append([]any{int32(l.Index)}, args...)...).Err; err != nil {
			return fmt.Errorf("%s: %w", method, err)
		}
		return nil
	}
	for _, c := range []struct {
		method string
		args   []any
	}{
		{"SetLinkDNSEx", []any{dns}},
		{"SetLinkDomains", []any{[]domain{{l.Domain, false}}}},
		{"SetLinkDefaultRoute", []any{false}},
		{"SetLinkLLMNR", []any{"no"}},
		{"SetLinkMulticastDNS", []any{"no"}},
		{"SetLinkDNSSEC", []any{"no"}},
	} {
		if err := call(c.method, c.args...); err != nil {
			return err
		}
	}
	return nil
}
