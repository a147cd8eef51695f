package test

import (
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netspawn/netspawn/internal/testutil"
	"github.com/netspawn/netspawn/netctl/api"
	"github.com/netspawn/netspawn/netctl/ula"
	"github.com/netspawn/netspawn/test/harness"
)

// The world's uplink also has a global-looking IPv6 network.
const (
	inet6Addr   = "2001:db8::1"
	uplink6Addr = "2001:db8::2"
)

func newWorld6(t *testing.T) *world {
	t.Helper()
	w := newWorld(t)
	for _, s := range []struct {
		ns     *harness.NetNS
		script string
	}{
		{w.NS, "ip addr add " + uplink6Addr + "/64 dev up0 nodad && ip -6 route add default via " + inet6Addr},
		{w.inet, "ip addr add " + inet6Addr + "/64 dev inet0 nodad"},
	} {
		if out, err := s.ns.Sh(s.script); err != nil {
			t.Fatalf("%s: %v %s", s.script, err, out)
		}
	}
	www := t.TempDir()
	if err := os.MkdirAll(filepath.Join(www, "cgi-bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	cgi := "#!/bin/busybox sh\necho Content-Type: text/plain\necho\necho $REMOTE_ADDR\n"
	if err := os.WriteFile(filepath.Join(www, "cgi-bin/ip"), []byte(cgi), 0o755); err != nil {
		t.Fatal(err)
	}
	srv := w.inet.Command("busybox", "httpd", "-f", "-p", "["+inet6Addr+"]:80", "-h", www)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(w.RuntimeDir, "netspawnd.log"))
			t.Logf("netspawnd.log:\n%s", lastN(string(b), 60))
		}
	})
	return w
}

// status returns netspawnctl status -o json of a machine.
func (w *world) status(t *testing.T, name string) api.MachineStatus {
	t.Helper()
	r := w.Run("netspawnctl", "status", "-o", "json", name)
	var st api.MachineStatus
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &st) != nil {
		t.Fatalf("netspawnctl status %s: %d %s %s", name, r.Code, r.Stdout, r.Stderr)
	}
	return st
}

