package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netspawn/netspawn/internal/testutil"
	"github.com/netspawn/netspawn/test/harness"
)

// The CNI plugin's tests: cnitool (built by the test from the CNI module)
// and the plugin binary itself against network namespaces the test makes,
// bind-mounted on files in its own temporary directory as a runtime does
// under /run/netns; the test's namespace plays the host, and netspawnd is
// started on demand by the plugin, as a runtime would have it.

// debianCNIDir holds Debian's reference plugins (containernetworking-plugins).
const debianCNIDir = "/usr/lib/cni"

var (
	cnitoolOnce sync.Once
	cnitoolPath string
	cnitoolErr  error
)

// cnitool builds github.com/containernetworking/cni/cnitool once.
func cnitool(t *testing.T) string {
	t.Helper()
	cnitoolOnce.Do(func() {
		dir, err := harness.SharedDir("netspawn-cnitool-")
		if err != nil {
			cnitoolErr = err
			return
		}
		cnitoolPath = filepath.Join(dir, "cnitool")
		out, err := exec.Command("go", "build", "-o", cnitoolPath, "github.com/containernetworking/cni/cnitool").CombinedOutput()
		if err != nil {
			cnitoolErr = fmt.Errorf("go build cnitool: %v: %s", err, out)
		}
	})
	if cnitoolErr != nil {
		t.Fatal(cnitoolErr)
	}
	return cnitoolPath
}

// cniWorld is a host namespace with an uplink to an "internet" namespace,
// a CNI plugin directory (netspawn and Debian's reference plugins) and a
// directory of network configurations.
type cniWorld struct {
	*world
	plugins string
	confDir string
	nsDir   string
}

func newCNIWorld(t *testing.T) *cniWorld {
	t.Helper()
	w := &cniWorld{world: newWorld(t), plugins: t.TempDir(), confDir: t.TempDir(), nsDir: t.TempDir()}
	if err := os.Symlink(filepath.Join(w.Bin, "netspawn-cni"), filepath.Join(w.plugins, "netspawn")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"portmap", "bandwidth", "tuning", "bridge", "host-local", "loopback"} {
		src := filepath.Join(debianCNIDir, p)
		if _, err := os.Stat(src); err != nil {
			harness.Unavailable(t, "needs Debian's containernetworking-plugins ("+src+")")
		}
		if err := os.Symlink(src, filepath.Join(w.plugins, p)); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// conf writes a network configuration (.conf or .conflist by its content).
func (w *cniWorld) conf(t *testing.T, name, body string) string {
	t.Helper()
	ext := ".conf"
	if strings.Contains(body, `"plugins"`) {
		ext = ".conflist"
	}
	p := filepath.Join(w.confDir, name+ext)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// netns makes a network namespace held by a bind mount on a file of the
// test's, as `ip netns add` does under /run/netns; removed at the end.
func (w *cniWorld) netns(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(w.nsDir, name)
	if err := harness.BindNetNS(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { harness.UnbindNetNS(p) })
	return p
}

// in runs a command inside namespace path.
func in(path string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + path, "--"}, args...)...)
}

// cnitool runs cnitool in the host namespace.
// hostLinksGone waits until no host link of an attachment is left: a DEL
// frees the link's names in the background (netspawnd renames it out of
// the way, then the kernel deletes it), so they go a few milliseconds after
// the DEL returns, not with it. It returns the last listing.
func (w *cniWorld) hostLinksGone() (string, bool) {
	var out []byte
	var err error
	ok := testutil.Eventually(10*time.Second, func() bool {
		out, err = w.NS.Command("ip", "-o", "link").CombinedOutput()
		return err == nil && !strings.Contains(string(out), "ve-")
	})
	if err != nil {
		return fmt.Sprintf("%v: %s", err, out), false
	}
	return string(out), ok
}

func (w *cniWorld) cnitool(t *testing.T, env []string, args ...string) harness.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := w.NS.CommandContext(ctx, cnitool(t), args...)
	cmd.Env = append(append(os.Environ(), w.Vars...), append([]string{"CNI_PATH=" + w.plugins, "NETCONFPATH=" + w.confDir}, env...)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := harness.Result{Stdout: stdout.String(), Stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("cnitool %v: %v", args, err)
	}
	return r
}

// cniError is a plugin's error result.
type cniError struct {
	Code    uint   `json:"code"`
	Msg     string `json:"msg"`
	Details string `json:"details"`
}

