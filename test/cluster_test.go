package test

import (
	"bytes"
	"context"
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

// The cluster tests: hosts are network namespaces on an underlay bridge in
// another namespace, where a real etcd (Debian's etcd-server, the etcd
// users run; 3.4) listens. Each host has its own netspawnd with its own
// runtime and state directories, started with --cluster-etcd.

const (
	underlayNet = "198.18.0.0/24"
	etcdAddr    = "198.18.0.254"
	clusterTTL  = "3s"
)

type clusterHost struct {
	*harness.Env
	node     string
	underlay string
	daemon   *exec.Cmd
	done     chan struct{}
	log      *syncBuffer
}

type clusterWorld struct {
	t        *testing.T
	underlay *harness.NetNS
	etcd     *exec.Cmd
	etcdDone chan struct{}
	etcdDir  string
	hosts    []*clusterHost
}

// syncBuffer is a bytes.Buffer safe for a process's output and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newClusterWorld(t *testing.T, nodes ...string) *clusterWorld {
	t.Helper()
	harness.RequireRoot(t)
	harness.RequireTool(t, "etcd", "etcdctl")
	w := &clusterWorld{t: t, underlay: harness.NewNetNS(t), etcdDir: t.TempDir()}
	if out, err := w.underlay.Sh("ip link add ulbr0 type bridge && ip addr add " + etcdAddr + "/24 dev ulbr0 && ip link set ulbr0 up && ip link set lo up"); err != nil {
		t.Fatalf("underlay bridge: %v %s", err, out)
	}
	w.startEtcd()
	for i, n := range nodes {
		h := &clusterHost{Env: harness.NewEnv(t), node: n, underlay: fmt.Sprintf("198.18.0.%d", 11+i)}
		h.ShareTree()
		if err := harness.Veth(h.NS, w.underlay, "ul0", "ul-"+n, h.underlay+"/24", ""); err != nil {
			t.Fatal(err)
		}
		if out, err := w.underlay.Sh("ip link set ul-" + n + " master ulbr0"); err != nil {
			t.Fatalf("underlay port: %v %s", err, out)
		}
		w.hosts = append(w.hosts, h)
		w.startDaemon(h)
	}
	return w
}

func (w *clusterWorld) startEtcd() {
	t := w.t
	w.etcd = w.underlay.Command("etcd", "--name", "t", "--data-dir", w.etcdDir,
		"--listen-client-urls", "http://"+etcdAddr+":2379", "--advertise-client-urls", "http://"+etcdAddr+":2379",
		"--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", "t=http://127.0.0.1:2380", "--log-level", "warn")
	var log syncBuffer
	w.etcd.Stdout, w.etcd.Stderr = &log, &log
	if err := w.etcd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	w.etcdDone = done
	cmd := w.etcd
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { harness.Stop(cmd.Process, done) })
	if !testutil.Eventually(30*time.Second, func() bool {
		return w.underlay.Command("etcdctl", "--endpoints", "http://"+etcdAddr+":2379", "endpoint", "health").Run() == nil
	}) {
		t.Fatalf("etcd did not become healthy: %s", log.String())
	}
}

func (w *clusterWorld) stopEtcd() {
	harness.Stop(w.etcd.Process, w.etcdDone)
}

func (w *clusterWorld) startDaemon(h *clusterHost) {
	t := w.t
	h.log = &syncBuffer{}
	h.daemon = h.Command("netspawnd", "--config", "/dev/null", "--runtime-dir", h.RuntimeDir, "--state-dir", h.StateDir,
		"--cluster-etcd", "http://"+etcdAddr+":2379", "--cluster-node", h.node, "--cluster-address", h.underlay,
		"--cluster-ttl", clusterTTL, "--log-level", "debug")
	h.daemon.Stdout, h.daemon.Stderr = h.log, h.log
	if err := h.daemon.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	h.done = done
	cmd := h.daemon
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		harness.Stop(cmd.Process, done)
		if t.Failed() {
			t.Logf("netspawnd on %s:\n%s", h.node, lastN(h.log.String(), 40))
		}
	})
	if !testutil.Eventually(10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(h.RuntimeDir, "netspawnd.sock"))
		return err == nil
	}) {
		t.Fatalf("netspawnd on %s did not start: %s", h.node, h.log.String())
	}
}

// member starts a zone member that sleeps, and waits until its host lists
// it.
func (h *clusterHost) member(t *testing.T, name, zone string) {
	t.Helper()
	cmd := h.Command("netspawn", "-q", "-D", h.Tree, "-M", name, "--network-zone="+zone, "sleep", "1000")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { harness.Stop(cmd.Process, done) })
	if !testutil.Eventually(30*time.Second, func() bool {
		select {
		case <-done:
			t.Fatalf("netspawn -M %s on %s ended: %s", name, h.node, out.String())
		default:
		}
		r := h.Run("netspawnctl", "list", "--local")
		return strings.Contains(r.Stdout, name+" ")
	}) {
		t.Fatalf("%s never listed on %s: %s", name, h.node, out.String())
	}
}

