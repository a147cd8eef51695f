package netctl_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/netspawn/netspawn/netctl/api"
	"github.com/netspawn/netspawn/netctl/internal/nstest"
)

// world is a host with an uplink to an "internet" namespace:
// host up0 203.0.113.1/24 <-> inet eth0 203.0.113.2/24.
func world(t *testing.T, e *env) (inet *nstest.NetNS) {
	inet = nstest.New(t, "inet")
	e.host.MustRun(t, "ip", "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", inet.Name)
	e.host.MustRun(t, "ip", "addr", "add", "203.0.113.1/24", "dev", "up0")
	e.host.MustRun(t, "ip", "link", "set", "up0", "up")
	inet.MustRun(t, "ip", "addr", "add", "203.0.113.2/24", "dev", "eth0")
	inet.MustRun(t, "ip", "link", "set", "eth0", "up")
	e.host.MustRun(t, "ip", "route", "add", "default", "via", "203.0.113.2")
	return inet
}

func nsArg(n *nstest.NetNS) string { return "--net=" + n.Path }

func register(t *testing.T, cl *api.Client, name string, c *container, ports ...api.Port) api.RegisterReply {
	t.Helper()
	r, err := cl.Register(context.Background(), api.RegisterRequest{Name: name, Leader: c.pid, Network: api.NetworkRequest{Veth: true, Ports: ports}})
	if err != nil {
		t.Fatal(err)
	}
	c.configure(t, r)
	return r
}

func expect(t *testing.T, what, ns, url, want string) {
	t.Helper()
	got, err := fetch(ns, url)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	got = strings.TrimSuffix(strings.TrimPrefix(got, "[::ffff:"), "]") // busybox httpd's REMOTE_ADDR
	if got != want {
		t.Fatalf("%s: got %q, want %q", what, got, want)
	}
}

func TestTrafficMasqueradeAndForwards(t *testing.T) {
	e := newEnv(t)
	inet := world(t, e)
	httpd(t, nsArg(inet), 80, "internet")
	e.startDaemon()
	cl := e.client()
	a, b := e.container(), e.container()
	ra := register(t, cl, "a", a, api.Port{Protocol: "tcp", HostPort: 8080, ContainerPort: 80})
	register(t, cl, "b", b)
	httpd(t, a.ns(), 80, "hello from a")
	gwA := ra.Interfaces[0].Gateway4

	if fw, _ := e.host.Run("cat", "/proc/sys/net/ipv4/ip_forward"); strings.TrimSpace(fw) != "1" {
		t.Fatalf("ip_forward is %q", fw)
	}
	// The container reaches the internet, masqueraded as the uplink address.
	expect(t, "masquerade", b.ns(), "http://203.0.113.2/cgi-bin/ip", "203.0.113.1")
	// The forward from another host, through the host's uplink address.
	expect(t, "forward from a remote host", nsArg(inet), "http://203.0.113.1:8080/", "hello from a")
	// From the host itself, to its uplink address and to 127.0.0.1.
	expect(t, "forward from the host", nsArg(e.host), "http://203.0.113.1:8080/", "hello from a")
	expect(t, "forward from 127.0.0.1", nsArg(e.host), "http://127.0.0.1:8080/", "hello from a")
	// What a sees as the client address for localhost connections: its gateway.
	expect(t, "localhost client seen as the gateway", nsArg(e.host), "http://127.0.0.1:8080/cgi-bin/ip", gwA)
	// Hairpin: from another container, and from a itself, via the host address.
	expect(t, "hairpin from another container", b.ns(), "http://203.0.113.1:8080/", "hello from a")
	expect(t, "hairpin to itself", a.ns(), "http://203.0.113.1:8080/", "hello from a")
	// Remote clients keep their address (no masquerade on plain DNAT).
	expect(t, "remote client address preserved", nsArg(inet), "http://203.0.113.1:8080/cgi-bin/ip", "203.0.113.2")
}