// plugin runs the netspawn plugin binary itself with a command and
// configuration, in the host namespace; it returns stdout and the error
// result, if any.
func (w *cniWorld) plugin(t *testing.T, command, conf, containerID, netns, ifname, args string) (string, *cniError) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := w.NS.CommandContext(ctx, filepath.Join(w.plugins, "netspawn"))
	cmd.Env = append(append(os.Environ(), w.Vars...), "CNI_COMMAND="+command, "CNI_CONTAINERID="+containerID,
		"CNI_NETNS="+netns, "CNI_IFNAME="+ifname, "CNI_ARGS="+args, "CNI_PATH="+w.plugins)
	cmd.Stdin = strings.NewReader(conf)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err == nil {
		return string(out), nil
	}
	var ce cniError
	if jerr := json.Unmarshal(out, &ce); jerr != nil || ce.Code == 0 {
		// Not an error result: called from several goroutines, so no Fatal.
		return string(out), &cniError{Code: 99999, Msg: fmt.Sprintf("plugin %s: %v, stdout %q, stderr %q", command, err, out, stderr.String())}
	}
	return string(out), &ce
}

// cniResult is the part of a CNI 1.1 result the tests read.
type cniResult struct {
	CNIVersion string `json:"cniVersion"`
	Interfaces []struct {
		Name    string `json:"name"`
		Mac     string `json:"mac"`
		Sandbox string `json:"sandbox"`
	} `json:"interfaces"`
	IPs []struct {
		Address   string `json:"address"`
		Gateway   string `json:"gateway"`
		Interface *int   `json:"interface"`
	} `json:"ips"`
	Routes []struct {
		Dst string `json:"dst"`
		GW  string `json:"gw"`
	} `json:"routes"`
	DNS struct {
		Nameservers []string `json:"nameservers"`
		Search      []string `json:"search"`
	} `json:"dns"`
}

func parseResult(t *testing.T, s string) cniResult {
	t.Helper()
	var r cniResult
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		t.Fatalf("result %q: %v", s, err)
	}
	return r
}

// checkShape checks a result as the spec and the reference plugins shape
// it: the host side without a sandbox, the container side with the
// namespace's path, addresses pointing at the container side, default
// routes and a resolver. It returns the container's IPv4 address.
func checkShape(t *testing.T, r cniResult, netns, ifname string) netip.Addr {
	t.Helper()
	if len(r.Interfaces) != 2 || r.Interfaces[0].Sandbox != "" || !strings.HasPrefix(r.Interfaces[0].Name, "ve-") ||
		r.Interfaces[1].Name != ifname || r.Interfaces[1].Sandbox != netns || r.Interfaces[1].Mac == "" {
		t.Fatalf("interfaces: %+v", r.Interfaces)
	}
	var v4 netip.Addr
	var has6 bool
	for _, ip := range r.IPs {
		if ip.Interface == nil || *ip.Interface != 1 {
			t.Errorf("ip %s: interface %v, want 1 (the container side)", ip.Address, ip.Interface)
		}
		p, err := netip.ParsePrefix(ip.Address)
		if err != nil || ip.Gateway == "" {
			t.Errorf("ip %+v", ip)
			continue
		}
		if p.Addr().Is4() {
			v4 = p.Addr()
		} else {
			has6 = true
		}
	}
	if !v4.IsValid() || !has6 {
		t.Errorf("ips %+v: want an IPv4 and an IPv6 address", r.IPs)
	}
	if len(r.Routes) != 2 || len(r.DNS.Nameservers) == 0 {
		t.Errorf("routes %+v dns %+v", r.Routes, r.DNS)
	}
	return v4
}

// resolveIn runs a busybox command inside netns with a private mount
// namespace whose resolv.conf names dns (netspawnd's resolver).
func resolveIn(t *testing.T, netns, dns string, args ...string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte("nameserver "+dns+"\nsearch netspawn.internal\noptions timeout:1 attempts:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "nsswitch.conf"), []byte("hosts: files dns\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`set -e; mount --bind %[1]s/resolv.conf /etc/resolv.conf; mount --bind %[1]s/nsswitch.conf /etc/nsswitch.conf; exec "$@"`, dir)
	out, err := in(netns, append([]string{"unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", harness.BusyboxPath}, args...)...).CombinedOutput()
	return string(out), err
}

// serveIn runs busybox httpd on port 80 inside netns, serving page.
func serveIn(t *testing.T, netns, page string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte(page+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := in(netns, harness.BusyboxPath, "httpd", "-f", "-p", "80", "-h", dir)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = srv.Wait(); close(done) }()
	t.Cleanup(func() { harness.Stop(srv.Process, done) })
}

