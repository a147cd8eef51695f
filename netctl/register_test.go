package netctl_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/netspawn/netspawn/netctl/api"
)

func TestRegisterUnregisterAndLeaderDeath(t *testing.T) {
	e := newEnv(t)
	e.startDaemon()
	cl := e.client()
	ctx := context.Background()
	ct := e.container()
	req := api.RegisterRequest{Name: "web", Leader: ct.pid, Root: "/", Network: api.NetworkRequest{Veth: true,
		Ports: []api.Port{{Protocol: "tcp", HostPort: 8080, ContainerPort: 80}}}}
	r, err := cl.Register(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("reply: %+v", r)
	if len(r.Interfaces) != 1 || r.Interfaces[0].Name != "host0" || len(r.Interfaces[0].Addresses) != 2 || r.Interfaces[0].Gateway6 == "" || r.HostLinks[0] != "ve-web" {
		t.Fatalf("reply %+v", r)
	}
	out := e.host.MustRun(t, "ip", "-o", "addr", "show", "dev", "ve-web")
	if !strings.Contains(out, r.Interfaces[0].Gateway4+"/28") {
		t.Fatalf("gateway %s not on ve-web: %s", r.Interfaces[0].Gateway4, out)
	}
	in := ct.mustRun(t, "ip", "-o", "link", "show", "dev", "host0")
	if !strings.Contains(in, r.Interfaces[0].MAC) {
		t.Fatalf("host0 lacks MAC %s: %s", r.Interfaces[0].MAC, in)
	}
	// The host knows where the container's address will be before the
	// container has configured it (a booted OS asks DHCP first): no wait
	// for an ARP retry when the host tries it early.
	addr4 := strings.Split(r.Interfaces[0].Addresses[0], "/")[0]
	if neigh := e.host.MustRun(t, "ip", "neigh", "show", addr4, "dev", "ve-web"); !strings.Contains(neigh, "lladdr "+r.Interfaces[0].MAC) {
		t.Fatalf("no neighbour entry for %s at %s on ve-web: %q", addr4, r.Interfaces[0].MAC, neigh)
	}
	if tb := e.nftTable(); !strings.Contains(tb, "tcp . 8080 : "+strings.Split(r.Interfaces[0].Addresses[0], "/")[0]+" . 80") || !strings.Contains(tb, `"ve-web"`) {
		t.Fatalf("nftables lacks the machine's elements:\n%s", tb)
	}
	// Same leader again: same reply; other leader: conflict.
	if r2, err := cl.Register(ctx, req); err != nil || r2.Interfaces[0].Addresses[0] != r.Interfaces[0].Addresses[0] {
		t.Fatalf("idempotent register: %+v %v", r2, err)
	}
	other := e.container()
	req2 := req
	req2.Leader = other.pid
	if _, err := cl.Register(ctx, req2); apiCode(err) != api.CodeConflict {
		t.Fatalf("second leader with the same name: %v", err)
	}
	// A leader in the host's own namespace cannot get a veth; without one it
	// registers (the registry lists it).
	shared := e.host.Cmd("sleep", "100000")
	if err := shared.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shared.Process.Kill(); shared.Wait() })
	waitFor(t, "nsenter exec", func() bool {
		exe, _ := os.Readlink("/proc/" + strconv.Itoa(shared.Process.Pid) + "/exe")
		return strings.HasSuffix(exe, "/sleep")
	})
	if _, err := cl.Register(ctx, api.RegisterRequest{Name: "hostnet", Leader: shared.Process.Pid, Network: api.NetworkRequest{Veth: true}}); apiCode(err) != api.CodeInvalid {
		t.Fatalf("veth for a leader in the host namespace: %v", err)
	}
	if _, err := cl.Register(ctx, api.RegisterRequest{Name: "hostnet", Leader: shared.Process.Pid}); err != nil {
		t.Fatal(err)
	}
	if err := cl.Unregister(ctx, "hostnet"); err != nil {
		t.Fatal(err)
	}
	ms, err := cl.List(ctx)
	if err != nil || len(ms) != 1 || ms[0].Name != "web" || len(ms[0].Addresses) != 2 {
		t.Fatalf("list %+v %v", ms, err)
	}
	st, err := cl.Status(ctx, "web")
	if err != nil || len(st.Links) != 1 || !st.Links[0].Up || len(st.Ports) != 1 {
		t.Fatalf("status %+v %v", st, err)
	}

	if err := cl.Unregister(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(e.nftTable(), "8080") || strings.Contains(e.nftTable(), `"ve-web"`) {
		t.Fatalf("left behind after unregister:\n%s", e.nftTable())
	}
	if err := cl.Unregister(ctx, "web"); apiCode(err) != api.CodeNotFound {
		t.Fatalf("second unregister: %v", err)
	}

	// Register again at once (the old link may still be queued for
	// deletion): same address (persistent allocation). Then kill -9
	// the leader: the controller notices through the pidfd.
	r3, err := cl.Register(ctx, req2)
	if err != nil {
		t.Fatal(err)
	}
	if r3.Interfaces[0].Addresses[0] != r.Interfaces[0].Addresses[0] {
		t.Fatalf("address changed: %s -> %s", r.Interfaces[0].Addresses[0], r3.Interfaces[0].Addresses[0])
	}
	other.cmd.Process.Signal(syscall.SIGKILL)
	waitFor(t, "cleanup after the leader's death", func() bool {
		ms, _ := cl.List(ctx)
		return len(ms) == 0 && !e.linkExists("ve-web") && !strings.Contains(e.nftTable(), "8080")
	})
	nets, err := cl.Networks(ctx)
	if err != nil || len(nets) != 1 || nets[0].Active {
		t.Fatalf("networks %+v %v", nets, err)
	}
}

