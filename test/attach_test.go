package test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netspawn/netspawn/internal/testutil"
	"github.com/netspawn/netspawn/test/harness"
)

const (
	lanRouter = "192.168.77.1"
	lanNet    = "192.168.77"
)

// lan is a "LAN" namespace whose router runs dnsmasq (DHCP only), joined
// by veth (lan0 on the host side) to the bridge br0 of the test's host
// namespace.
type lan struct {
	ns     *harness.NetNS
	leases string // dnsmasq's lease file
	log    string // dnsmasq's log
	srv    *exec.Cmd
}

func newLAN(t *testing.T, e *harness.Env) *lan {
	t.Helper()
	harness.RequireTool(t, "dnsmasq")
	l := &lan{ns: harness.NewNetNS(t)}
	if out, err := e.NS.Sh("ip link add br0 type bridge && ip link set br0 up"); err != nil {
		t.Fatalf("br0: %v %s", err, out)
	}
	if err := harness.Veth(e.NS, l.ns, "lan0", "eth0", "", lanRouter+"/24"); err != nil {
		t.Fatal(err)
	}
	if out, err := e.NS.Sh("ip link set lan0 master br0"); err != nil {
		t.Fatalf("enslave lan0: %v %s", err, out)
	}
	dir := t.TempDir()
	l.leases, l.log = filepath.Join(dir, "leases"), filepath.Join(dir, "log")
	l.start(t, lanNet+".50", lanNet+".99")
	return l
}

// start (re)starts the LAN's dnsmasq with a dynamic range.
func (l *lan) start(t *testing.T, from, to string) {
	t.Helper()
	if l.srv != nil {
		_ = l.srv.Process.Kill()
		_ = l.srv.Wait()
	}
	srv := l.ns.Command("dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
		"--port=0", "--bind-interfaces", "--interface=eth0", "--user=root", "--pid-file=",
		"--dhcp-range="+from+","+to+",255.255.255.0,2m", "--dhcp-authoritative",
		"--dhcp-option=option:router,"+lanRouter, "--dhcp-option=option:dns-server,"+lanRouter,
		"--dhcp-leasefile="+l.leases, "--log-dhcp", "--log-facility="+l.log)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	l.srv = srv
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
}

// leaseOf returns the address dnsmasq leased to a host name ("" if none).
func (l *lan) leaseOf(mac string) string {
	b, _ := os.ReadFile(l.leases)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && strings.EqualFold(f[1], mac) {
			return f[2]
		}
	}
	return ""
}

func (l *lan) acks(ip string) int {
	b, _ := os.ReadFile(l.log)
	return len(regexp.MustCompile(`DHCPACK\(eth0\) `+regexp.QuoteMeta(ip)+` `).FindAll(b, -1))
}

func status(t *testing.T, e *harness.Env, name string) (st struct {
	Addresses []string `json:"addresses"`
	Leader    int      `json:"leader"`
	Links     []struct {
		Host    string `json:"host"`
		MAC     string `json:"mac"`
		Address string `json:"address"`
	} `json:"links"`
}) {
	t.Helper()
	r := e.Run("netspawnctl", "status", "-o", "json", name)
	if r.Code != 0 {
		t.Fatalf("netspawnctl status %s: %s", name, r.Stderr)
	}
	if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
		t.Fatalf("status %s: %v: %s", name, err, r.Stdout)
	}
	return st
}