func TestDaemonKilledAndRestarted(t *testing.T) {
	e := newEnv(t)
	inet := world(t, e)
	e.startDaemon()
	cl := e.client()
	a, b, d := e.container(), e.container(), e.container()
	ra := register(t, cl, "a", a, api.Port{Protocol: "tcp", HostPort: 8080, ContainerPort: 80})
	rb := register(t, cl, "b", b, api.Port{Protocol: "tcp", HostPort: 8081, ContainerPort: 80})
	register(t, cl, "dies", d, api.Port{Protocol: "tcp", HostPort: 8082, ContainerPort: 80})
	httpd(t, a.ns(), 80, "a")
	httpd(t, b.ns(), 80, "b")
	expect(t, "a before", nsArg(inet), "http://203.0.113.1:8080/", "a")
	idxBefore := ifindex(t, e, "ve-a")

	e.stopDaemon(syscall.SIGKILL)
	// While it is down: one machine dies.
	d.kill()
	// The forwards keep working without the daemon.
	expect(t, "a while the daemon is down", nsArg(inet), "http://203.0.113.1:8080/", "a")

	e.startDaemon()
	// The old client reconnects by itself.
	ms, err := cl.List(context.Background())
	if err != nil || len(ms) != 2 {
		t.Fatalf("old client after restart: %+v %v", ms, err)
	}
	cl = e.client()
	ms, err = cl.List(context.Background())
	if err != nil || len(ms) != 2 {
		t.Fatalf("after restart: %+v %v", ms, err)
	}
	if idx := ifindex(t, e, "ve-a"); idx != idxBefore {
		t.Fatalf("ve-a was recreated (ifindex %s -> %s)", idxBefore, idx)
	}
	if e.linkExists("ve-dies") || strings.Contains(e.nftTable(), "8082") {
		t.Fatalf("dead machine not cleaned up:\n%s", e.nftTable())
	}
	expect(t, "a after restart", nsArg(inet), "http://203.0.113.1:8080/", "a")
	expect(t, "b after restart", nsArg(e.host), "http://127.0.0.1:8081/", "b")
	// A new machine gets an address nobody else has, and the dead machine's
	// subnet stays reserved for it.
	c := e.container()
	rc := register(t, cl, "c", c)
	seen := map[string]string{}
	nets, _ := cl.Networks(context.Background())
	for _, n := range nets {
		if o, dup := seen[n.Subnet]; dup {
			t.Fatalf("subnet %s handed to %s and %s", n.Subnet, o, n.Machine)
		}
		seen[n.Subnet] = n.Machine
	}
	for _, r := range []api.RegisterReply{ra, rb} {
		if r.Interfaces[0].Addresses[0] == rc.Interfaces[0].Addresses[0] {
			t.Fatalf("duplicate address %s", rc.Interfaces[0].Addresses[0])
		}
	}
	if len(nets) != 4 {
		t.Fatalf("networks: %+v", nets)
	}
	// A leader killed after the restart is noticed through the re-opened pidfd.
	b.kill()
	waitFor(t, "cleanup of b", func() bool { return !e.linkExists("ve-b") })

	// SIGTERM leaves the networking in place.
	e.stopDaemon(syscall.SIGTERM)
	expect(t, "a after SIGTERM", nsArg(inet), "http://203.0.113.1:8080/", "a")
	if _, err := os.Stat(e.rt + "/machines.d/a.json"); err != nil {
		t.Fatal(err)
	}
}

func ifindex(t *testing.T, e *env, link string) string {
	t.Helper()
	out := e.host.MustRun(t, "ip", "-o", "link", "show", "dev", link)
	i, _, _ := strings.Cut(out, ":")
	if _, err := strconv.Atoi(i); err != nil {
		t.Fatalf("ip link output %q", out)
	}
	return i
}

// TestNoIPv6 runs netspawnd with --no-ipv6: a machine gets IPv4 only, the
// host side of its link has IPv6 off (no link-local address and no routes,
// which the kernel would walk on every link event of the host), and IPv4
// works through it: to the container, its forward from 127.0.0.1, and out
// through the masquerade. It stays so when netspawnd restarts.
func TestNoIPv6(t *testing.T) {
	e := newEnv(t, "--no-ipv6")
	inet := world(t, e)
	httpd(t, nsArg(inet), 80, "internet")
	e.startDaemon()
	cl := e.client()
	a := e.container()
	r := register(t, cl, "four", a, api.Port{Protocol: "tcp", HostPort: 8084, ContainerPort: 80})
	httpd(t, a.ns(), 80, "hello over IPv4")
	ifc := r.Interfaces[0]
	for _, addr := range ifc.Addresses {
		if strings.Contains(addr, ":") {
			t.Errorf("IPv6 address %s given with --no-ipv6", addr)
		}
	}
	if ifc.Gateway6 != "" {
		t.Errorf("IPv6 gateway %s given with --no-ipv6", ifc.Gateway6)
	}
	host := r.HostLinks[0]
	checkOff := func(when string) {
		t.Helper()
		if v := strings.TrimSpace(e.host.MustRun(t, "cat", "/proc/sys/net/ipv6/conf/"+host+"/disable_ipv6")); v != "1" {
			t.Errorf("%s: disable_ipv6 on %s is %q, want 1", when, host, v)
		}
		if out := strings.TrimSpace(e.host.MustRun(t, "ip", "-6", "addr", "show", "dev", host)); out != "" {
			t.Errorf("%s: IPv6 addresses on %s:\n%s", when, host, out)
		}
		if out := strings.TrimSpace(e.host.MustRun(t, "ip", "-6", "route", "show", "table", "all", "dev", host)); out != "" {
			t.Errorf("%s: IPv6 routes on %s:\n%s", when, host, out)
		}
	}
	checkOff("registered")
	addr := strings.Split(ifc.Addresses[0], "/")[0]
	expect(t, "the container from the host", nsArg(e.host), "http://"+addr+"/", "hello over IPv4")
	expect(t, "forward from 127.0.0.1", nsArg(e.host), "http://127.0.0.1:8084/", "hello over IPv4")
	expect(t, "masquerade", a.ns(), "http://203.0.113.2/cgi-bin/ip", "203.0.113.1")

	e.stopDaemon(syscall.SIGKILL)
	e.startDaemon()
	cl = e.client()
	waitFor(t, "the machine kept after the restart", func() bool {
		ms, err := cl.List(context.Background())
		return err == nil && len(ms) == 1
	})
	checkOff("after a restart")
	expect(t, "forward from 127.0.0.1 after a restart", nsArg(e.host), "http://127.0.0.1:8084/", "hello over IPv4")
}
