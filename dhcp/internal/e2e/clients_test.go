package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"

	"github.com/netspawn/netspawn/dhcp/lease"
	"github.com/netspawn/netspawn/dhcp/leasestore"
)

const (
	reservedMAC = "02:00:00:00:00:aa"
	reservedIP  = "10.9.0.5"
)

// want checks one recorded line for the reserved lease.
func wantReserved(t *testing.T, line string) {
	t.Helper()
	for _, w := range []string{"ip=" + reservedIP + " ", "router=" + serverIP + " ", "dns=" + serverIP + " ", "host=web ", "domain=machines "} {
		if !strings.Contains(line+" ", w) {
			t.Errorf("client recorded %q: missing %q", line, w)
		}
	}
}

const udhcpcHook = `echo "$1 ip=$ip router=$router dns=$dns host=$hostname domain=$domain search=$search mtu=$mtu mask=$mask" >> $REC
case "$1" in
bound|renew) ip addr flush dev $interface; ip addr add $ip/$mask dev $interface;;
deconfig) ip addr flush dev $interface;;
esac
`

func TestUdhcpcGetsReservedAddress(t *testing.T) {
	requireTool(t, "busybox")
	tp := newTopo(t, reservedMAC)
	tp.startServer(filepath.Join(tp.dir, "state"), "-reserve", reservedMAC+"="+reservedIP+"=web")
	script, rec := tp.recScript(udhcpcHook)
	out, err := nsCmd(tp.cli, "busybox", "udhcpc", "-f", "-q", "-n", "-i", "host0", "-s", script, "-t", "5", "-T", "1", "-O", "search", "-O", "mtu").CombinedOutput()
	if err != nil {
		t.Fatalf("udhcpc: %v\n%s", err, out)
	}
	line := waitLine(t, rec, 5*time.Second, "bound")
	wantReserved(t, line)
	if !strings.Contains(line, "search=machines") || !strings.Contains(line, "mtu=1400") {
		t.Errorf("requested options missing: %q", line)
	}
}