func TestBridgedContainerLAN(t *testing.T) {
	e := harness.NewEnv(t)
	harness.RequireTool(t, "dig")
	l := newLAN(t, e)
	e.Vars = append(e.Vars, "NETSPAWN_DHCP_RENEW=1s")
	var stderr strings.Builder
	cmd := e.Command("netspawn", "-q", "-D", e.Tree, "-M", "lanbox", "--network-bridge=br0", "sleep", "1000")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { harness.Stop(cmd.Process, done) })
	if !testutil.Eventually(20*time.Second, func() bool { return strings.Contains(e.Run("netspawnctl", "list").Stdout, "lanbox") }) {
		t.Fatalf("lanbox never listed: %s", stderr.String())
	}
	st := status(t, e, "lanbox")
	if len(st.Links) != 1 || st.Links[0].Host != "vb-lanbox" {
		t.Fatalf("links: %+v", st.Links)
	}
	mac := st.Links[0].MAC
	var ip string
	if !testutil.Eventually(10*time.Second, func() bool { ip = l.leaseOf(mac); return ip != "" }) {
		b, _ := os.ReadFile(l.log)
		d, _ := os.ReadFile(filepath.Join(e.RuntimeDir, "netspawnd.log"))
		t.Fatalf("dnsmasq has no lease for %s; netspawn: %s; dnsmasq's log:\n%s\nnetspawnd's log:\n%s", mac, stderr.String(), b, d)
	}
	// The container configured the lease before its payload ran.
	waitInside(t, e, "lanbox", "ip -o -4 addr show dev host0 | grep -q 'inet "+ip+"/24' && ip route | grep -q 'default via "+lanRouter+"' && grep -q 'nameserver "+lanRouter+"' /etc/resolv.conf")
	if out, err := l.ns.Command(harness.BusyboxPath, "ping", "-c1", "-W2", ip).CombinedOutput(); err != nil {
		t.Errorf("the LAN cannot reach the container at %s: %v %s", ip, err, out)
	}
	// The host resolves it by name with its live address.
	if !testutil.Eventually(5*time.Second, func() bool {
		out, _ := e.NS.Command("dig", "@127.0.0.153", "+short", "+time=1", "+tries=1", "lanbox.netspawn.internal").Output()
		return strings.TrimSpace(string(out)) == ip
	}) {
		t.Errorf("dig lanbox did not answer %s", ip)
	}
	if st := status(t, e, "lanbox"); len(st.Addresses) == 0 || st.Addresses[0] != ip {
		t.Errorf("status addresses %v, want %s", st.Addresses, ip)
	}
	// An address added inside shows up too.
	if r := e.Run("netspawnctl", "shell", "lanbox", "ip", "addr", "add", lanNet+".200/24", "dev", "host0"); r.Code != 0 {
		t.Fatalf("add address: %s", r.Stderr)
	}
	if !testutil.Eventually(5*time.Second, func() bool {
		out, _ := e.NS.Command("dig", "@127.0.0.153", "+short", "+time=1", "+tries=1", "lanbox.netspawn.internal").Output()
		return strings.Contains(string(out), lanNet+".200")
	}) {
		t.Errorf("the added address never showed up in DNS")
	}
	// Renewals reach the LAN's server.
	if !testutil.Eventually(15*time.Second, func() bool { return l.acks(ip) >= 3 }) {
		t.Errorf("no renewals: %d DHCPACKs for %s", l.acks(ip), ip)
	}
	// A LAN server that refuses the address at renewal (a new range, no
	// lease file) gets asked for a new lease; host0 moves and DNS follows.
	_ = os.Remove(l.leases)
	l.start(t, lanNet+".150", lanNet+".160")
	if !testutil.Eventually(20*time.Second, func() bool { ip = l.leaseOf(mac); return strings.HasPrefix(ip, lanNet+".15") || ip == lanNet+".160" }) {
		b, _ := os.ReadFile(l.log)
		t.Fatalf("no new lease from the restarted server: %s", b)
	}
	if !testutil.Eventually(10*time.Second, func() bool {
		return e.Run("netspawnctl", "shell", "lanbox", "sh", "-c", "ip -o -4 addr show dev host0 | grep -q 'inet "+ip+"/24' && ! ip -o -4 addr show dev host0 | grep -q 'inet "+lanNet+".[5-9][0-9]/'").Code == 0
	}) {
		r := e.Run("netspawnctl", "shell", "lanbox", "ip", "-o", "-4", "addr", "show", "dev", "host0")
		t.Errorf("host0 did not move to %s: %s; netspawn: %s", ip, r.Stdout, stderr.String())
	}
	if !testutil.Eventually(5*time.Second, func() bool {
		out, _ := e.NS.Command("dig", "@127.0.0.153", "+short", "+time=1", "+tries=1", "lanbox.netspawn.internal").Output()
		return strings.Contains(string(out), ip)
	}) {
		t.Errorf("DNS did not follow the new address %s", ip)
	}
	// Stopping the container releases the lease.
	harness.Stop(cmd.Process, done)
	if !testutil.Eventually(10*time.Second, func() bool { return l.leaseOf(mac) == "" }) {
		b, _ := os.ReadFile(l.log)
		t.Errorf("the lease of %s was not released; dnsmasq log:\n%s", ip, b)
	}
	if !testutil.Eventually(10*time.Second, func() bool { return e.NS.Command("ip", "link", "show", "vb-lanbox").Run() != nil }) {
		t.Errorf("vb-lanbox still exists")
	}
}

