package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netspawn/netspawn/internal/testutil"
	"github.com/netspawn/netspawn/test/harness"
)

// world is a host namespace with an uplink to an "internet" namespace that
// runs a web server echoing the client's address.
type world struct {
	*harness.Env
	inet *harness.NetNS
}

const (
	inetAddr   = "198.51.100.1"
	uplinkAddr = "198.51.100.2"
)

func newWorld(t *testing.T) *world {
	t.Helper()
	e := harness.NewEnv(t)
	e.ShareTree()
	w := &world{Env: e, inet: harness.NewNetNS(t)}
	if err := harness.Veth(e.NS, w.inet, "up0", "inet0", uplinkAddr+"/24", inetAddr+"/24"); err != nil {
		t.Fatal(err)
	}
	if out, err := e.NS.Sh("ip route add default via " + inetAddr); err != nil {
		t.Fatalf("default route: %v %s", err, out)
	}
	www := t.TempDir()
	if err := os.MkdirAll(filepath.Join(www, "cgi-bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	cgi := "#!/bin/busybox sh\necho Content-Type: text/plain\necho\necho $REMOTE_ADDR\n"
	if err := os.WriteFile(filepath.Join(www, "cgi-bin/ip"), []byte(cgi), 0o755); err != nil {
		t.Fatal(err)
	}
	srv := w.inet.Command("busybox", "httpd", "-f", "-p", inetAddr+":80", "-h", www)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	// A page for containers to serve.
	if err := os.MkdirAll(filepath.Join(e.Tree, "www"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.Tree, "www/index.html"), []byte("hello from the container\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return w
}

// fetch gets a URL from inside a namespace with busybox wget (wrapped in
// timeout: busybox 1.35's wget -T crashes).
// waitServing waits until url answers page (a server in a container has
// bound its port).
func (w *world) waitServing(t *testing.T, url, page string) {
	t.Helper()
	if !testutil.Eventually(15*time.Second, func() bool { return fetch(w.NS, url) == page }) {
		t.Fatalf("%s never answered %q", url, page)
	}
}

func fetch(ns *harness.NetNS, url string) string {
	out, _ := ns.Command("timeout", "5", "busybox", "wget", "-q", "-O", "-", url).Output()
	return strings.TrimSpace(string(out))
}

// startContainer runs netspawn in the background and waits until its host
// link exists.
func (w *world) startContainer(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := w.Command("netspawn", append([]string{"-q", "-D", w.Tree, "-M", name, "-n"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { harness.Stop(cmd.Process, done) })
	for i := 0; i < 100; i++ {
		// Its link is made before its first process runs; that process
		// is then named its leader.
		if w.linkExists("ve-"+name) && status(t, w.Env, name).Leader > 0 {
			return cmd
		}
		select {
		case <-done:
			t.Fatalf("netspawn %s exited early: %s", name, stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("ve-%s did not appear", name)
	return nil
}

func (w *world) linkExists(name string) bool {
	return w.NS.Command("ip", "link", "show", name).Run() == nil
}

// linkGoesSoon reports whether the link is gone within 10 s: netspawnd
// deletes a machine's links in the background, so they go shortly after
// the call that ended it returns, not with it.
func (w *world) linkGoesSoon(name string) bool {
	return testutil.Eventually(10*time.Second, func() bool { return !w.linkExists(name) })
}

// waitGone polls until the link is gone and returns how long it took.
func (w *world) waitGone(t *testing.T, name string) time.Duration {
	t.Helper()
	start := time.Now()
	if !testutil.Eventually(10*time.Second, func() bool { return !w.linkExists(name) }) {
		t.Fatalf("%s still exists 10s after its container ended", name)
	}
	return time.Since(start)
}

func TestVethCommandMode(t *testing.T) {
	w := newWorld(t)
	// The payload has its address, route and resolver at its first instruction.
	r := w.Netspawn("-M", "web", "-n", "sh", "-c", "ip -o -4 addr show dev host0 | awk '{print $4}'; ip route | grep default; ping -c1 -W2 $(ip route | awk '/default/ {print $3}') >/dev/null && echo gw-ok; grep -c nameserver /etc/resolv.conf")
	if r.Code != 0 {
		t.Fatalf("status %d: %s", r.Code, r.Stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if len(lines) != 4 || !strings.HasSuffix(lines[0], "/28") || !strings.Contains(lines[1], "default via") || lines[2] != "gw-ok" {
		t.Fatalf("container network: %q", r.Stdout)
	}
	addr := lines[0]
	// Same machine, same address next time.
	want(t, w.Netspawn("-M", "web", "-n", "sh", "-c", "ip -o -4 addr show dev host0 | awk '{print $4}'"), addr)
	// The link went with the container.
	w.waitGone(t, "ve-web")
	// Traffic to the internet leaves masqueraded as the uplink's address.
	want(t, w.Netspawn("-M", "web", "-n", "sh", "-c", "timeout 5 wget -qO- http://"+inetAddr+"/cgi-bin/ip"), uplinkAddr)
	// --private-network alone: only lo.
	want(t, w.Netspawn("--private-network", "sh", "-c", "ip -o link | awk -F': ' '{print $2}'"), "lo")
}

func TestPortForwards(t *testing.T) {
	w := newWorld(t)
	w.startContainer(t, "web", "-p", "8080:80", "httpd", "-f", "-p", "80", "-h", "/www")
	const page = "hello from the container"
	w.waitServing(t, "http://127.0.0.1:8080/", page)
	if got := fetch(w.NS, "http://127.0.0.1:8080/"); got != page {
		t.Errorf("from the host's 127.0.0.1: %q", got)
	}
	if got := fetch(w.NS, "http://"+uplinkAddr+":8080/"); got != page {
		t.Errorf("from the host's uplink address: %q", got)
	}
	if got := fetch(w.inet, "http://"+uplinkAddr+":8080/"); got != page {
		t.Errorf("from a remote namespace: %q", got)
	}
	// Hairpin: another container reaching the forward through the host's address.
	want(t, w.Netspawn("-M", "client", "-n", "sh", "-c", "timeout 5 wget -qO- http://"+uplinkAddr+":8080/"), page)
	// netspawnctl lists it with its address.
	out, err := w.Command("netspawnctl", "list").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "web") {
		t.Errorf("netspawnctl list: %v %s", err, out)
	}
	// A second container asking for the same host port is refused before it starts.
	r := w.Netspawn("-M", "other", "-n", "-p", "8080:80", "true")
	if r.Code == 0 || !strings.Contains(r.Stderr, "8080") {
		t.Errorf("duplicate host port: status %d, stderr %q", r.Code, r.Stderr)
	}
	if w.linkExists("ve-other") {
		t.Error("refused container left its link behind")
	}
}

func TestCleanupAfterSIGKILL(t *testing.T) {
	w := newWorld(t)
	cmd := w.startContainer(t, "doomed", "-p", "9090:80", "sleep", "1000")
	_ = cmd.Process.Signal(syscall.SIGKILL)
	took := w.waitGone(t, "ve-doomed")
	t.Logf("ve-doomed removed %s after SIGKILL of netspawn", took.Round(time.Millisecond))
	// netspawnd removes the machine's cgroups, which its netspawn could not.
	scopes := func() []string {
		a, _ := filepath.Glob("/sys/fs/cgroup/*/machine.slice/machine-doomed.scope")
		b, _ := filepath.Glob("/sys/fs/cgroup/machine.slice/machine-doomed.scope")
		return append(a, b...)
	}
	if !testutil.Eventually(10*time.Second, func() bool { return len(scopes()) == 0 }) {
		t.Errorf("the machine's cgroups are left after SIGKILL of netspawn: %v", scopes())
	}
	// Its port is free again.
	w.startContainer(t, "next", "-p", "9090:80", "sleep", "1000")
}

func TestDHCPInContainerAndLeases(t *testing.T) {
	w := newWorld(t)
	// udhcpc inside a container gets exactly the address command mode set.
	r := w.Netspawn("-M", "dyn", "-n", "sh", "-c",
		"want=$(ip -o -4 addr show dev host0 | awk '{print $4}' | cut -d/ -f1); ip addr flush dev host0; "+
			"timeout 10 udhcpc -i host0 -n -q -s /bin/true 2>&1 | sed -n 's/.*lease of \\([0-9.]*\\) obtained.*/\\1/p' > /tmp/got; "+
			"test \"$(cat /tmp/got)\" = \"$want\" && echo same")
	want(t, r, "same")
	out := w.Run("netspawnctl", "leases", "-o", "json")
	if out.Code != 0 || !strings.Contains(out.Stdout, `"hostname": "dyn"`) || !strings.Contains(out.Stdout, `"link": "ve-dyn"`) {
		t.Fatalf("netspawnctl leases: %s %s", out.Stdout, out.Stderr)
	}
	tbl := w.Run("netspawnctl", "leases", "ve-dyn")
	if !strings.Contains(tbl.Stdout, "ve-dyn") || !strings.Contains(tbl.Stdout, "1 leases listed.") {
		t.Fatalf("netspawnctl leases ve-dyn: %s", tbl.Stdout)
	}
}

func TestVethExtraAndSettingsFile(t *testing.T) {
	w := newWorld(t)
	// An extra veth pair: named on both sides, no address.
	r := w.Netspawn("-M", "extra", "-n", "--network-veth-extra=vx-extra:inner0", "sh", "-c", "ip -o link show inner0 >/dev/null && echo inner")
	want(t, r, "inner")
	// The same machine configured by a trusted .nspawn file.
	dir := t.TempDir()
	conf := "[Exec]\nParameters=httpd -f -p 80 -h /www\n\n[Network]\nVirtualEthernet=yes\nPort=tcp:8181:80\n"
	if err := os.WriteFile(filepath.Join(dir, "fromfile.nspawn"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	w.Vars = append(w.Vars, "NETSPAWN_SETTINGS_PATH="+dir)
	w.startContainer(t, "fromfile")
	w.waitServing(t, "http://127.0.0.1:8181/", "hello from the container") // the port from the .nspawn file
}

func TestControllerKill9(t *testing.T) {
	w := newWorld(t)
	w.startContainer(t, "one", "-p", "8282:80", "httpd", "-f", "-p", "80", "-h", "/www")
	w.startContainer(t, "two", "sleep", "1000")
	w.waitServing(t, "http://127.0.0.1:8282/", "hello from the container")
	before := w.Run("netspawnctl", "list", "-o", "json").Stdout
	out, _ := w.NS.Command("pgrep", "-f", "netspawnd --runtime-dir "+w.RuntimeDir).Output()
	for _, pid := range strings.Fields(string(out)) {
		_ = w.NS.Command("kill", "-9", pid).Run()
	}
	if !testutil.Eventually(10*time.Second, func() bool {
		return w.NS.Command("pgrep", "-f", "netspawnd --runtime-dir "+w.RuntimeDir).Run() != nil
	}) {
		t.Fatal("netspawnd survived kill -9")
	}
	// The next client starts a new netspawnd, which adopts both machines.
	after := w.Run("netspawnctl", "list", "-o", "json")
	if after.Code != 0 || after.Stdout != before {
		t.Fatalf("machines changed across kill -9 of netspawnd:\nbefore %s\nafter %s %s", before, after.Stdout, after.Stderr)
	}
	if got := fetch(w.NS, "http://127.0.0.1:8282/"); got != "hello from the container" {
		t.Errorf("forward after the restart: %q", got)
	}
	want(t, w.Run("netspawnctl", "shell", "two", "sh", "-c", "ping -c1 -W2 one >/dev/null && echo ok"), "ok")
	// A third machine gets an address of its own.
	r := w.Netspawn("-M", "three", "-n", "sh", "-c", "ip -o -4 addr show dev host0 | awk '{print $4}'")
	if r.Code != 0 || strings.Contains(before, strings.Split(strings.TrimSpace(r.Stdout), "/")[0]+"\"") {
		t.Fatalf("new machine after restart: %q %s (existing: %s)", r.Stdout, r.Stderr, before)
	}
}

// Another tool flushes the whole ruleset of the host (a firewall's reload,
// `nft flush ruleset`): netspawnd puts its table back by itself, with every
// machine's forwards, without waiting for the next machine to start.
func TestRulesetFlushedBehindOurBack(t *testing.T) {
	w := newWorld(t)
	w.startContainer(t, "flushed", "-p", "8383:80", "httpd", "-f", "-p", "80", "-h", "/www")
	w.waitServing(t, "http://127.0.0.1:8383/", "hello from the container")
	for _, how := range []string{"flush ruleset", "delete table inet netspawn", "flush chain inet netspawn prerouting"} {
		if out, err := w.NS.Sh("nft " + how); err != nil {
			t.Fatalf("nft %s: %v %s", how, err, out)
		}
		w.waitServing(t, "http://127.0.0.1:8383/", "hello from the container")
		if out, _ := w.NS.Sh("nft list table inet netspawn"); !strings.Contains(out, "chain") {
			t.Errorf("after nft %s the table is not back:\n%s", how, out)
		}
	}
}
