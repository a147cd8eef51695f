package dns

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/netspawn/netspawn/internal/testutil"
)

// End-to-end tests: three network namespaces made by the test, joined by
// veth pairs. "host" runs netspawn's server (a child process of the test
// binary) on the gateway address 10.98.0.1 and on 127.0.0.1; "ctr" plays a
// container at 10.98.0.2; "up" runs an upstream DNS server at 10.99.0.2
// that serves example.test. Queries are made with dig.

const helperEnv = "NETSPAWN_DNS_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "upstream":
		helperUpstream()
	case "server":
		helperServer()
	}
}

func helperFail(err error) {
	fmt.Fprintln(os.Stderr, "helper:", err)
	os.Exit(1)
}

func waitSignal() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}

// helperUpstream serves example.test. on 10.99.0.2:53 (UDP and TCP).
func helperUpstream() {
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		if strings.EqualFold(q.Name, "example.test.") && q.Qtype == dns.TypeA {
			rr, _ := dns.NewRR("example.test. 300 IN A 10.1.2.3")
			m.Answer = append(m.Answer, rr)
		} else {
			m.Rcode = dns.RcodeNameError
			soa, _ := dns.NewRR("test. 60 IN SOA ns.test. h.test. 1 2 3 4 30")
			m.Ns = append(m.Ns, soa)
		}
		_ = w.WriteMsg(m)
	})
	pc, err := net.ListenPacket("udp4", "10.99.0.2:53")
	if err != nil {
		helperFail(err)
	}
	l, err := net.Listen("tcp4", "10.99.0.2:53")
	if err != nil {
		helperFail(err)
	}
	go func() { _ = (&dns.Server{PacketConn: pc, Handler: h}).ActivateAndServe() }()
	go func() { _ = (&dns.Server{Listener: l, Handler: h}).ActivateAndServe() }()
	fmt.Println("ready")
	waitSignal()
}

// helperServer runs netspawn's server on 10.98.0.1:53 and 127.0.0.1:53.
func helperServer() {
	z := NewZone()
	z.Set("web", addrs("10.98.0.2", "fd00:98::2"), "")
	z.Set("v4only", addrs("10.98.0.3"), "")
	z.Set("secret", addrs("10.96.0.2"), "z9")
	var many []netip.Addr
	for i := 1; i <= 100; i++ {
		many = append(many, netip.AddrFrom4([4]byte{172, 16, 1, byte(i)}))
	}
	z.Set("big", many, "")
	s, err := NewServer(Options{
		Source:     z,
		ResolvConf: os.Getenv("RESOLV_CONF"),
		ViewOf:     func(netip.Addr) View { return View{Name: ""} },
	})
	if err != nil {
		helperFail(err)
	}
	// 10.95.0.1 is not configured yet: IP_FREEBIND lets us bind it.
	for _, a := range []string{"10.98.0.1:53", "127.0.0.1:53", "10.95.0.1:53", "[fd00:98::1]:53"} {
		if _, err := s.Listen(netip.MustParseAddrPort(a)); err != nil {
			helperFail(err)
		}
	}
	fmt.Println("ready")
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	_ = s.Run(ctx)
}

func needRoot(t *testing.T, tools ...string) {
	t.Helper()
	testutil.RequireRoot(t, "network namespaces", tools...)
}

// netns is a network namespace held by a sleeping process.
type netns struct {
	cmd  *exec.Cmd
	path string
}

func newNetns(t *testing.T) *netns {
	t.Helper()
	cmd := exec.Command("unshare", "-n", "sleep", "infinity")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &netns{cmd: cmd, path: fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// Wait until unshare has exec'd sleep in the new namespace.
	self, _ := os.Readlink("/proc/self/ns/net")
	for i := 0; i < 500; i++ {
		if l, err := os.Readlink(n.path); err == nil && l != self {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("network namespace did not appear")
	return nil
}

// run runs a command inside the namespace and returns its output.
func (n *netns) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + n.path}, args...)...).CombinedOutput()
	return string(out), err
}

func (n *netns) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := n.run(t, args...)
	if err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
	return out
}

// helper starts the test binary as a helper inside the namespace.
func (n *netns) helper(t *testing.T, role string, env ...string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nsenter", "--net="+n.path, exe, "-test.run=^$")
	cmd.Env = append(append(os.Environ(), helperEnv+"="+role), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("helper %s: %q %v", role, line, err)
	}
}