func TestIPv6CommandModeAndMasquerade(t *testing.T) {
	w := newWorld6(t)
	// The payload has its ULA address and IPv6 default route at its first
	// instruction, reaches its gateway, and the internet masqueraded as the
	// host's uplink address. (netspawnd's first router advertisement may
	// have added a second default route by then, via the gateway's
	// link-local address: the one netspawn configured is the other.)
	r := w.Netspawn("-M", "web6", "-n", "sh", "-c",
		"ip -o -6 addr show dev host0 scope global | awk '{print $4}'; ip link show dev host0 | awk '/ether/ {print $2}'; "+
			"gw=$(ip -6 route show default | awk '!/proto ra/ {print $3; exit}'); echo $gw; ping6 -c1 -W2 $gw >/dev/null && echo gw-ok; "+
			"timeout 5 wget -qO- http://["+inet6Addr+"]/cgi-bin/ip")
	if r.Code != 0 {
		t.Fatalf("status %d: %s", r.Code, r.Stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if len(lines) != 5 {
		t.Fatalf("container output: %q", r.Stdout)
	}
	p, err := netip.ParsePrefix(lines[0])
	if err != nil || !ula.Local.Contains(p.Addr()) || p.Bits() != 64 {
		t.Fatalf("host0's global IPv6 address %q is not a ULA /64", lines[0])
	}
	mac, _ := net.ParseMAC(lines[1])
	if eui, _ := ula.EUI64(p.Masked(), mac); eui != p.Addr() {
		t.Errorf("address %s is not the EUI-64 of MAC %s (%s)", p.Addr(), mac, eui)
	}
	if gw := ula.Gateway(p.Masked()).String(); lines[2] != gw || lines[3] != "gw-ok" {
		t.Errorf("gateway: %q, want %s reachable", lines[2:4], gw)
	}
	if strings.Trim(lines[4], "[]") != uplink6Addr { // busybox httpd brackets IPv6
		t.Errorf("internet saw %q, want the uplink's %s (masquerade)", lines[4], uplink6Addr)
	}
	// The same machine gets the same prefix next time; the prefix is kept
	// in the state dir.
	want(t, w.Netspawn("-M", "web6", "-n", "sh", "-c", "ip -o -6 addr show dev host0 scope global | awk '{print $4}'"), lines[0])
	b, err := os.ReadFile(filepath.Join(w.StateDir, "ula-prefix"))
	if err != nil || !strings.Contains(p.Masked().String(), strings.TrimSuffix(strings.TrimSpace(string(b)), "::/48")) {
		t.Errorf("state dir ula-prefix %q does not hold %s (%v)", b, p, err)
	}
}

func TestIPv6ForwardsAndNames(t *testing.T) {
	w := newWorld6(t)
	harness.RequireTool(t, "dig")
	w.startContainer(t, "web6", "-p", "8080:80", "httpd", "-f", "-p", "[::]:80", "-h", "/www")
	w.waitServing(t, "http://127.0.0.1:8080/", "hello from the container")
	st := w.status(t, "web6")
	if len(st.Links) != 1 || st.Links[0].Address6 == "" || st.Links[0].Gateway6 == "" {
		t.Fatalf("status has no IPv6: %+v", st)
	}
	addr6 := st.Links[0].Address6
	const page = "hello from the container"
	if got := fetch(w.inet, "http://["+uplink6Addr+"]:8080/"); got != page {
		t.Errorf("over IPv6 from a remote namespace: %q", got)
	}
	if got := fetch(w.NS, "http://[::1]:8080/"); got != page {
		t.Errorf("from the host's [::1]: %q", got)
	}
	if got := fetch(w.NS, "http://127.0.0.1:8080/"); got != page {
		t.Errorf("from the host's 127.0.0.1: %q", got)
	}
	if got := fetch(w.NS, "http://["+uplink6Addr+"]:8080/"); got != page {
		t.Errorf("from the host to its own IPv6 address: %q", got)
	}
	// AAAA and ip6.arpa answers from the host's DNS address.
	dig := func(args ...string) string {
		out, _ := w.NS.Command("dig", append([]string{"@127.0.0.153", "+time=2", "+tries=1", "+short"}, args...)...).Output()
		return strings.TrimSpace(string(out))
	}
	if got := dig("AAAA", "web6.netspawn.internal"); got != addr6 {
		t.Errorf("dig AAAA web6: %q, want %s", got, addr6)
	}
	if got := dig("-x", addr6); got != "web6.netspawn.internal." {
		t.Errorf("dig -x %s: %q", addr6, got)
	}
	// The DNS server also answers on the link's IPv6 gateway, for containers.
	if got := dig("@"+st.Links[0].Gateway6, "AAAA", "web6"); got != addr6 {
		t.Errorf("dig @%s AAAA web6: %q", st.Links[0].Gateway6, got)
	}
	// Answers carry only the managed subnets' addresses, never link-local.
	if got := dig("AAAA", "web6"); strings.Contains(got, "fe80") {
		t.Errorf("link-local address in the answer: %q", got)
	}
	// From another container, by name over IPv6.
	r := w.Netspawn("-M", "client6", "-n", "sh", "-c", "timeout 5 wget -qO- http://["+addr6+"]/")
	want(t, r, page)
}

// A booted Debian's systemd-networkd takes the address by SLAAC from
// netspawnd's router advertisements: the one the controller predicted.
func TestIPv6SLAACInBootedDebian(t *testing.T) {
	e := harness.NewEnv(t)
	tree := debianTree(t, e)
	b := boot(t, e, tree, "deb6", "-n")
	b.waitRunning()
	r := e.Run("netspawnctl", "status", "-o", "json", "deb6")
	var st api.MachineStatus
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &st) != nil || len(st.Links) != 1 || st.Links[0].Address6 == "" {
		t.Fatalf("status: %s %s", r.Stdout, r.Stderr)
	}
	want6 := st.Links[0].Address6
	var got string
	testutil.Eventually(30*time.Second, func() bool {
		got, _ = b.exec("sh", "-c", "ip -o -6 addr show dev host0 scope global | awk '{print $4}'")
		return strings.Contains(got, want6+"/64")
	})
	if !strings.Contains(got, want6+"/64") {
		t.Fatalf("host0's global IPv6 addresses %q lack the predicted %s", got, want6)
	}
	// The default route and the resolver came with the advertisement.
	if out, _ := b.exec("ip", "-6", "route", "show", "default"); !strings.Contains(out, "via fe80:") {
		t.Errorf("no IPv6 default route from the RA: %q", out)
	}
	if out, _ := b.exec("sh", "-c", "networkctl status host0 2>/dev/null; cat /run/systemd/resolve/resolv.conf 2>/dev/null"); !strings.Contains(out, st.Links[0].Gateway6) {
		t.Logf("RDNSS %s not visible inside (networkctl/resolved): %s", st.Links[0].Gateway6, lastN(out, 20))
	}
	// The host reaches it over IPv6 (once the container's duplicate
	// address detection has finished).
	var err error
	for range 10 {
		if err = e.NS.Command("busybox", "ping6", "-c1", "-W2", want6).Run(); err == nil {
			break
		}
	}
	if err != nil {
		t.Errorf("ping6 %s from the host: %v", want6, err)
	}
	b.ctl("poweroff")
	if code := b.waitExit(60 * time.Second); code != 0 {
		t.Fatalf("poweroff: status %d", code)
	}
}

// A foreign table with policy drop on forward in the test's host namespace
// (as firewalld or Docker leave it) is reported by the controller (log,
// netspawnctl status) and by netspawnctl doctor.
func TestHostFirewallDetectedAndDoctor(t *testing.T) {
	w := newWorld6(t)
	if out, err := w.NS.Sh(`nft add table inet hostile && nft add chain inet hostile fwchain '{ type filter hook forward priority 0; policy drop; }' && ` +
		`nft add rule inet hostile fwchain ct state established,related accept && ` +
		`nft add chain inet hostile inchain '{ type filter hook input priority 0; policy accept; }' && nft add rule inet hostile inchain udp dport 67 drop`); err != nil {
		t.Fatalf("foreign table: %v %s", err, out)
	}
	w.startContainer(t, "fw", "sleep", "1000")
	st := w.status(t, "fw")
	joined := strings.Join(st.Warnings, "\n")
	if !strings.Contains(joined, "inet hostile chain fwchain has policy drop") || !strings.Contains(joined, `nft insert rule inet hostile fwchain iifname "ve-*" accept`) ||
		!strings.Contains(joined, "inet hostile chain inchain drops") || !strings.Contains(joined, "udp dport 67 accept") {
		t.Errorf("status warnings: %q", st.Warnings)
	}
	b, _ := os.ReadFile(filepath.Join(w.RuntimeDir, "netspawnd.log"))
	if !strings.Contains(string(b), "host firewall drops container traffic: nftables table inet hostile chain fwchain") {
		t.Errorf("netspawnd did not log the foreign drop policy:\n%s", lastN(string(b), 20))
	}
	// The table really breaks forwarding.
	if got := w.Netspawn("-M", "fw1", "-n", "sh", "-c", "timeout 3 wget -qO- http://"+inetAddr+"/cgi-bin/ip; true"); strings.Contains(got.Stdout, uplinkAddr) {
		t.Errorf("traffic passed the foreign drop policy: %q", got.Stdout)
	}
	// doctor, with the test's own nsswitch.conf and module directory.
	nsw := filepath.Join(t.TempDir(), "nsswitch.conf")
	if err := os.WriteFile(nsw, []byte("passwd: files\nhosts: files netspawn dns\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.Vars = append(w.Vars, "NETSPAWN_NSSWITCH="+nsw, "NETSPAWN_NSS_DIRS="+w.Bin)
	r := w.Run("netspawnctl", "doctor")
	t.Logf("netspawnctl doctor:\n%s%s", r.Stdout, r.Stderr)
	for _, want := range []string{"WARN  host firewall", "inet hostile chain fwchain", "OK    nsswitch.conf", "OK    NSS module", "OK    netspawnd", "OK    NSS socket", "OK    IPv4 forwarding", "OK    IPv6 forwarding"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("doctor lacks %q", want)
		}
	}
	r = w.Run("netspawnctl", "doctor", "-o", "json")
	var checks []struct{ Name, Status, Detail, Fix string }
	if err := json.Unmarshal([]byte(r.Stdout), &checks); err != nil || len(checks) < 10 {
		t.Fatalf("doctor -o json: %v %s", err, r.Stdout)
	}
	// Apply the fix the warning names: the warning goes at the next network.
	if out, err := w.NS.Sh(`nft insert rule inet hostile fwchain iifname "ve-*" accept && nft insert rule inet hostile fwchain oifname "ve-*" accept && nft insert rule inet hostile inchain iifname "ve-*" udp dport 67 accept`); err != nil {
		t.Fatalf("fix: %v %s", err, out)
	}
	want(t, w.Netspawn("-M", "fw2", "-n", "sh", "-c", "timeout 5 wget -qO- http://"+inetAddr+"/cgi-bin/ip"), uplinkAddr)
	if st := w.status(t, "fw"); len(st.Warnings) != 0 {
		t.Errorf("warnings after the fix: %q", st.Warnings)
	}
	r = w.Run("netspawnctl", "doctor", "-o", "json")
	if strings.Contains(r.Stdout, "hostile") {
		t.Errorf("doctor still warns after the fix: %s", r.Stdout)
	}
}

// Zones get a /64 too: members have their EUI-64 address in command mode,
// reach the zone's IPv6 gateway and the internet (masqueraded).
func TestIPv6Zone(t *testing.T) {
	w := newWorld6(t)
	r := w.Netspawn("-M", "z6a", "--network-zone=six", "sh", "-c",
		"ip -o -6 addr show dev host0 scope global | awk '{print $4}'; gw=$(ip -6 route show default | awk '!/proto ra/ {print $3; exit}'); "+
			"ping6 -c1 -W2 $gw >/dev/null && echo gw-ok; timeout 5 wget -qO- http://["+inet6Addr+"]/cgi-bin/ip; true")
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if r.Code != 0 || len(lines) != 3 {
		t.Fatalf("zone member: %d %q %s", r.Code, r.Stdout, r.Stderr)
	}
	if p, err := netip.ParsePrefix(lines[0]); err != nil || !ula.Local.Contains(p.Addr()) || lines[1] != "gw-ok" || strings.Trim(lines[2], "[]") != uplink6Addr {
		t.Errorf("zone member over IPv6: %q", lines)
	}
}

// With a global prefix routed to the host (--ipv6-prefix), containers get
// addresses from it and reach the internet unmasqueraded.
func TestIPv6DelegatedPrefixNotMasqueraded(t *testing.T) {
	w := newWorld6(t)
	if out, err := w.inet.Sh("ip -6 route add 2001:db8:100::/48 via " + uplink6Addr); err != nil {
		t.Fatalf("route: %v %s", err, out)
	}
	logb := w.StartNetspawnd("--ipv6-prefix", "2001:db8:100::/48")
	r := w.Netspawn("-M", "glob", "-n", "sh", "-c",
		"ip -o -6 addr show dev host0 scope global | awk '{print $4}' | cut -d/ -f1; timeout 5 wget -qO- http://["+inet6Addr+"]/cgi-bin/ip; true")
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "2001:db8:100:") || strings.Trim(lines[1], "[]") != lines[0] {
		t.Errorf("delegated prefix: %q %s\nnetspawnd: %s", r.Stdout, r.Stderr, lastN(logb(), 20))
	}
}