func TestLongNameAndExtraVeth(t *testing.T) {
	e := newEnv(t)
	e.startDaemon()
	cl := e.client()
	ct := e.container()
	r, err := cl.Register(context.Background(), api.RegisterRequest{Name: "rosa-2019.1-samba-server1", Leader: ct.pid,
		Network: api.NetworkRequest{Veth: true, VethExtra: []api.VethExtra{{Host: "xtra0", Container: "eth1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if r.HostLinks[0] != "ve-rosa-201_SrW" || r.HostLinks[1] != "xtra0" {
		t.Fatalf("host links %v", r.HostLinks)
	}
	out := e.host.MustRun(t, "ip", "link", "show", "dev", "ve-rosa-2019.1-samba-server1")
	if !strings.Contains(out, "altname ve-rosa-2019.1-samba-server1") {
		t.Fatalf("altname missing: %s", out)
	}
	ct.mustRun(t, "ip", "link", "show", "dev", "eth1")
}

func TestPortConflictAndExhaustion(t *testing.T) {
	e := newEnv(t, "--pools", "10.99.0.0/27")
	e.startDaemon()
	cl := e.client()
	ctx := context.Background()
	a, b, c := e.container(), e.container(), e.container()
	if _, err := cl.Register(ctx, api.RegisterRequest{Name: "a", Leader: a.pid, Network: api.NetworkRequest{Veth: true, Ports: []api.Port{{Protocol: "udp", HostPort: 5353, ContainerPort: 53}}}}); err != nil {
		t.Fatal(err)
	}
	_, err := cl.Register(ctx, api.RegisterRequest{Name: "b", Leader: b.pid, Network: api.NetworkRequest{Veth: true, Ports: []api.Port{{Protocol: "udp", HostPort: 5353}}}})
	if apiCode(err) != api.CodeConflict || !strings.Contains(err.Error(), `machine "a"`) {
		t.Fatalf("port conflict: %v", err)
	}
	t.Log(err)
	waitFor(t, "no link for the refused machine", func() bool { return !e.linkExists("ve-b") })
	// tcp 5353 is a different forward.
	if _, err := cl.Register(ctx, api.RegisterRequest{Name: "b", Leader: b.pid, Network: api.NetworkRequest{Veth: true, Ports: []api.Port{{Protocol: "tcp", HostPort: 5353}}}}); err != nil {
		t.Fatal(err)
	}
	_, err = cl.Register(ctx, api.RegisterRequest{Name: "c", Leader: c.pid, Network: api.NetworkRequest{Veth: true}})
	if apiCode(err) != api.CodeExhausted {
		t.Fatalf("exhaustion: %v", err)
	}
	t.Log(err)
	waitFor(t, "no link for the refused machine", func() bool { return !e.linkExists("ve-c") })
}

func TestTableRemovedBehindOurBack(t *testing.T) {
	e := newEnv(t)
	e.startDaemon()
	cl := e.client()
	a, b := e.container(), e.container()
	register(t, cl, "a", a, api.Port{Protocol: "tcp", HostPort: 8080, ContainerPort: 80})
	e.host.MustRun(t, "nft", "flush", "ruleset")
	register(t, cl, "b", b, api.Port{Protocol: "tcp", HostPort: 8081, ContainerPort: 80})
	tb := e.nftTable()
	for _, want := range []string{"8080", "8081", `"ve-a"`, `"ve-b"`} {
		if !strings.Contains(tb, want) {
			t.Fatalf("rebuilt table lacks %s:\n%s", want, tb)
		}
	}
}

func TestSubnetsAvoidHostAddressesAndRoutes(t *testing.T) {
	e := newEnv(t)
	e.host.MustRun(t, "ip", "link", "add", "lan0", "type", "veth", "peer", "name", "lan1")
	e.host.MustRun(t, "ip", "link", "set", "lan0", "up")
	e.host.MustRun(t, "ip", "addr", "add", "192.168.0.5/24", "dev", "lan0")
	e.startDaemon()
	cl := e.client()
	a, b := e.container(), e.container()
	ra := register(t, cl, "a", a)
	if got := ra.Interfaces[0].Addresses[0]; got != "192.168.1.2/28" {
		t.Fatalf("a got %s, want 192.168.1.2/28 (192.168.0.0/24 is on lan0)", got)
	}
	// A route added while the daemon runs is seen too.
	e.host.MustRun(t, "ip", "route", "add", "192.168.1.16/28", "dev", "lan0")
	e.host.MustRun(t, "ip", "route", "add", "192.168.1.32/27", "via", "192.168.0.7")
	rb := register(t, cl, "b", b)
	if got := rb.Interfaces[0].Addresses[0]; got != "192.168.1.66/28" {
		t.Fatalf("b got %s, want 192.168.1.66/28", got)
	}
}

func TestOneDaemonPerNetNS(t *testing.T) {
	e := newEnv(t)
	e.startDaemon()
	out, err := e.host.Run(daemonBin, "--runtime-dir", t.TempDir(), "--state-dir", t.TempDir(), "--config", "/dev/null", "--dns-server=false")
	if err == nil || !strings.Contains(out, "already manages this network namespace") {
		t.Fatalf("second daemon in the same namespace: %v\n%s", err, out)
	}
}

// A machine's /64 is written without fsync (batched, like its IPv4
// allocation). Should the host lose ipam6.d's file before the batch's
// sync, the controller takes the /64 back from the running machine's
// runtime record: the name keeps its prefix when it registers again.
func TestIPv6AllocationRestoredFromRecord(t *testing.T) {
	e := newEnv(t)
	e.startDaemon()
	cl := e.client()
	ctx := context.Background()
	ct := e.container()
	req := api.RegisterRequest{Name: "six", Leader: ct.pid, Root: "/", Network: api.NetworkRequest{Veth: true}}
	r, err := cl.Register(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if r.Interfaces[0].Gateway6 == "" {
		t.Fatalf("no IPv6 in %+v", r)
	}
	saved := filepath.Join(e.st, "ipam6.d", "six.json")
	if _, err := os.Stat(saved); err != nil {
		t.Fatalf("the /64 was not saved: %v", err)
	}
	e.stopDaemon(syscall.SIGKILL)
	if err := os.Remove(saved); err != nil {
		t.Fatal(err)
	}
	e.startDaemon()
	if _, err := os.Stat(saved); err != nil {
		t.Fatalf("the /64 was not restored from the runtime record: %v", err)
	}
	cl = e.client()
	if err := cl.Unregister(ctx, "six"); err != nil {
		t.Fatal(err)
	}
	r2, err := cl.Register(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Interfaces[0].Gateway6 != r.Interfaces[0].Gateway6 {
		t.Fatalf("IPv6 gateway changed: %s -> %s", r.Interfaces[0].Gateway6, r2.Interfaces[0].Gateway6)
	}
}

// TestRegisterStarting registers machines before their first process
// exists, as netspawn does for -n: the caller holds the namespace and its
// exit ends the machine until SetLeader names the first process.
func TestRegisterStarting(t *testing.T) {
	e := newEnv(t)
	e.startDaemon()
	cl := e.client()
	ctx := context.Background()
	holder := func() *exec.Cmd { // netspawn's part: a process in the host's namespace
		cmd := e.host.Cmd("sleep", "100000")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	h1, ct := holder(), e.container()
	nsPath := "/proc/" + strconv.Itoa(ct.pid) + "/ns/net"
	for _, bad := range []api.RegisterRequest{
		{Name: "early", Leader: h1.Process.Pid, Starting: true, Network: api.NetworkRequest{Veth: true}},
		{Name: "early", NetNS: nsPath, Starting: true, Network: api.NetworkRequest{Veth: true}},
	} {
		if _, err := cl.Register(ctx, bad); apiCode(err) != api.CodeInvalid {
			t.Fatalf("register %+v: %v, want an invalid-request error", bad, err)
		}
	}
	req := api.RegisterRequest{Name: "early", Leader: h1.Process.Pid, NetNS: nsPath, Starting: true, Root: "/",
		Network: api.NetworkRequest{Veth: true}}
	r, err := cl.Register(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Interfaces) != 1 || r.HostLinks[0] != "ve-early" || !e.linkExists("ve-early") {
		t.Fatalf("reply %+v", r)
	}
	// The same request again, as the client sends it after a broken
	// connection (netspawnd killed after it recorded the machine): the
	// same reply, also from the next netspawnd, which kept the machine.
	for i := range 2 {
		if i == 1 {
			e.stopDaemon(syscall.SIGKILL)
			e.startDaemon()
			cl = e.client()
		}
		again, err := cl.Register(ctx, req)
		if err != nil {
			t.Fatalf("the same register again (%d): %v", i, err)
		}
		if again.HostLinks[0] != r.HostLinks[0] || again.Interfaces[0].Addresses[0] != r.Interfaces[0].Addresses[0] {
			t.Fatalf("the same register again (%d): %+v, first %+v", i, again, r)
		}
	}
	// Another process for the same name and namespace is still refused.
	h3 := holder()
	if _, err := cl.Register(ctx, api.RegisterRequest{Name: "early", Leader: h3.Process.Pid, NetNS: nsPath, Starting: true, Root: "/",
		Network: api.NetworkRequest{Veth: true}}); apiCode(err) != api.CodeConflict {
		t.Fatalf("another holder for a running machine: %v, want a conflict", err)
	}
	ct.mustRun(t, "ip", "link", "show", "dev", "host0")
	if ms, err := cl.List(ctx); err != nil || len(ms) != 1 || ms[0].Leader != 0 {
		t.Fatalf("list while starting: %+v %v (want no leader yet)", ms, err)
	}
	other := e.container()
	if err := cl.SetLeader(ctx, "early", other.pid); apiCode(err) != api.CodeInvalid || !strings.Contains(err.Error(), "network namespace") {
		t.Fatalf("leader in another namespace: %v", err)
	}
	if err := cl.SetLeader(ctx, "nope", ct.pid); apiCode(err) != api.CodeNotFound {
		t.Fatalf("leader of an unknown machine: %v", err)
	}
	// A controller restarted in between keeps the machine and its holder.
	e.stopDaemon(syscall.SIGKILL)
	e.startDaemon()
	cl = e.client()
	if err := cl.SetLeader(ctx, "early", ct.pid); err != nil {
		t.Fatal(err)
	}
	if err := cl.SetLeader(ctx, "early", ct.pid); err != nil {
		t.Fatalf("naming the same leader again: %v", err)
	}
	if err := cl.SetLeader(ctx, "early", other.pid); apiCode(err) != api.CodeConflict {
		t.Fatalf("naming another leader: %v", err)
	}
	if ms, err := cl.List(ctx); err != nil || len(ms) != 1 || ms[0].Leader != ct.pid || ms[0].NetNS != "" {
		t.Fatalf("list after SetLeader: %+v %v", ms, err)
	}
	// From now on the holder's exit changes nothing; the leader's ends it.
	h1.Process.Kill()
	h1.Wait()
	if st, err := cl.Status(ctx, "early"); err != nil || st.Leader != ct.pid {
		t.Fatalf("status after the holder's exit: %+v %v", st, err)
	}
	ct.kill()
	waitFor(t, "cleanup after the leader's death", func() bool {
		ms, _ := cl.List(ctx)
		return len(ms) == 0 && !e.linkExists("ve-early")
	})

	// A holder that dies before naming a leader ends its machine.
	h2, ct2 := holder(), e.container()
	req = api.RegisterRequest{Name: "early2", Leader: h2.Process.Pid, NetNS: "/proc/" + strconv.Itoa(ct2.pid) + "/ns/net", Starting: true,
		Network: api.NetworkRequest{Veth: true}}
	if _, err := cl.Register(ctx, req); err != nil {
		t.Fatal(err)
	}
	h2.Process.Kill()
	h2.Wait()
	waitFor(t, "cleanup after the holder's death", func() bool {
		ms, _ := cl.List(ctx)
		return len(ms) == 0 && !e.linkExists("ve-early2")
	})
}

// TestNameReusedAtOnce registers a name again right after unregistering it,
// over and over: the old link is renamed out of the way (its alternative
// names dropped too) rather than waited for, and deleted in the background.
func TestNameReusedAtOnce(t *testing.T) {
	e := newEnv(t)
	e.startDaemon()
	cl := e.client()
	ctx := context.Background()
	for _, name := range []string{"again", "a-machine-name-too-long-for-a-link"} {
		var first string
		for i := 0; i < 5; i++ {
			ct := e.container()
			r, err := cl.Register(ctx, api.RegisterRequest{Name: name, Leader: ct.pid, Network: api.NetworkRequest{Veth: true}})
			if err != nil {
				t.Fatalf("%s, round %d: %v", name, i, err)
			}
			if first == "" {
				first = r.Interfaces[0].Addresses[0]
			} else if r.Interfaces[0].Addresses[0] != first {
				t.Fatalf("%s, round %d: address %s, was %s", name, i, r.Interfaces[0].Addresses[0], first)
			}
			ct.mustRun(t, "ip", "link", "show", "dev", "host0")
			if err := cl.Unregister(ctx, name); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The same container again and again: its old host0 goes with the old
	// pair, whose deletion the new register may meet half-done.
	ct := e.container()
	for i := 0; i < 20; i++ {
		if _, err := cl.Register(ctx, api.RegisterRequest{Name: "again", Leader: ct.pid, Network: api.NetworkRequest{Veth: true}}); err != nil {
			t.Fatalf("same container, round %d: %v", i, err)
		}
		if err := cl.Unregister(ctx, "again"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the old links' deletion", func() bool {
		out := e.host.MustRun(t, "ip", "-o", "link")
		return !strings.Contains(out, "ve-again") && !strings.Contains(out, ": nsp") && !strings.Contains(out, "ve-a-machine")
	})
	if b, _ := os.ReadFile(e.logPath); !strings.Contains(string(b), `msg="freed link name" link=ve-again as=nsp`) {
		t.Errorf("no link was renamed out of the way before its deletion; the log:\n%s", b)
	}
}