func TestDigE2E(t *testing.T) {
	needRoot(t, "unshare", "nsenter", "ip", "dig")
	host, ctr, up := newNetns(t), newNetns(t), newNetns(t)
	host.must(t, "ip", "link", "set", "lo", "up")
	host.must(t, "ip", "addr", "add", "10.97.0.1/32", "dev", "lo")
	ctr.must(t, "ip", "link", "set", "lo", "up")
	up.must(t, "ip", "link", "set", "lo", "up")
	host.must(t, "ip", "link", "add", "ve-test", "type", "veth", "peer", "name", "host0", "netns", ctr.path)
	host.must(t, "ip", "link", "add", "uplink", "type", "veth", "peer", "name", "eth0", "netns", up.path)
	host.must(t, "ip", "addr", "add", "10.98.0.1/24", "dev", "ve-test")
	host.must(t, "ip", "addr", "add", "fd00:98::1/64", "dev", "ve-test", "nodad")
	host.must(t, "ip", "addr", "add", "10.99.0.1/24", "dev", "uplink")
	host.must(t, "ip", "link", "set", "ve-test", "up")
	host.must(t, "ip", "link", "set", "uplink", "up")
	ctr.must(t, "ip", "addr", "add", "10.98.0.2/24", "dev", "host0")
	ctr.must(t, "ip", "addr", "add", "fd00:98::2/64", "dev", "host0", "nodad")
	ctr.must(t, "ip", "link", "set", "host0", "up")
	ctr.must(t, "ip", "route", "add", "default", "via", "10.98.0.1")
	up.must(t, "ip", "addr", "add", "10.99.0.2/24", "dev", "eth0")
	up.must(t, "ip", "link", "set", "eth0", "up")

	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	// Our own address first: the server must skip it.
	if err := os.WriteFile(resolv, []byte("nameserver 10.98.0.1\nnameserver 10.99.0.2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	up.helper(t, "upstream")
	host.helper(t, "server", "RESOLV_CONF="+resolv)

	dig := func(n *netns, args ...string) string {
		t.Helper()
		out, err := n.run(t, append([]string{"dig", "+tries=1", "+time=2"}, args...)...)
		if err != nil {
			t.Fatalf("dig %v: %v\n%s", args, err, out)
		}
		return out
	}
	expect := func(out string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("dig output lacks %q:\n%s", w, out)
			}
		}
	}
	// From the container, on its gateway address.
	expect(dig(ctr, "+short", "@10.98.0.1", "web.netspawn.internal", "A"), "10.98.0.2")
	expect(dig(ctr, "+short", "@10.98.0.1", "WEB", "AAAA"), "fd00:98::2")
	expect(dig(ctr, "@10.98.0.1", "v4only.netspawn.internal", "AAAA"), "status: NOERROR", "ANSWER: 0", "AUTHORITY: 1", "flags: qr aa rd ra")
	expect(dig(ctr, "+short", "@10.98.0.1", "-x", "10.98.0.2"), "web.netspawn.internal.")
	// Over IPv6, UDP and TCP.
	expect(dig(ctr, "+short", "@fd00:98::1", "web.netspawn.internal", "AAAA"), "fd00:98::2")
	expect(dig(ctr, "+short", "+tcp", "@fd00:98::1", "web", "A"), "10.98.0.2")
	expect(dig(ctr, "+short", "@10.98.0.1", "-x", "fd00:98::2"), "web.netspawn.internal.")
	expect(dig(ctr, "@10.98.0.1", "nope.netspawn.internal"), "status: NXDOMAIN", "IN\tSOA\tns.netspawn.internal. hostmaster.netspawn.internal.")
	expect(dig(ctr, "+tcp", "+keepopen", "@10.98.0.1", "web.netspawn.internal", "A", "web.netspawn.internal", "AAAA"), "10.98.0.2", "fd00:98::2")
	// Truncation: the UDP answer has TC set; dig then retries over TCP.
	expect(dig(ctr, "+ignore", "+noedns", "@10.98.0.1", "big.netspawn.internal"), "flags: qr aa tc rd ra")
	if out := dig(ctr, "+short", "+noedns", "@10.98.0.1", "big.netspawn.internal"); strings.Count(out, "172.16.1.") != 100 {
		t.Errorf("TCP retry got %d addresses:\n%s", strings.Count(out, "172.16.1."), out)
	}
	// An upstream name, forwarded to the upstream namespace; then cached.
	expect(dig(ctr, "+short", "@10.98.0.1", "example.test"), "10.1.2.3")
	expect(dig(ctr, "@10.98.0.1", "example.test"), "10.1.2.3")
	expect(dig(ctr, "@10.98.0.1", "nothing.test"), "status: NXDOMAIN")
	// Views: the container does not see another zone's machine; the host does.
	expect(dig(ctr, "@10.98.0.1", "secret.netspawn.internal"), "status: NXDOMAIN")
	expect(dig(host, "+short", "@127.0.0.1", "secret.netspawn.internal"), "10.96.0.2")
	// An address bound before it existed answers once it is configured.
	host.must(t, "ip", "addr", "add", "10.95.0.1/32", "dev", "lo")
	expect(dig(host, "+short", "@10.95.0.1", "web.netspawn.internal"), "10.98.0.2")
	// Nothing answers on an address we did not listen on.
	if out, err := host.run(t, "dig", "+tries=1", "+time=1", "@10.97.0.1", "web.netspawn.internal"); err == nil {
		t.Errorf("answered on 10.97.0.1:\n%s", out)
	}
	if out, err := ctr.run(t, "dig", "+tries=1", "+time=1", "@10.99.0.1", "web.netspawn.internal"); err == nil {
		t.Errorf("answered on the uplink address:\n%s", out)
	}
}