func TestAttachErrors(t *testing.T) {
	e := harness.NewEnv(t)
	e.ShareTree()
	if out, err := e.NS.Sh("ip link add br1 type bridge && ip link set br1 up && ip link add notbr type veth peer name notbr-p"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	cases := []struct {
		args []string
		env  []string
		want string
		code int
	}{
		{args: []string{"--network-bridge=nosuch"}, want: "bridge nosuch does not exist"},
		{args: []string{"--network-bridge=notbr"}, want: "notbr is not a bridge"},
		{args: []string{"--network-zone=muchtoolongzone"}, want: "zone"},
		{args: []string{"--network-bridge=br1"}, env: []string{"NETSPAWN_DHCP_TIMEOUT=2"}, want: "no DHCP lease for host0"},
		{args: []string{"--network-bridge=br1"}, env: []string{"NETSPAWN_DHCP_TIMEOUT=1", "NETSPAWN_DHCP_OPTIONAL=yes"}, code: 0},
		{args: []string{"--network-interface=nosuch0"}, want: "nosuch0 does not exist"},
		{args: []string{"--network-macvlan=lo"}, want: "macvlan"},
		{args: []string{"--network-ipvlan=notbr"}, want: "ipvlan"},
	}
	for _, c := range cases {
		saved := e.Vars
		e.Vars = append(append([]string(nil), e.Vars...), c.env...)
		r := e.Netspawn(append(append([]string{"-M", "errbox"}, c.args...), "true")...)
		e.Vars = saved
		if c.want == "" {
			if r.Code != c.code {
				t.Errorf("%v %v: status %d: %s", c.args, c.env, r.Code, r.Stderr)
			}
			continue
		}
		if r.Code == 0 || !strings.Contains(r.Stderr, c.want) {
			t.Errorf("%v %v: status %d, stderr %q; want an error with %q", c.args, c.env, r.Code, r.Stderr, c.want)
		}
	}
	// ipvlan names the missing module on this kernel.
	if _, err := os.Stat("/sys/module/ipvlan"); err != nil {
		r := e.Netspawn("-M", "errbox", "--network-ipvlan=notbr", "true")
		if !strings.Contains(r.Stderr, "module ipvlan") {
			t.Errorf("ipvlan error does not name the module: %s", r.Stderr)
		}
	}
	// An interface moved into one container is in use for another.
	_, _ = background(t, e, "holder", "--network-interface=notbr", "sleep", "1000")
	r := e.Netspawn("-M", "errbox", "--network-interface=notbr", "true")
	if r.Code == 0 || !strings.Contains(r.Stderr, "in use") {
		t.Errorf("second move of notbr: %d %s", r.Code, r.Stderr)
	}
}

func TestZones(t *testing.T) {
	e := harness.NewEnv(t)
	e.ShareTree()
	background(t, e, "blue1", "--network-zone=blue", "sleep", "1000")
	background(t, e, "blue2", "--network-zone=blue", "sleep", "1000")
	red, redDone := background(t, e, "red1", "--network-zone=red", "sleep", "1000")
	ve, veDone := background(t, e, "plain", "-n", "sleep", "1000")
	if e.NS.Command("ip", "link", "show", "vz-blue", "type", "bridge").Run() != nil {
		t.Fatal("no bridge vz-blue")
	}
	// Members reach each other by name.
	waitInside(t, e, "blue1", "ping -c1 -W1 blue2")
	waitInside(t, e, "blue2", "ping -c1 -W1 blue1.netspawn.internal")
	// The zone's ports have no IPv6 of their own (the bridge has it, and
	// TestIPv6Zone goes through a port over IPv6).
	if v, err := e.NS.Sh("cat /proc/sys/net/ipv6/conf/vb-blue1/disable_ipv6; ip -6 -o addr show dev vb-blue1"); err != nil || strings.TrimSpace(v) != "1" {
		t.Errorf("vb-blue1 has IPv6: %v %q", err, v)
	}
	blue2 := status(t, e, "blue2").Addresses[0]
	// Other zones and ve- containers cannot reach them.
	for _, m := range []string{"red1", "plain"} {
		if r := e.Run("netspawnctl", "shell", m, "ping", "-c1", "-W1", blue2); r.Code == 0 {
			t.Errorf("%s reached blue2 at %s", m, blue2)
		}
	}
	// The host reaches everyone.
	if out, err := e.NS.Command(harness.BusyboxPath, "ping", "-c1", "-W2", blue2).CombinedOutput(); err != nil {
		t.Errorf("host cannot reach blue2: %v %s", err, out)
	}
	// Zone members do not see other zones' names.
	if r := e.Run("netspawnctl", "shell", "blue1", "nslookup", "red1"); !strings.Contains(r.Stdout+r.Stderr, "can't find") {
		t.Errorf("blue1 resolves red1: %s", r.Stdout)
	}
	// A restarted controller (after kill -9) keeps the zone as it was.
	gwBefore, _ := e.NS.Sh("ip -o -4 addr show dev vz-blue")
	killNetspawnd(t, e)
	if r := e.Run("netspawnctl", "list"); r.Code != 0 {
		t.Fatalf("netspawnctl list after the controller was killed: %s", r.Stderr)
	}
	if gwAfter, _ := e.NS.Sh("ip -o -4 addr show dev vz-blue"); gwAfter != gwBefore {
		t.Errorf("vz-blue changed over a controller restart: %q -> %q", gwBefore, gwAfter)
	}
	waitInside(t, e, "blue1", "ping -c1 -W1 blue2")
	// DHCP on the zone bridge: a member gets its reserved address, another
	// client on the bridge a dynamic one from the zone's subnet.
	blue1 := status(t, e, "blue1").Addresses[0]
	if r := e.Run("netspawnctl", "shell", "blue1", "udhcpc", "-i", "host0", "-n", "-q", "-s", "/bin/true", "-t", "3"); !strings.Contains(r.Stdout+r.Stderr, "lease of "+blue1+" obtained") {
		t.Errorf("member DHCP: want %s: %s %s", blue1, r.Stdout, r.Stderr)
	}
	guest := harness.NewNetNS(t)
	if err := harness.Veth(e.NS, guest, "vg-guest", "eth0", "", ""); err != nil {
		t.Fatal(err)
	}
	if out, err := e.NS.Sh("ip link set vg-guest master vz-blue"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	out, _ := guest.Command(harness.BusyboxPath, "udhcpc", "-i", "eth0", "-n", "-q", "-s", "/bin/true", "-t", "5").CombinedOutput()
	prefix := blue1[:strings.LastIndexByte(blue1, '.')+1]
	if m := regexp.MustCompile(`lease of (\S+) obtained`).FindStringSubmatch(string(out)); m == nil || !strings.HasPrefix(m[1], prefix) || m[1] == blue1 || m[1] == blue2 {
		t.Errorf("guest on vz-blue: no dynamic lease in %s0/24: %s", prefix, out)
	}
	// The red zone's bridge goes with its last member.
	harness.Stop(red.Process, redDone)
	harness.Stop(ve.Process, veDone)
	if !testutil.Eventually(10*time.Second, func() bool { return e.NS.Command("ip", "link", "show", "vz-red").Run() != nil }) {
		t.Error("vz-red still exists after its last member left")
	}
	if e.NS.Command("ip", "link", "show", "vz-blue").Run() != nil {
		t.Error("vz-blue vanished while it has members")
	}
}

func TestMACVLANAndInterfaceMove(t *testing.T) {
	e := harness.NewEnv(t)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(e.RuntimeDir, "netspawnd.log"))
			t.Logf("netspawnd's log:\n%s", b)
		}
	})
	l := harness.NewNetNS(t)
	if err := harness.Veth(e.NS, l, "lan1", "eth1", "", "192.168.78.1/24"); err != nil {
		t.Fatal(err)
	}
	r := e.Netspawn("-M", "mv", "--network-macvlan=lan1", "sh", "-c", "ip addr add 192.168.78.10/24 dev mv-lan1 && ping -c1 -W2 192.168.78.1 >/dev/null && echo reached")
	if r.Code != 0 || !strings.Contains(r.Stdout, "reached") {
		t.Errorf("macvlan container: %d %s %s", r.Code, r.Stdout, r.Stderr)
	}
	// Its MAC is stable (nspawn's hash of machine id and name).
	r1 := e.Netspawn("-M", "mv", "--network-macvlan=lan1", "cat", "/sys/class/net/mv-lan1/address")
	r2 := e.Netspawn("-M", "mv", "--network-macvlan=lan1", "cat", "/sys/class/net/mv-lan1/address")
	if r1.Stdout == "" || r1.Stdout != r2.Stdout {
		t.Errorf("macvlan MAC not stable: %q (%s) then %q (%s)", r1.Stdout, r1.Stderr, r2.Stdout, r2.Stderr)
	}
	// A host interface moved in (renamed inside), back under its own name after.
	if err := harness.Veth(e.NS, l, "mov0", "eth2", "", "192.168.79.1/24"); err != nil {
		t.Fatal(err)
	}
	r = e.Netspawn("-M", "mover", "--network-interface=mov0:lanif", "sh", "-c", "ip addr add 192.168.79.10/24 dev lanif && ping -c1 -W2 192.168.79.1 >/dev/null && echo reached")
	if r.Code != 0 || !strings.Contains(r.Stdout, "reached") {
		t.Errorf("moved interface: %d %s %s", r.Code, r.Stdout, r.Stderr)
	}
	if !testutil.Eventually(10*time.Second, func() bool { return e.NS.Command("ip", "link", "show", "mov0").Run() == nil }) {
		t.Error("mov0 did not come back to the host")
	}
	// Also when netspawn is killed: the controller moves it back.
	cmd, done := background(t, e, "mover2", "--network-interface=mov0", "sleep", "1000")
	_ = cmd.Process.Kill()
	<-done
	if !testutil.Eventually(10*time.Second, func() bool { return e.NS.Command("ip", "link", "show", "mov0").Run() == nil }) {
		t.Error("mov0 did not come back after netspawn was killed")
	}
}