// inMember runs a command in a running member's namespaces.
func (h *clusterHost) inMember(t *testing.T, name string, args ...string) harness.Result {
	t.Helper()
	return h.Run("netspawnctl", append([]string{"shell", name}, args...)...)
}

// lookup resolves a name on the host through the NSS module in a private
// mount namespace (its own nsswitch.conf and resolv.conf).
func (h *clusterHost) lookup(t *testing.T, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"nsswitch.conf": "hosts: files netspawn\n",
		"hosts":         "127.0.0.1 localhost\n",
		"resolv.conf":   "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script := fmt.Sprintf(`set -e
for f in nsswitch.conf hosts resolv.conf; do mount --bind %[1]s/$f /etc/$f; done
exec env LD_LIBRARY_PATH=%[2]s getent "$@"`, dir, h.Bin)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := h.NS.CommandContext(ctx, "unshare", append([]string{"-m", "--propagation", "private", "sh", "-c", script, "sh"}, args...)...)
	cmd.Env = append(os.Environ(), h.Vars...)
	out, _ := cmd.Output()
	return strings.TrimSpace(string(out))
}

// addrOf is a member's IPv4 address in the zone, as its host reports it.
func (h *clusterHost) addrOf(t *testing.T, name string) netip.Addr {
	t.Helper()
	r := h.Run("netspawnctl", "shell", name, "sh", "-c", "ip -4 -o addr show dev host0 | awk '{print $4}' | cut -d/ -f1")
	a, err := netip.ParseAddr(strings.TrimSpace(r.Stdout))
	if err != nil {
		t.Fatalf("address of %s on %s: %q %s", name, h.node, r.Stdout, r.Stderr)
	}
	return a
}

func TestClusterZone(t *testing.T) {
	w := newClusterWorld(t, "a", "b", "c")
	a, b, c := w.hosts[0], w.hosts[1], w.hosts[2]
	a.member(t, "web", "blue")
	b.member(t, "db", "blue")
	c.member(t, "cache", "blue")
	// The bridge table's handle: it changes only when netspawnd rebuilds the
	// table, which it must not do over and over (it once did, in a loop
	// restoring it after its own rebuild).
	tableHandle := func() string {
		out, _ := a.NS.Command("nft", "-a", "list", "table", "bridge", "netspawn").Output()
		first, _, _ := strings.Cut(string(out), "\n")
		return first
	}
	handleBefore := tableHandle()

	// Members on different hosts reach each other by name, both ways.
	for _, p := range []struct {
		h        *clusterHost
		from, to string
	}{{a, "web", "db"}, {b, "db", "web"}, {c, "cache", "web"}, {a, "web", "cache"}} {
		if !testutil.Eventually(15*time.Second, func() bool {
			return p.h.inMember(t, p.from, "ping", "-c1", "-W1", p.to).Code == 0
		}) {
			r := p.h.inMember(t, p.from, "ping", "-c1", "-W1", p.to)
			t.Errorf("%s on %s cannot ping %s: %s %s\n%s", p.from, p.h.node, p.to, r.Stdout, r.Stderr, p.h.Run("netspawnctl", "list").Stdout)
		}
	}
	if h := tableHandle(); h == "" || h != handleBefore {
		t.Errorf("the bridge table on host a was rebuilt while nothing happened to it: %q, then %q", handleBefore, h)
	}
	// One subnet for the zone; distinct addresses.
	wa, db := a.addrOf(t, "web"), b.addrOf(t, "db")
	if wa == db || netip.PrefixFrom(wa, 16).Masked() != netip.PrefixFrom(db, 16).Masked() {
		t.Errorf("web %s and db %s: want distinct addresses in one /16", wa, db)
	}
	// The host's NSS module on C resolves a machine on A.
	if !testutil.Eventually(10*time.Second, func() bool { return strings.Contains(c.lookup(t, "ahostsv4", "web"), wa.String()) }) {
		t.Errorf("getent ahostsv4 web on host c: %q, want %s", c.lookup(t, "ahostsv4", "web"), wa)
	}
	// list shows the whole cluster with a HOST column; --local this host's.
	out := a.Run("netspawnctl", "list").Stdout
	for _, want := range []string{"HOST", "web", "db", "cache"} {
		if !strings.Contains(out, want) {
			t.Errorf("netspawnctl list on a lacks %q:\n%s", want, out)
		}
	}
	if out := a.Run("netspawnctl", "list", "--local").Stdout; strings.Contains(out, "db ") {
		t.Errorf("netspawnctl list --local on a shows db:\n%s", out)
	}
	if out := a.Run("netspawnctl", "networks").Stdout; !strings.Contains(out, "vz-blue") || !strings.Contains(out, "vni") {
		t.Errorf("netspawnctl networks on a does not show the cluster zone:\n%s", out)
	}
	// The gateway is each host's own: members reach it and DNS through it.
	if r := b.inMember(t, "db", "sh", "-c", "ip route | awk '/default/ {print $3}' | xargs ping -c1 -W1"); r.Code != 0 {
		t.Errorf("db cannot reach its gateway: %s %s", r.Stdout, r.Stderr)
	}

	// A zone "red" stays apart from "blue" across hosts.
	b.member(t, "red1", "red")
	r := b.inMember(t, "red1", "sh", "-c", "ping -c1 -W1 "+wa.String()+" >/dev/null && echo reached; nslookup web 2>&1 | grep -c "+wa.String()+"; true")
	if strings.Contains(r.Stdout, "reached") {
		t.Errorf("red1 (zone red) reaches web (zone blue): %s", r.Stdout)
	}

	// Host B dies: its names leave A and C within the TTL and 2 s; A and C
	// keep talking.
	harness.Stop(b.daemon.Process, b.done)
	b.NS.KillAll()
	gone := time.Now()
	if !testutil.Eventually(3*time.Second+5*time.Second, func() bool { return !strings.Contains(a.Run("netspawnctl", "list").Stdout, "db ") }) {
		t.Errorf("db (host b dead) still listed on a %s later:\n%s", time.Since(gone), a.Run("netspawnctl", "list").Stdout)
	}
	t.Logf("host b's names gone from a %s after it died (TTL %s)", time.Since(gone).Round(100*time.Millisecond), clusterTTL)
	if r := a.inMember(t, "web", "ping", "-c1", "-W2", "cache"); r.Code != 0 {
		t.Errorf("web cannot ping cache after host b died: %s %s", r.Stdout, r.Stderr)
	}
}

// TestClusterEtcdOutage: etcd stopped, running members keep talking, a new
// member fails within 5 s naming etcd; etcd back, new members work and
// names come back without a restart of netspawnd.
func TestClusterEtcdOutage(t *testing.T) {
	w := newClusterWorld(t, "a", "b")
	a, b := w.hosts[0], w.hosts[1]
	a.member(t, "one", "green")
	b.member(t, "two", "green")
	if !testutil.Eventually(15*time.Second, func() bool { return a.inMember(t, "one", "ping", "-c1", "-W1", "two").Code == 0 }) {
		t.Fatalf("one cannot reach two")
	}
	twoAddr := b.addrOf(t, "two")
	w.stopEtcd()
	if r := a.inMember(t, "one", "ping", "-c1", "-W2", twoAddr.String()); r.Code != 0 {
		t.Errorf("with etcd stopped, running members stopped talking: %s %s", r.Stdout, r.Stderr)
	}
	start := time.Now()
	r := a.Netspawn("-M", "three", "--network-zone=green", "true")
	took := time.Since(start)
	if r.Code == 0 || !strings.Contains(r.Stderr, "etcd") {
		t.Errorf("a new member with etcd stopped: exit %d, stderr %q: want a failure naming etcd", r.Code, r.Stderr)
	}
	if took > 8*time.Second {
		t.Errorf("the failing start took %s; want it within about 5 s", took)
	}
	t.Logf("new member with etcd stopped failed after %s: %s", took.Round(10*time.Millisecond), strings.TrimSpace(r.Stderr))
	// etcd back: reconciled without a restart of netspawnd.
	w.startEtcd()
	if !testutil.Eventually(20*time.Second, func() bool {
		return a.Netspawn("-M", "three", "--network-zone=green", "ping", "-c1", "-W1", "two").Code == 0
	}) {
		r := a.Netspawn("-M", "three", "--network-zone=green", "ping", "-c1", "-W1", "two")
		t.Errorf("after etcd came back, a new member cannot reach two by name: %s %s", r.Stdout, r.Stderr)
	}
}

// TestClusterConcurrentStarts: many machines started at once on every
// host get distinct addresses, all claimed in etcd transactions.
func TestClusterConcurrentStarts(t *testing.T) {
	w := newClusterWorld(t, "a", "b", "c")
	per := 20
	if testing.Short() {
		per = 5
	}
	var wg sync.WaitGroup
	errs := make(chan string, per*len(w.hosts))
	addrs := make(chan string, per*len(w.hosts))
	for _, h := range w.hosts {
		for i := range per {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := fmt.Sprintf("m-%s-%d", h.node, i)
				r := h.Netspawn("-M", name, "--network-zone=many", "sh", "-c", "ip -4 -o addr show dev host0 | awk '{print $4}'")
				if r.Code != 0 {
					errs <- fmt.Sprintf("%s: exit %d: %s", name, r.Code, r.Stderr)
					return
				}
				addrs <- strings.TrimSpace(r.Stdout)
			}()
		}
	}
	wg.Wait()
	close(errs)
	close(addrs)
	for e := range errs {
		t.Error(e)
	}
	seen := map[string]bool{}
	for a := range addrs {
		if a == "" || seen[a] {
			t.Errorf("address %q given twice or missing", a)
		}
		seen[a] = true
	}
	t.Logf("%d machines on %d hosts, %d distinct addresses", per*len(w.hosts), len(w.hosts), len(seen))
}