func TestDhclientGetsReservedAddress(t *testing.T) {
	requireTool(t, "dhclient")
	tp := newTopo(t, reservedMAC)
	tp.startServer(filepath.Join(tp.dir, "state"), "-reserve", reservedMAC+"="+reservedIP+"=web")
	script, rec := tp.recScript(`echo "$reason ip=$new_ip_address router=$new_routers dns=$new_domain_name_servers host=$new_host_name domain=$new_domain_name search=$new_domain_search mtu=$new_interface_mtu" >> $REC
`)
	conf := filepath.Join(tp.dir, "dhclient.conf")
	os.WriteFile(conf, []byte("request subnet-mask, routers, domain-name-servers, host-name, domain-name, domain-search, interface-mtu;\n"), 0o644)
	cmd := nsCmd(tp.cli, "dhclient", "-d", "-1", "-4", "-v", "-cf", conf, "-sf", script,
		"-lf", filepath.Join(tp.dir, "dhclient.leases"), "-pf", filepath.Join(tp.dir, "dhclient.pid"), "host0")
	logf, _ := os.Create(filepath.Join(tp.dir, "dhclient.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); logf.Close() })
	line := waitLine(t, rec, 20*time.Second, "BOUND")
	wantReserved(t, line)
	if !strings.Contains(line, "search=machines") || !strings.Contains(line, "mtu=1400") {
		t.Errorf("requested options missing: %q", line)
	}
}

func TestDhcpcdGetsReservedAddress(t *testing.T) {
	requireTool(t, "dhcpcd")
	tp := newTopo(t, reservedMAC)
	tp.startServer(filepath.Join(tp.dir, "state"), "-reserve", reservedMAC+"="+reservedIP+"=web")
	script, rec := tp.recScript(`echo "$reason ip=$new_ip_address router=$new_routers dns=$new_domain_name_servers host=$new_host_name domain=$new_domain_name search=$new_domain_search mtu=$new_interface_mtu" >> $REC
`)
	conf := filepath.Join(tp.dir, "dhcpcd.conf")
	os.WriteFile(conf, []byte("option domain_name_servers, domain_name, domain_search, host_name, interface_mtu\nnoarp\nnoipv6rs\n"), 0o644)
	// dhcpcd keeps state in /run/dhcpcd and /var/lib/dhcpcd: give it empty
	// ones in a private mount namespace, and our script instead of its hooks.
	run := fmt.Sprintf("mount -t tmpfs none /run && mkdir -p /var/lib/dhcpcd && mount -t tmpfs none /var/lib/dhcpcd && chown dhcpcd /var/lib/dhcpcd 2>/dev/null; exec dhcpcd -f %s -c %s -1 -4 -w -t 20 host0", conf, script)
	out, err := nsCmd(tp.cli, "unshare", "--mount", "--propagation", "private", "sh", "-c", run).CombinedOutput()
	if err != nil {
		t.Fatalf("dhcpcd: %v\n%s", err, out)
	}
	line := waitLine(t, rec, 5*time.Second, "BOUND")
	wantReserved(t, line)
	if ip := tp.sh(tp.cli, "ip -4 -o addr show dev host0"); !strings.Contains(ip, reservedIP+"/24") {
		t.Errorf("dhcpcd did not configure %s: %s", reservedIP, ip)
	}
}

// nclient runs fn with an nclient4 client on host0 in the client namespace;
// mk makes further clients that pose as other hardware addresses (they ask
// for broadcast replies, as their address is not host0's).
func nclient(t *testing.T, tp *topo, fn func(c *nclient4.Client, mk func(net.HardwareAddr) (*nclient4.Client, error)) error) {
	t.Helper()
	err := inNetns(tp.cli, func() error {
		var all []*nclient4.Client
		defer func() {
			for _, c := range all {
				c.Close()
			}
		}()
		mk := func(mac net.HardwareAddr) (*nclient4.Client, error) {
			opts := []nclient4.ClientOpt{nclient4.WithTimeout(2 * time.Second), nclient4.WithRetry(3)}
			if mac != nil {
				opts = append(opts, nclient4.WithHWAddr(mac))
			}
			c, err := nclient4.New("host0", opts...)
			if err == nil {
				all = append(all, c)
			}
			return c, err
		}
		c, err := mk(nil)
		if err != nil {
			return err
		}
		return fn(c, mk)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestNclient4ReservedDynamicReleaseDeclineNak(t *testing.T) {
	tp := newTopo(t, reservedMAC)
	srv := tp.startServer(filepath.Join(tp.dir, "state"), "-reserve", reservedMAC+"="+reservedIP+"=web")
	ctx := context.Background()
	other := net.HardwareAddr{2, 0, 0, 0, 0, 0xbb}
	// INFORM comes from a client that has an address (outside the pool).
	tp.sh(tp.cli, "ip addr add 10.9.0.50/24 dev host0")
	nclient(t, tp, func(c *nclient4.Client, mk func(net.HardwareAddr) (*nclient4.Client, error)) error {
		// Reserved address, router, DNS, host name.
		l, err := c.Request(ctx, dhcpv4.WithRequestedOptions(dhcpv4.OptionHostName))
		if err != nil {
			return fmt.Errorf("reserved request: %w", err)
		}
		a := l.ACK
		if a.YourIPAddr.String() != reservedIP || a.Router()[0].String() != serverIP || a.DNS()[0].String() != serverIP || a.HostName() != "web" {
			return fmt.Errorf("reserved ACK: %s", a.Summary())
		}
		// A dynamic client (another chaddr) gets a pool address.
		co, err := mk(other)
		if err != nil {
			return err
		}
		bc := dhcpv4.WithBroadcast(true)
		dyn, err := co.Request(ctx, bc)
		if err != nil {
			return fmt.Errorf("dynamic request: %w", err)
		}
		ip := dyn.ACK.YourIPAddr
		if ip[3] < 100 || ip[3] > 199 {
			return fmt.Errorf("dynamic address %v outside the pool", ip)
		}
		// RELEASE frees it: a third client asking for it gets it.
		// (nclient4.Release sends from 0.0.0.0 to the server's unicast
		// address, which the kernel drops as a martian: a real client
		// releases from its own address. Broadcast it instead.)
		rm, err := dhcpv4.NewReleaseFromACK(dyn.ACK)
		if err != nil {
			return err
		}
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err = co.SendAndRead(short, co.RemoteAddr(), rm, nil)
		cancel()
		if err == nil {
			return fmt.Errorf("RELEASE was answered")
		}
		third := net.HardwareAddr{2, 0, 0, 0, 0, 0xcc}
		c3, err := mk(third)
		if err != nil {
			return err
		}
		rel, err := c3.Request(ctx, bc, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip)))
		if err != nil || !rel.ACK.YourIPAddr.Equal(ip) {
			return fmt.Errorf("released address not given again: %v %v", rel, err)
		}
		// DECLINE: the client reports a conflict; its next lease is another address.
		decl, err := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeDecline), dhcpv4.WithHwAddr(third),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip)), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP(serverIP))))
		if err != nil {
			return err
		}
		short, cancel = context.WithTimeout(ctx, 300*time.Millisecond)
		_, err = c3.SendAndRead(short, c3.RemoteAddr(), decl, nil)
		cancel()
		if err == nil {
			return fmt.Errorf("DECLINE was answered")
		}
		again, err := c3.Request(ctx, bc)
		if err != nil || again.ACK.YourIPAddr.Equal(ip) {
			return fmt.Errorf("after DECLINE: %v %v", again, err)
		}
		// INIT-REBOOT for an address of another subnet: NAK.
		reboot, err := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithHwAddr(third),
			dhcpv4.WithBroadcast(true), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(192, 168, 77, 7))))
		if err != nil {
			return err
		}
		nak, err := c3.SendAndRead(ctx, c3.RemoteAddr(), reboot, nclient4.IsMessageType(dhcpv4.MessageTypeNak, dhcpv4.MessageTypeAck))
		if err != nil || nak.MessageType() != dhcpv4.MessageTypeNak {
			return fmt.Errorf("wrong-subnet INIT-REBOOT: %v %v", nak, err)
		}
		// INFORM: an ACK with options and no address.
		inf, err := c.Inform(ctx, net.IPv4(10, 9, 0, 50))
		if err != nil || !inf.YourIPAddr.IsUnspecified() || inf.DNS() == nil {
			return fmt.Errorf("INFORM: %v %v", inf, err)
		}
		return nil
	})
	_ = srv
}

