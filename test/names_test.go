package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netspawn/netspawn/test/harness"
)

const upstreamName, upstreamAddr = "upstream.example", "203.0.113.7"

// withUpstream gives the world's "internet" a DNS server (dnsmasq) that
// knows one name, and makes it netspawnd's upstream.
func (w *world) withUpstream(t *testing.T) {
	t.Helper()
	harness.RequireTool(t, "dnsmasq")
	srv := w.inet.Command("dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
		"--listen-address="+inetAddr, "--bind-interfaces", "--port=53", "--pid-file=", "--user=root",
		"--address=/"+upstreamName+"/"+upstreamAddr, "--log-facility=/dev/null")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	rc := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(rc, []byte("nameserver "+inetAddr+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.Vars = append(w.Vars, "NETSPAWN_RESOLV_CONF="+rc)
}

// hostLookup runs getent on the host through the NSS module with
// "hosts: files netspawn dns" (see nssLookup).
func (w *world) hostLookup(t *testing.T, args ...string) (string, int, time.Duration) {
	t.Helper()
	return nssLookup(t, w.Env, "files netspawn dns", args...)
}

// nssLookup runs getent in e's namespace through the NSS module, in a
// private mount namespace whose nsswitch.conf has the given hosts line,
// whose /etc/hosts knows one extra name and whose resolv.conf points
// nowhere, so nothing reaches the machine's own resolver.
func nssLookup(t *testing.T, e *harness.Env, hosts string, args ...string) (string, int, time.Duration) {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"nsswitch.conf": "hosts: " + hosts + "\n",
		"hosts":         "127.0.0.1 localhost\n192.0.2.99 fromfiles\n",
		"resolv.conf":   "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script := fmt.Sprintf(`set -e
for f in nsswitch.conf hosts resolv.conf; do mount --bind %[1]s/$f /etc/$f; done
exec env LD_LIBRARY_PATH=%[2]s getent "$@"`, dir, e.Bin)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := e.NS.CommandContext(ctx, "unshare", append([]string{"-m", "--propagation", "private", "sh", "-c", script, "sh"}, args...)...)
	cmd.Env = append(os.Environ(), e.Vars...)
	start := time.Now()
	out, err := cmd.Output()
	took := time.Since(start)
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out)), code, took
}

func TestNames(t *testing.T) {
	w := newWorld(t)
	w.withUpstream(t)
	harness.RequireTool(t, "dig", "getent", "unshare")
	w.startContainer(t, "web", "sleep", "1000")
	w.startContainer(t, "db", "sleep", "1000")
	webAddr := strings.Split(strings.TrimSpace(w.Run("netspawnctl", "shell", "web", "sh", "-c", "ip -o -4 addr show dev host0 | awk '{print $4}'").Stdout), "/")[0]
	if webAddr == "" {
		t.Fatal("no address for web")
	}

	// Inside a container: bare names, the domain, upstream names.
	r := w.Netspawn("-M", "client", "-n", "sh", "-c",
		"nslookup -type=a web | awk '/^Address: / {print $2}'; nslookup db.netspawn.internal >/dev/null && echo db-ok; "+
			"nslookup -type=a "+upstreamName+" | awk '/^Address: / {print $2}'; ping -c1 -W2 web >/dev/null && echo ping-ok")
	want(t, r, webAddr+"\ndb-ok\n"+upstreamAddr+"\nping-ok")

	// From the host by DNS on its loopback address.
	dig := func(args ...string) string {
		out, _ := w.NS.Command("dig", append([]string{"@127.0.0.153", "+time=2", "+tries=1"}, args...)...).Output()
		return strings.TrimSpace(string(out))
	}
	if got := dig("+short", "WEB.netspawn.internal"); got != webAddr {
		t.Errorf("dig web: %q, want %q", got, webAddr)
	}
	if got := dig("+short", "-x", webAddr); got != "web.netspawn.internal." {
		t.Errorf("dig -x %s: %q", webAddr, got)
	}
	if got := dig("AAAA", "web.netspawn.internal"); !strings.Contains(got, "status: NOERROR") || !strings.Contains(got, "IN\tAAAA\tfd") {
		t.Errorf("AAAA of a machine is not its ULA address:\n%s", got)
	}
	if got := dig("nosuch.netspawn.internal"); !strings.Contains(got, "status: NXDOMAIN") || !strings.Contains(got, "SOA") {
		t.Errorf("unknown name under the domain is not NXDOMAIN with SOA:\n%s", got)
	}
	if got := dig("+tcp", "+short", "db"); got == "" {
		t.Errorf("bare name over TCP: no answer")
	}
	// Not an open resolver on the uplink.
	if out, _ := w.inet.Command("dig", "@"+uplinkAddr, "+time=1", "+tries=1", "+short", "web").CombinedOutput(); strings.Contains(string(out), webAddr) {
		t.Errorf("DNS answered on the uplink: %s", out)
	}

	// From the host through the NSS module.
	if out, code, _ := w.hostLookup(t, "ahostsv4", "web"); code != 0 || !strings.HasPrefix(out, webAddr) {
		t.Errorf("getent ahostsv4 web: %d %q", code, out)
	}
	// getent hosts asks for IPv6 first: the machine's ULA address.
	if out, code, _ := w.hostLookup(t, "hosts", "web"); code != 0 || !strings.HasPrefix(out, "fd") || !strings.HasSuffix(out, " web") {
		t.Errorf("getent hosts web: %d %q", code, out)
	}
	if out, code, _ := w.hostLookup(t, "ahosts", "db"); code != 0 || !strings.Contains(out, "STREAM") {
		t.Errorf("getent ahosts db: %d %q", code, out)
	}
	if out, code, _ := w.hostLookup(t, "hosts", webAddr); code != 0 || !strings.Contains(out, "web") {
		t.Errorf("getent hosts %s: %d %q", webAddr, code, out)
	}
	out, code, took := w.hostLookup(t, "hosts", "missing-machine")
	t.Logf("a missing name failed in %s", took.Round(time.Millisecond))
	if code == 0 {
		t.Errorf("missing name resolved: %q", out)
	}
	// A hung controller: lookups fail quickly, files still answers.
	pid := strings.TrimSpace(string(mustOutput(t, w.NS.Command("sh", "-c", "cat "+w.RuntimeDir+"/netspawnd.pid 2>/dev/null || pgrep -f 'netspawnd --runtime-dir "+w.RuntimeDir+"'"))))
	var dpid int
	fmt.Sscanf(strings.Fields(pid + " 0")[0], "%d", &dpid)
	if dpid <= 0 {
		t.Fatalf("netspawnd pid not found: %q", pid)
	}
	_ = syscall.Kill(dpid, syscall.SIGSTOP)
	defer syscall.Kill(dpid, syscall.SIGCONT)
	_, code, took = w.hostLookup(t, "hosts", "web")
	t.Logf("with netspawnd stopped, a lookup failed in %s", took.Round(time.Millisecond))
	if code == 0 {
		t.Errorf("lookup through a stopped controller succeeded")
	}
	if out, code, _ := w.hostLookup(t, "hosts", "fromfiles"); code != 0 || !strings.Contains(out, "192.0.2.99") {
		t.Errorf("files no longer answers with netspawnd stopped: %d %q", code, out)
	}
	_ = syscall.Kill(dpid, syscall.SIGCONT)

	// Names go with their machines.
	if r := w.Run("netspawnctl", "terminate", "db"); r.Code != 0 {
		t.Fatal(r.Stderr)
	}
	w.waitGone(t, "ve-db")
	if got := dig("+short", "db"); got != "" {
		t.Errorf("db still resolves after it stopped: %q", got)
	}
}

func mustOutput(t *testing.T, cmd *exec.Cmd) []byte {
	t.Helper()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	return out
}
