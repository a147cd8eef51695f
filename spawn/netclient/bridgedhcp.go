package netclient

// The DHCP client of bridged containers in command mode: netspawn's parent
// obtains host0's lease from the LAN's own DHCP server (nclient4), hands the
// address to the container's first process with the rest of the network
// setup, renews it while the container runs and releases it on exit. A
// booted OS runs its own client instead.
//
// The client's sockets are opened inside the container's network namespace
// on a locked OS thread that is then discarded; sockets keep their
// namespace, so the parent uses them afterwards from any goroutine, and
// they keep the namespace (and host0) alive until the lease is released,
// even when the container has already exited.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/netspawn/netspawn/spawn"
	"github.com/netspawn/netspawn/spawn/config"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Environment variables tuning the bridged DHCP client.
const (
	// EnvDHCPTimeout: how long to wait for a lease ("15s" by default; a Go
	// duration or a number of seconds).
	EnvDHCPTimeout = "NETSPAWN_DHCP_TIMEOUT"
	// EnvDHCPOptional: "yes" starts the container without an address on
	// host0 when no lease came within the timeout (default: fail).
	EnvDHCPOptional = "NETSPAWN_DHCP_OPTIONAL"
	// EnvDHCPRenew: renew every this long instead of at T1 (tests).
	EnvDHCPRenew = "NETSPAWN_DHCP_RENEW"
)

const defaultDHCPTimeout = 15 * time.Second

func envDuration(name string, def time.Duration) (time.Duration, error) {
	v := strings.TrimSpace(os.Getenv(name))
	if v == "" {
		return def, nil
	}
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s=%q: want a duration such as 15s", name, v)
	}
	return d, nil
}

func envYes(name string) bool {
	b, err := config.ParseBool(strings.TrimSpace(os.Getenv(name)))
	return err == nil && b
}

// bridgeLease is host0's lease, held by netspawn's parent.
type bridgeLease struct {
	ns     *os.File // the container's network namespace
	ifname string
	client *nclient4.Client
	lease  *nclient4.Lease
	warn   func(string, ...any)
	cancel context.CancelFunc
	done   chan struct{}
}

// openDHCPClient brings ifname up in the leader's network namespace and
// opens a DHCP client on it, on a discarded thread.
func openDHCPClient(ns *os.File, ifname string) (*nclient4.Client, error) {
	type res struct {
		c   *nclient4.Client
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: this thread ends with the goroutine.
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- res{err: fmt.Errorf("enter the container's network namespace: %w", err)}
			return
		}
		l, err := netlink.LinkByName(ifname)
		if err != nil {
			ch <- res{err: fmt.Errorf("find %s in the container: %w", ifname, err)}
			return
		}
		if err := netlink.LinkSetUp(l); err != nil {
			ch <- res{err: fmt.Errorf("bring up %s: %w", ifname, err)}
			return
		}
		c, err := nclient4.New(ifname, nclient4.WithTimeout(2*time.Second), nclient4.WithRetry(1<<20))
		if err != nil {
			ch <- res{err: fmt.Errorf("DHCP client on %s: %w", ifname, err)}
			return
		}
		ch <- res{c: c}
	}()
	r := <-ch
	return r.c, r.err
}

// acquireLease gets a lease for ifname in the leader's namespace and
// returns how to configure it. With no lease within the timeout it fails,
// or, when EnvDHCPOptional says so, returns a nil lease and an empty setup.
func acquireLease(ctx context.Context, leaderPID int, ifname string, warn func(string, ...any)) (*bridgeLease, spawn.InterfaceSetup, []string, []string, error) {
	setup := spawn.InterfaceSetup{Name: ifname}
	timeout, err := envDuration(EnvDHCPTimeout, defaultDHCPTimeout)
	if err != nil {
		return nil, setup, nil, nil, err
	}
	ns, err := os.Open("/proc/" + strconv.Itoa(leaderPID) + "/ns/net")
	if err != nil {
		return nil, setup, nil, nil, fmt.Errorf("open the container's network namespace: %w", err)
	}
	c, err := openDHCPClient(ns, ifname)
	if err != nil {
		ns.Close()
		return nil, setup, nil, nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	lease, err := requestLease(rctx, c)
	cancel()
	if err != nil {
		c.Close()
		ns.Close()
		msg := fmt.Sprintf("no DHCP lease for %s from the bridge's LAN within %s (is a DHCP server answering on that bridge?)", ifname, timeout)
		if envYes(EnvDHCPOptional) {
			warn("%s; starting without an address as %s=yes asks", msg, EnvDHCPOptional)
			return nil, setup, nil, nil, nil
		}
		return nil, setup, nil, nil, fmt.Errorf("%s: %v; set %s=yes to start without an address, or %s to wait longer", msg, err, EnvDHCPOptional, EnvDHCPTimeout)
	}
	bl := &bridgeLease{ns: ns, ifname: ifname, client: c, lease: lease, warn: warn}
	setup, dns, search := leaseSetup(ifname, lease.ACK)
	return bl, setup, dns, search, nil
}

// requestLease runs DISCOVER to ACK until it gets a lease or ctx ends. A
// NAK starts over (RFC 2131 4.4.1): on a busy LAN the server may offer one
// address to two clients at once and refuse the second REQUEST ("address in
// use").
func requestLease(ctx context.Context, c *nclient4.Client) (*nclient4.Lease, error) {
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 2*time.Second) {
		lease, err := c.Request(ctx)
		var nak *nclient4.ErrNak
		if err == nil || !errors.As(err, &nak) {
			return lease, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(delay):
		}
	}
}