func TestNetworkNamespacePath(t *testing.T) {
	e := harness.NewEnv(t)
	other := harness.NewNetNS(t)
	if err := harness.Veth(e.NS, other, "nsp0", "nsp1", "192.168.80.1/24", "192.168.80.2/24"); err != nil {
		t.Fatal(err)
	}
	r := e.Netspawn("-M", "joiner", "--network-namespace-path="+other.Path(), "sh", "-c", "ip -o -4 addr show dev nsp1 | grep -q 192.168.80.2 && ping -c1 -W2 192.168.80.1 >/dev/null && echo joined")
	if r.Code != 0 || !strings.Contains(r.Stdout, "joined") {
		t.Errorf("--network-namespace-path: %d %s %s", r.Code, r.Stdout, r.Stderr)
	}
}

func TestSettingsFileNetwork(t *testing.T) {
	e := harness.NewEnv(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "zoned.nspawn"), []byte("[Network]\nZone=green\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.Vars = append(e.Vars, "NETSPAWN_SETTINGS_PATH="+dir)
	r := e.Netspawn("-M", "zoned", "sh", "-c", "ip -o -4 addr show dev host0")
	if r.Code != 0 || !strings.Contains(r.Stdout, "inet ") {
		t.Errorf("Zone= from a .nspawn file: %d %s %s", r.Code, r.Stdout, r.Stderr)
	}
}

func TestBootBridgedAndZone(t *testing.T) {
	e := harness.NewEnv(t)
	harness.RequireTool(t, "dig")
	l := newLAN(t, e)
	tree := debianTree(t, e)
	b := boot(t, e, tree, "debbr", "--network-bridge=br0")
	b.waitRunning()
	// The container's own networkd asks the LAN's dnsmasq; netspawnd
	// publishes whatever address host0 ends up with.
	mac := status(t, e, "debbr").Links[0].MAC
	var ip string
	if !testutil.Eventually(30*time.Second, func() bool { ip = l.leaseOf(mac); return ip != "" }) {
		t.Fatalf("no lease for the booted container's %s", mac)
	}
	if !testutil.Eventually(10*time.Second, func() bool {
		out, _ := e.NS.Command("dig", "@127.0.0.153", "+short", "+time=1", "+tries=1", "debbr").Output()
		return strings.TrimSpace(string(out)) == ip
	}) {
		t.Errorf("dig debbr did not answer the leased %s", ip)
	}
	if out, err := l.ns.Command(harness.BusyboxPath, "ping", "-c1", "-W2", ip).CombinedOutput(); err != nil {
		t.Errorf("the LAN cannot reach the booted container at %s: %v %s", ip, err, out)
	}
	b.ctl("poweroff")
	if code := b.waitExit(60 * time.Second); code != 0 {
		t.Fatalf("poweroff: status %d", code)
	}
	// A booted zone member gets its reservation from the zone's DHCP.
	z := boot(t, e, tree, "debzone", "--network-zone=green")
	z.waitRunning()
	want := status(t, e, "debzone").Addresses[0]
	if !testutil.Eventually(30*time.Second, func() bool {
		out, _ := z.exec("sh", "-c", "ip -o -4 addr show dev host0")
		return strings.Contains(out, "inet "+want+"/24")
	}) {
		out, _ := z.exec("ip", "addr")
		t.Errorf("booted zone member has not got %s:\n%s", want, out)
	}
}

// killNetspawnd kills the test's netspawnd with SIGKILL and waits until it
// is gone.
func killNetspawnd(t *testing.T, e *harness.Env) {
	t.Helper()
	pids := netspawndsOf(e)
	if len(pids) == 0 {
		t.Fatal("no netspawnd in the test's namespace")
	}
	killNetspawndOf(t, e)
	for _, pid := range pids {
		for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func TestZoneConcurrentMembers(t *testing.T) {
	e := harness.NewEnv(t)
	e.ShareTree()
	// Start the controller first, so the members race in Register only.
	if r := e.Run("netspawnctl", "list"); r.Code != 0 {
		t.Fatalf("netspawnctl list: %s", r.Stderr)
	}
	const n = 4
	type proc struct {
		cmd  *exec.Cmd
		done chan struct{}
		errb *strings.Builder
	}
	var ps []proc
	for i := 0; i < n; i++ {
		var errb strings.Builder
		cmd := e.Command("netspawn", "-q", "-D", e.Tree, "-M", "race"+strconv.Itoa(i), "--network-zone=race", "sleep", "1000")
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		t.Cleanup(func() { harness.Stop(cmd.Process, done) })
		ps = append(ps, proc{cmd, done, &errb})
	}
	if !testutil.Eventually(30*time.Second, func() bool {
		return strings.Count(e.Run("netspawnctl", "list").Stdout, "race") == n
	}) {
		for i, p := range ps {
			t.Logf("race%d: %s", i, p.errb.String())
		}
		t.Fatalf("not all %d members registered", n)
	}
	waitInside(t, e, "race0", "ping -c1 -W1 race3")
	// All leave at once: the bridge goes with the last one.
	for _, p := range ps {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range ps {
		harness.Stop(p.cmd.Process, p.done)
	}
	if !testutil.Eventually(10*time.Second, func() bool { return e.NS.Command("ip", "link", "show", "vz-race").Run() != nil }) {
		t.Error("vz-race still exists after all members left")
	}
}