// machines lists netspawnd's machines by name.
func machines(t *testing.T, e *harness.Env) map[string]map[string]any {
	t.Helper()
	r := e.Run("netspawnctl", "list", "-o", "json")
	if r.Code != 0 {
		t.Fatalf("netspawnctl list: %s", r.Stderr)
	}
	var ms []map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &ms); err != nil {
		t.Fatalf("list: %v: %q", err, r.Stdout)
	}
	out := map[string]map[string]any{}
	for _, m := range ms {
		out[m["name"].(string)] = m
	}
	return out
}

// nftRuleset is the host namespace's nftables ruleset.
func nftRuleset(t *testing.T, e *harness.Env) string {
	t.Helper()
	out, err := e.NS.Command("nft", "list", "ruleset").CombinedOutput()
	if err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	return string(out)
}

const podsConf = `{"cniVersion": "1.1.0", "name": "pods", "type": "netspawn",
 "capabilities": {"portMappings": true, "ips": true, "mac": true, "dns": true}}`

// TestCNICnitool: add, check and del with cnitool; names, NAT, port
// mappings on the host's localhost; an attachment surviving kill -9 of
// netspawnd.
func TestCNICnitool(t *testing.T) {
	w := newCNIWorld(t)
	w.conf(t, "pods", podsConf)
	web, db := w.netns(t, "web"), w.netns(t, "db")

	r := w.cnitool(t, []string{"CNI_ARGS=NETSPAWN_NAME=web", `CAP_ARGS={"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}`}, "add", "pods", web)
	if r.Code != 0 {
		t.Fatalf("cnitool add web: %s %s", r.Stdout, r.Stderr)
	}
	res := parseResult(t, r.Stdout)
	if res.CNIVersion != "1.1.0" {
		t.Errorf("result version %q", res.CNIVersion)
	}
	webAddr := checkShape(t, res, web, "eth0")
	dns := res.DNS.Nameservers[0]
	if out, err := in(web, "ip", "-o", "-4", "addr", "show", "dev", "eth0").CombinedOutput(); err != nil || !strings.Contains(string(out), webAddr.String()+"/") {
		t.Fatalf("eth0 in web: %v %s", err, out)
	}
	if r := w.cnitool(t, []string{"CNI_ARGS=NETSPAWN_NAME=web"}, "check", "pods", web); r.Code != 0 {
		t.Errorf("cnitool check web: %s %s", r.Stdout, r.Stderr)
	}
	r = w.cnitool(t, []string{"CNI_ARGS=K8S_POD_NAME=db;K8S_POD_NAMESPACE=prod"}, "add", "pods", db)
	if r.Code != 0 {
		t.Fatalf("cnitool add db: %s %s", r.Stdout, r.Stderr)
	}
	dbAddr := checkShape(t, parseResult(t, r.Stdout), db, "eth0")
	ms := machines(t, w.Env)
	if ms["web"]["service"] != "cni" || ms["db.prod"] == nil {
		t.Fatalf("netspawnctl list: %v", ms)
	}

	// By name from one to the other (netspawnd's DNS), and on the host (NSS).
	if !testutil.Eventually(10*time.Second, func() bool {
		out, err := resolveIn(t, web, dns, "ping", "-4", "-c1", "-W1", "db.prod")
		return err == nil && strings.Contains(out, dbAddr.String())
	}) {
		out, err := resolveIn(t, web, dns, "ping", "-4", "-c1", "-W1", "db.prod")
		t.Errorf("web -> db.prod by name: %v %s", err, out)
	}
	if out, _, _ := nssLookup(t, w.Env, "files netspawn", "ahostsv4", "web"); !strings.Contains(out, webAddr.String()) {
		t.Errorf("host's NSS lookup of web: %q, want %s", out, webAddr)
	}
	// The internet namespace through NAT: it sees the host's uplink address.
	if got := strings.TrimSpace(func() string {
		out, _ := in(web, "timeout", "5", harness.BusyboxPath, "wget", "-q", "-O", "-", "http://"+inetAddr+"/cgi-bin/ip").Output()
		return string(out)
	}()); got != uplinkAddr {
		t.Errorf("web -> internet: the server saw %q, want %s (masqueraded)", got, uplinkAddr)
	}
	// The port mapping on the host's 127.0.0.1 and [::1].
	serveIn(t, web, "hello from web")
	w.waitServing(t, "http://127.0.0.1:8080/", "hello from web")
	w.waitServing(t, "http://[::1]:8080/", "hello from web")

	// kill -9 netspawnd: the attachment lives on, and the next call (a
	// CHECK, which starts netspawnd again) finds it reconciled.
	killNetspawnd(t, w.Env)
	if out, err := in(web, harness.BusyboxPath, "ping", "-c1", "-W2", dbAddr.String()).CombinedOutput(); err != nil {
		t.Errorf("web -> db while netspawnd is away: %v %s", err, out)
	}
	if r := w.cnitool(t, []string{"CNI_ARGS=NETSPAWN_NAME=web"}, "check", "pods", web); r.Code != 0 {
		t.Errorf("cnitool check web after kill -9 netspawnd: %s %s", r.Stdout, r.Stderr)
	}
	if ms := machines(t, w.Env); ms["web"] == nil || ms["db.prod"] == nil {
		t.Errorf("after netspawnd's restart: %v", ms)
	}
	w.waitServing(t, "http://127.0.0.1:8080/", "hello from web")

	for _, x := range []struct{ args, ns string }{{"NETSPAWN_NAME=web", web}, {"K8S_POD_NAME=db;K8S_POD_NAMESPACE=prod", db}} {
		for range 2 { // a DEL of what is gone already succeeds
			if r := w.cnitool(t, []string{"CNI_ARGS=" + x.args}, "del", "pods", x.ns); r.Code != 0 {
				t.Errorf("cnitool del %s: %s %s", x.ns, r.Stdout, r.Stderr)
			}
		}
	}
	if ms := machines(t, w.Env); len(ms) != 0 {
		t.Errorf("after del: %v", ms)
	}
	if out, ok := w.hostLinksGone(); !ok {
		t.Errorf("host links after del: %s", out)
	}
	if rs := nftRuleset(t, w.Env); strings.Contains(rs, webAddr.String()) || strings.Contains(rs, dbAddr.String()) || strings.Contains(rs, `"ve-`) {
		t.Errorf("nftables still names a deleted attachment:\n%s", rs)
	}
	if out, code, _ := nssLookup(t, w.Env, "files netspawn", "ahostsv4", "web"); code == 0 {
		t.Errorf("web still resolves after del: %q", out)
	}
}