// leaseSetup turns an ACK into interface configuration (pure).
func leaseSetup(ifname string, ack *dhcpv4.DHCPv4) (spawn.InterfaceSetup, []string, []string) {
	s := spawn.InterfaceSetup{Name: ifname}
	mask := ack.SubnetMask()
	if mask == nil {
		mask = ack.YourIPAddr.DefaultMask()
	}
	ones, _ := mask.Size()
	s.Addresses = []string{(&net.IPNet{IP: ack.YourIPAddr.To4(), Mask: net.CIDRMask(ones, 32)}).String()}
	if rs := ack.Router(); len(rs) > 0 {
		s.Gateway4 = rs[0].String()
	}
	var dns, search []string
	for _, d := range ack.DNS() {
		dns = append(dns, d.String())
	}
	if l := ack.DomainSearch(); l != nil {
		search = append(search, l.Labels...)
	} else if d := ack.DomainName(); d != "" {
		search = append(search, d)
	}
	return s, dns, search
}

// renewAt returns when to renew a lease (T1: the server's, else half the
// lease time), or every override when set.
func renewAt(ack *dhcpv4.DHCPv4, override time.Duration) time.Duration {
	if override > 0 {
		return override
	}
	lt := ack.IPAddressLeaseTime(time.Hour)
	return ack.IPAddressRenewalTime(lt / 2)
}

// start renews the lease in the background until stop.
func (b *bridgeLease) start() {
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel, b.done = cancel, make(chan struct{})
	override, err := envDuration(EnvDHCPRenew, 0)
	if err != nil {
		b.warn("%v", err)
	}
	go func() {
		defer close(b.done)
		wait := renewAt(b.lease.ACK, override)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
			nl, err := b.client.Renew(rctx, b.lease)
			var nak *nclient4.ErrNak
			if errors.As(err, &nak) {
				// The server refuses the address: start over.
				b.warn("the LAN's DHCP server refused to renew %s on %s; asking for a new lease", b.lease.ACK.YourIPAddr, b.ifname)
				nl, err = b.client.Request(rctx)
			}
			rcancel()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				b.warn("renewing the DHCP lease of %s: %v (retrying)", b.ifname, err)
				wait = 10 * time.Second
				continue
			}
			if !nl.ACK.YourIPAddr.Equal(b.lease.ACK.YourIPAddr) {
				if err := b.reconfigure(b.lease.ACK, nl.ACK); err != nil {
					b.warn("moving %s from %s to %s: %v", b.ifname, b.lease.ACK.YourIPAddr, nl.ACK.YourIPAddr, err)
				}
			}
			b.lease = nl
			wait = renewAt(nl.ACK, override)
		}
	}()
}

// reconfigure moves the interface from the old lease's address to the new
// one (and its default route), in the container's namespace on a
// discarded thread. resolv.conf is left as the payload may have changed it.
func (b *bridgeLease) reconfigure(old, cur *dhcpv4.DHCPv4) error {
	is, _, _ := leaseSetup(b.ifname, cur)
	prev, _, _ := leaseSetup(b.ifname, old)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: this thread ends with the goroutine.
		if err := unix.Setns(int(b.ns.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter the container's network namespace: %w", err)
			return
		}
		l, err := netlink.LinkByName(b.ifname)
		if err != nil {
			errc <- err
			return
		}
		na, err := netlink.ParseAddr(is.Addresses[0])
		if err != nil {
			errc <- err
			return
		}
		// The old one first: deleting a primary address also deletes the
		// secondaries of its subnet (unless promote_secondaries is on).
		if oa, err := netlink.ParseAddr(prev.Addresses[0]); err == nil && !oa.IP.Equal(na.IP) {
			_ = netlink.AddrDel(l, oa)
		}
		if err := netlink.AddrReplace(l, na); err != nil {
			errc <- err
			return
		}
		if gw := net.ParseIP(is.Gateway4); gw != nil {
			if err := netlink.RouteReplace(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: gw}); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	return <-errc
}

// release stops renewing and gives the lease back to the LAN's server.
func (b *bridgeLease) release() error {
	if b.cancel != nil {
		b.cancel()
		<-b.done
	}
	err := b.sendRelease()
	b.client.Close()
	b.ns.Close()
	if err != nil {
		return fmt.Errorf("releasing the DHCP lease of %s: %w", b.ifname, err)
	}
	return nil
}

// sendRelease sends DHCPRELEASE from the leased address to the server, as
// RFC 2131 4.4.4 wants (a packet from 0.0.0.0 to a unicast address is a
// martian the server's kernel drops), over a UDP socket opened in the
// container's namespace on a discarded thread.
func (b *bridgeLease) sendRelease() error {
	msg, err := dhcpv4.NewReleaseFromACK(b.lease.ACK)
	if err != nil {
		return err
	}
	server := b.lease.ACK.ServerIdentifier()
	if server == nil {
		return fmt.Errorf("the lease names no server")
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: this thread ends with the goroutine.
		if err := unix.Setns(int(b.ns.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter the container's network namespace: %w", err)
			return
		}
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: b.lease.ACK.YourIPAddr, Port: nclient4.ClientPort})
		if err != nil {
			errc <- err
			return
		}
		defer conn.Close()
		_, err = conn.WriteToUDP(msg.ToBytes(), &net.UDPAddr{IP: server, Port: nclient4.ServerPort})
		errc <- err
	}()
	return <-errc
}
