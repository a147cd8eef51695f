package netctl_test

import (
	"context"
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
	if len(r.Interfaces) != 1 || r.Interfaces[0].Name != "host0" || len(r.Interfaces[0].Addresses) != 1 || r.HostLinks[0] != "ve-web" {
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
	ms, err := cl.List(ctx)
	if err != nil || len(ms) != 1 || ms[0].Name != "web" || len(ms[0].Addresses) != 1 {
		t.Fatalf("list %+v %v", ms, err)
	}
	st, err := cl.Status(ctx, "web")
	if err != nil || len(st.Links) != 1 || !st.Links[0].Up || len(st.Ports) != 1 {
		t.Fatalf("status %+v %v", st, err)
	}

	if err := cl.Unregister(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if e.linkExists("ve-web") || strings.Contains(e.nftTable(), "8080") || strings.Contains(e.nftTable(), `"ve-web"`) {
		t.Fatalf("left behind after unregister:\n%s", e.nftTable())
	}
	if err := cl.Unregister(ctx, "web"); apiCode(err) != api.CodeNotFound {
		t.Fatalf("second unregister: %v", err)
	}

	// Register again: same address (persistent allocation). Then kill -9
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
	if e.linkExists("ve-b") {
		t.Fatal("refused machine left a link")
	}
	// tcp 5353 is a different forward.
	if _, err := cl.Register(ctx, api.RegisterRequest{Name: "b", Leader: b.pid, Network: api.NetworkRequest{Veth: true, Ports: []api.Port{{Protocol: "tcp", HostPort: 5353}}}}); err != nil {
		t.Fatal(err)
	}
	_, err = cl.Register(ctx, api.RegisterRequest{Name: "c", Leader: c.pid, Network: api.NetworkRequest{Veth: true}})
	if apiCode(err) != api.CodeExhausted {
		t.Fatalf("exhaustion: %v", err)
	}
	t.Log(err)
	if e.linkExists("ve-c") {
		t.Fatal("refused machine left a link")
	}
}