// TestCNIBadInput: each mistake gets a CNI error with the right code and
// a message saying what to fix, and leaves nothing behind.
func TestCNIBadInput(t *testing.T) {
	w := newCNIWorld(t)
	ns := w.netns(t, "bad")
	cases := []struct {
		name, conf, netns, args string
		code                    uint
		want                    string
	}{
		{"malformed", `{"cniVersion": "1.1.0", "name": "pods", "type": "netspawn", "zone": 7}`, ns, "", 6, "not valid JSON"},
		{"ipam", `{"cniVersion": "1.1.0", "name": "pods", "type": "netspawn", "ipam": {"type": "host-local"}}`, ns, "", 7, "remove the \"ipam\" section"},
		{"zone name", `{"cniVersion": "1.1.0", "name": "pods", "type": "netspawn", "zone": "a-zone-name-far-too-long"}`, ns, "", 7, "zone"},
		{"no netns", podsConf, "/nonexistent/netns", "", 8, "/nonexistent/netns"},
		{"not a netns", podsConf, "/etc/hostname", "", 8, "/etc/hostname"},
		{"version", `{"cniVersion": "9.9.9", "name": "pods", "type": "netspawn"}`, ns, "", 1, "9.9.9"},
		{"ipv6 wanted", `{"cniVersion": "1.1.0", "name": "pods", "type": "netspawn", "runtimeConfig": {"ips": ["fd00::5/64"]}}`, ns, "", 7, "IPv4"},
		{"host ip", `{"cniVersion": "1.1.0", "name": "pods", "type": "netspawn", "runtimeConfig": {"portMappings": [{"hostPort": 80, "containerPort": 80, "protocol": "tcp", "hostIP": "10.1.2.3"}]}}`, ns, "", 7, "hostIP"},
		{"sctp", `{"cniVersion": "1.1.0", "name": "pods", "type": "netspawn", "runtimeConfig": {"portMappings": [{"hostPort": 80, "containerPort": 80, "protocol": "sctp"}]}}`, ns, "", 7, "sctp"},
		{"bad name", podsConf, ns, "NETSPAWN_NAME=no_underscores", 4, "NETSPAWN_NAME"},
		{"bad mac", `{"cniVersion": "1.1.0", "name": "pods", "type": "netspawn", "runtimeConfig": {"mac": "01:00:00:00:00:01"}}`, ns, "", 7, "unicast"},
	}
	for _, c := range cases {
		out, ce := w.plugin(t, "ADD", c.conf, "bad-"+strings.ReplaceAll(c.name, " ", "-"), c.netns, "eth0", c.args)
		if ce == nil {
			t.Errorf("%s: ADD succeeded: %s", c.name, out)
			continue
		}
		if ce.Code != c.code || !strings.Contains(ce.Msg+" "+ce.Details, c.want) {
			t.Errorf("%s: error %d %q, want code %d mentioning %q", c.name, ce.Code, ce.Msg, c.code, c.want)
		}
	}
	// A second ADD for the same container and interface names the first.
	if out, ce := w.plugin(t, "ADD", podsConf, "twice", ns, "eth0", ""); ce != nil {
		t.Fatalf("ADD: %+v %s", ce, out)
	}
	if _, ce := w.plugin(t, "ADD", podsConf, "twice", ns, "eth0", ""); ce == nil || ce.Code != 100 || !strings.Contains(ce.Msg, `machine "twice"`) {
		t.Errorf("second ADD: %+v, want code 100 naming machine \"twice\"", ce)
	}
	// Another container under a name in use: refused, the first untouched.
	if _, ce := w.plugin(t, "ADD", podsConf, "other", w.netns(t, "other"), "eth0", "NETSPAWN_NAME=twice"); ce == nil || ce.Code != 100 {
		t.Errorf("ADD under a taken name: %+v, want code 100", ce)
	}
	if ms := machines(t, w.Env); len(ms) != 1 || ms["twice"] == nil {
		t.Errorf("machines after the failures: %v (want only twice)", ms)
	}
	// netspawnctl's verbs that need a process refuse an attachment (it has
	// none: signalling "leader 0" would hit netspawnctl's process group).
	for _, verb := range [][]string{{"poweroff", "twice"}, {"kill", "twice"}, {"shell", "twice", "/bin/true"}} {
		if r := w.Run("netspawnctl", verb...); r.Code == 0 || !strings.Contains(r.Stderr, "network attachment") {
			t.Errorf("netspawnctl %v on an attachment: %d %q", verb, r.Code, r.Stderr)
		}
	}
	if _, ce := w.plugin(t, "DEL", podsConf, "twice", ns, "eth0", ""); ce != nil {
		t.Errorf("DEL: %+v", ce)
	}
	if out, ok := w.hostLinksGone(); !ok {
		t.Errorf("host links left: %s", out)
	}
}