// TestLeaseSurvivesKill9 binds udhcpc, kills the server with SIGKILL, starts
// a new one on the same state directory and checks that udhcpc's renewal is
// acknowledged with the same address and that no one else gets it.
func TestLeaseSurvivesKill9(t *testing.T) {
	requireTool(t, "busybox")
	tp := newTopo(t, "02:00:00:00:00:dd")
	state := filepath.Join(tp.dir, "state")
	// No reservation: a dynamic lease, the harder case. A 20s lease makes
	// udhcpc renew after 10s.
	srv := tp.startServer(state, "-lease-time", "20s")
	script, rec := tp.recScript(udhcpcHook)
	cmd := nsCmd(tp.cli, "busybox", "udhcpc", "-f", "-i", "host0", "-s", script, "-t", "5", "-T", "1")
	logf, _ := os.Create(filepath.Join(tp.dir, "udhcpc.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); logf.Close() })
	bound := waitLine(t, rec, 10*time.Second, "bound")
	ip := field(bound, "ip")
	srv.kill() // SIGKILL between the ACK and the renewal
	tp.startServer(state, "-lease-time", "20s")
	renew := waitLine(t, rec, 30*time.Second, "renew")
	if got := field(renew, "ip"); got != ip {
		t.Fatalf("renewed %s, bound %s", got, ip)
	}
	// Nobody else gets that address.
	nclient(t, tp, func(_ *nclient4.Client, mk func(net.HardwareAddr) (*nclient4.Client, error)) error {
		for i := 0; i < 5; i++ {
			c, err := mk(net.HardwareAddr{2, 0, 0, 0, 1, byte(i)})
			if err != nil {
				return err
			}
			l, err := c.Request(context.Background(), dhcpv4.WithBroadcast(true))
			if err != nil {
				return err
			}
			if l.ACK.YourIPAddr.String() == ip {
				return fmt.Errorf("address %s given twice after restart", ip)
			}
		}
		return nil
	})
	// The log (a copy: the server is running) has it bound to udhcpc.
	cp := filepath.Join(tp.dir, "copy")
	os.MkdirAll(cp, 0o700)
	b, _ := os.ReadFile(filepath.Join(state, leasestore.FileName))
	os.WriteFile(filepath.Join(cp, leasestore.FileName), b, 0o600)
	st, err := leasestore.Open(cp, leasestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n := 0
	for _, l := range st.Leases("ve-t") {
		if l.IP.String() == ip && l.State == lease.Bound {
			n++
			if l.MAC.String() != "02:00:00:00:00:dd" {
				t.Errorf("lease of %s held by %v", ip, l.MAC)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d bound leases for %s", n, ip)
	}
}

func field(line, key string) string {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}
