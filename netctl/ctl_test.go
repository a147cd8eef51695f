package netctl_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/netspawn/netspawn/netctl/api"
)

// ctl runs netspawnctl inside the test host namespace; when no daemon runs
// it starts the netspawnd next to it, in the same namespace.
func (e *env) ctl(args ...string) (string, error) {
	cmd := exec.Command("nsenter", append([]string{"--net=" + e.host.Path, "--", ctlBin}, args...)...)
	cmd.Env = append(os.Environ(), "NETSPAWN_RUNTIME_DIR="+e.rt, "NETSPAWN_STATE_DIR="+e.st)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestCtlStartsDaemonOnDemand(t *testing.T) {
	e := newEnv(t)
	var wg sync.WaitGroup
	outs := make([]string, 4)
	errs := make([]error, 4)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errs[i] = e.ctl("networks")
		}()
	}
	wg.Wait()
	// Whatever happens, stop the daemon that was started.
	cl, err := api.Connect(context.Background(), api.ConnectOptions{RuntimeDir: e.rt, NoStart: true})
	if err != nil {
		t.Fatalf("no daemon after netspawnctl: %v (%v %s)", err, errs[0], outs[0])
	}
	defer cl.Close()
	ping, err := cl.Ping(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(ping.PID, syscall.SIGTERM) })
	for i := range outs {
		if errs[i] != nil || !strings.Contains(outs[i], "0 networks listed") {
			t.Fatalf("concurrent netspawnctl %d: %v: %s", i, errs[i], outs[i])
		}
	}
	log, _ := os.ReadFile(e.rt + "/netspawnd.log")
	if n := strings.Count(string(log), "netspawnd ready"); n != 1 {
		t.Fatalf("%d daemons started:\n%s", n, log)
	}
	if st, err := os.Stat(e.rt + "/netspawnd.sock"); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", st.Mode(), err)
	}

	ct := e.container()
	if _, err := cl.Register(context.Background(), api.RegisterRequest{Name: "web", Leader: ct.pid, Root: "/",
		Network: api.NetworkRequest{Veth: true, Ports: []api.Port{{Protocol: "tcp", HostPort: 8080, ContainerPort: 80}}}}); err != nil {
		t.Fatal(err)
	}
	out, err := e.ctl("list")
	if err != nil || !strings.Contains(out, "MACHINE") || !strings.Contains(out, "web") || !strings.Contains(out, "container") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	out, err = e.ctl("list", "-o", "json")
	var ms []api.Machine
	if err != nil || json.Unmarshal([]byte(out), &ms) != nil || len(ms) != 1 || ms[0].Leader != ct.pid {
		t.Fatalf("list -o json: %v\n%s", err, out)
	}
	out, err = e.ctl("status", "web")
	if err != nil || !strings.Contains(out, "ve-web <-> host0") || !strings.Contains(out, "tcp 8080 -> 80") {
		t.Fatalf("status: %v\n%s", err, out)
	}
	t.Logf("netspawnctl status web:\n%s", out)
	out, err = e.ctl("networks")
	if err != nil || !strings.Contains(out, "ve-web") || !strings.Contains(out, "active") {
		t.Fatalf("networks: %v\n%s", err, out)
	}
	if out, err := e.ctl("status", "nope"); err == nil || !strings.Contains(out, `no machine "nope"`) {
		t.Fatalf("status of a missing machine: %v %s", err, out)
	}
}

func TestKilledDaemonRestartedOnDemand(t *testing.T) {
	e := newEnv(t)
	e.startDaemon()
	cl := e.client()
	a, b := e.container(), e.container()
	ra := register(t, cl, "a", a, api.Port{Protocol: "tcp", HostPort: 8080, ContainerPort: 80})
	register(t, cl, "b", b)
	e.stopDaemon(syscall.SIGKILL)
	out, err := e.ctl("list")
	if c, cerr := api.Connect(context.Background(), api.ConnectOptions{RuntimeDir: e.rt, NoStart: true}); cerr == nil {
		if p, perr := c.Ping(context.Background()); perr == nil {
			t.Cleanup(func() { syscall.Kill(p.PID, syscall.SIGKILL) })
		}
		c.Close()
	}
	if err != nil || !strings.Contains(out, "2 machines listed") || !strings.Contains(out, strings.Split(ra.Interfaces[0].Addresses[0], "/")[0]) {
		t.Fatalf("list after on-demand restart: %v\n%s", err, out)
	}
	httpd(t, a.ns(), 80, "a")
	expect(t, "forward after on-demand restart", nsArg(e.host), "http://127.0.0.1:8080/", "a")
}