// TestCNIConcurrentAdds: 50 ADDs at once give 50 distinct addresses; 50
// DELs at once leave nothing.
func TestCNIConcurrentAdds(t *testing.T) {
	w := newCNIWorld(t)
	const n = 50
	paths := make([]string, n)
	for i := range paths {
		paths[i] = w.netns(t, fmt.Sprintf("c%d", i))
	}
	addrs := make([]netip.Addr, n)
	errs := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, ce := w.plugin(t, "ADD", podsConf, fmt.Sprintf("c%d", i), paths[i], "eth0", "")
			if ce != nil {
				errs[i] = fmt.Sprintf("%d: %s", ce.Code, ce.Msg)
				return
			}
			var r cniResult
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				errs[i] = err.Error()
				return
			}
			for _, ip := range r.IPs {
				if p, err := netip.ParsePrefix(ip.Address); err == nil && p.Addr().Is4() {
					addrs[i] = p.Addr()
				}
			}
		}()
	}
	wg.Wait()
	seen := map[netip.Addr]int{}
	for i, a := range addrs {
		if errs[i] != "" {
			t.Errorf("ADD c%d: %s", i, errs[i])
			continue
		}
		if o, dup := seen[a]; dup {
			t.Errorf("c%d and c%d both got %s", o, i, a)
		}
		seen[a] = i
	}
	if len(seen) != n {
		t.Fatalf("%d distinct addresses for %d ADDs", len(seen), n)
	}
	// Each namespace has its address.
	for i, p := range paths {
		if out, err := in(p, "ip", "-o", "-4", "addr", "show", "dev", "eth0").CombinedOutput(); err != nil || !strings.Contains(string(out), addrs[i].String()+"/") {
			t.Errorf("c%d: %v %s", i, err, out)
		}
	}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, ce := w.plugin(t, "DEL", podsConf, fmt.Sprintf("c%d", i), paths[i], "eth0", ""); ce != nil {
				t.Errorf("DEL c%d: %+v", i, ce)
			}
		}()
	}
	wg.Wait()
	if ms := machines(t, w.Env); len(ms) != 0 {
		t.Errorf("after 50 DELs: %d machines", len(ms))
	}
}
