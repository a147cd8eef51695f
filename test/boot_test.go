package test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/netspawn/netspawn/spawn/cgroup"
	"github.com/netspawn/netspawn/test/harness"
)

// pristineDebian is the cached Debian tree, not to be changed; when it
// cannot be made the test is skipped (failed under CI=true).
func pristineDebian(t *testing.T) string {
	t.Helper()
	harness.RequireTool(t, "debootstrap")
	pristine, err := harness.CachedDebianTree(harness.CacheDir(), nil)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return pristine
}

// debianTree gives the test its own copy of the cached Debian tree.
func debianTree(t *testing.T, e *harness.Env) string {
	t.Helper()
	dst := filepath.Join(filepath.Dir(e.Tree), "debian")
	if err := harness.CopyTree(pristineDebian(t), dst); err != nil {
		t.Fatal(err)
	}
	return dst
}

// booted is a running `netspawn -b` with its console output.
type booted struct {
	t    *testing.T
	e    *harness.Env
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	name string
}

func (b *booted) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out.Write(p)
}

func (b *booted) output() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out.String()
}

func boot(t *testing.T, e *harness.Env, tree, name string, args ...string) *booted {
	t.Helper()
	return bootFrom(t, e, []string{"-D", tree}, name, args...)
}

// bootFrom boots machine name from root (-D DIR or -i IMAGE) with args, its
// console kept for the log of a failed test.
func bootFrom(t *testing.T, e *harness.Env, root []string, name string, args ...string) *booted {
	t.Helper()
	b := &booted{t: t, e: e, name: name, done: make(chan struct{})}
	b.cmd = e.Command("netspawn", slices.Concat(root, []string{"-M", name, "-b", "--console=read-only"}, args)...)
	b.cmd.Stdout, b.cmd.Stderr = b, b
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = b.cmd.Wait(); close(b.done) }()
	t.Cleanup(func() {
		// As a user would: SIGTERM asks systemd to halt, and netspawn
		// cleans up after it (SIGKILL only if that takes too long).
		harness.Stop(b.cmd.Process, b.done)
		if t.Failed() {
			t.Logf("console of %s:\n%s", name, lastN(b.output(), 60))
		}
	})
	return b
}

func lastN(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// leader returns the host PID of the container's PID 1, from its cgroup
// (the scope's name escaped as systemd does: machine-cr\x2dboot.scope).
func (b *booted) leader() int {
	for _, root := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		data, err := os.ReadFile(filepath.Join(root, "machine.slice", cgroup.ScopeUnit(b.name), "payload/init.scope/cgroup.procs"))
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.Fields(string(data) + " 0")[0]); err == nil && pid > 0 {
			return pid
		}
	}
	return 0
}

// exec runs a command inside the booted container with netspawnctl shell.
func (b *booted) exec(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := b.e.NS.CommandContext(ctx, filepath.Join(b.e.Bin, "netspawnctl"), append([]string{"shell", b.name}, args...)...)
	cmd.Env = append(os.Environ(), b.e.Vars...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// ctl runs a netspawnctl verb on the machine.
func (b *booted) ctl(verb string) {
	b.t.Helper()
	if r := b.e.Run("netspawnctl", verb, b.name); r.Code != 0 {
		b.t.Fatalf("netspawnctl %s %s: %s", verb, b.name, r.Stderr)
	}
}

// waitRunning waits until systemd in the container has finished booting.
func (b *booted) waitRunning() string {
	b.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-b.done:
			b.t.Fatalf("netspawn -b exited during boot:\n%s", lastN(b.output(), 40))
		default:
		}
		if b.leader() != 0 {
			out, _ := b.exec("systemctl", "is-system-running", "--wait")
			if out == "running" || out == "degraded" {
				return out
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.t.Fatalf("container did not finish booting within 90s")
	return ""
}

func (b *booted) waitExit(d time.Duration) int {
	b.t.Helper()
	select {
	case <-b.done:
	case <-time.After(d):
		b.t.Fatalf("netspawn -b did not exit within %s", d)
	}
	return b.cmd.ProcessState.ExitCode()
}

func TestBootDebian(t *testing.T) {
	e := harness.NewEnv(t)
	tree := debianTree(t, e)
	b := boot(t, e, tree, "deb", "--private-network")
	state := b.waitRunning()
	if state != "running" {
		failed, _ := b.exec("systemctl", "--failed", "--no-legend")
		t.Errorf("system state %q; failed units:\n%s", state, failed)
	}
	if out, _ := b.exec("sh", "-c", "tr '\\0' '\\n' </proc/1/environ | grep -E '^container(_uuid)?='"); !strings.Contains(out, "container=netspawn") || !strings.Contains(out, "container_uuid=") {
		t.Errorf("PID 1 environment: %q", out)
	}
	if out, _ := b.exec("systemd-detect-virt", "-c"); out == "none" {
		t.Errorf("systemd does not see a container: %q", out)
	}
	if out, _ := b.exec("hostname"); out != "deb" {
		t.Errorf("hostname %q, want deb", out)
	}
	if out, _ := b.exec("cat", "/etc/machine-id"); len(out) != 32 {
		t.Errorf("machine-id %q", out)
	}
	// The console shows a login prompt.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(b.output(), "login:") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(b.output(), "deb login:") {
		t.Errorf("no login prompt on the console")
	}
	// netspawnctl login gives a login prompt on a new terminal inside, and
	// root (no password in the test image) gets a shell.
	login := e.Command("netspawnctl", "login", "deb")
	ptmx, err := pty.Start(login)
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan string, 1)
	go func() {
		var acc strings.Builder
		buf := make([]byte, 1024)
		sent := false
		for {
			n, err := ptmx.Read(buf)
			acc.Write(buf[:n])
			if !sent && strings.Contains(acc.String(), "login:") {
				_, _ = ptmx.Write([]byte("root\n"))
				sent = true
			}
			if sent && strings.Contains(acc.String(), "#") {
				_, _ = ptmx.Write([]byte("echo LOGGED-IN-$((6*7))\n"))
			}
			if strings.Contains(acc.String(), "LOGGED-IN-42") || err != nil {
				seen <- acc.String()
				return
			}
		}
	}()
	select {
	case out := <-seen:
		if !strings.Contains(out, "LOGGED-IN-42") {
			t.Errorf("netspawnctl login: %q", out)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("netspawnctl login: no shell within 30s")
	}
	_ = login.Process.Kill()
	_ = login.Wait()
	ptmx.Close()

	// netspawnctl poweroff (SIGRTMIN+4 to systemd) ends netspawn with status 0.
	b.ctl("poweroff")
	if code := b.waitExit(60 * time.Second); code != 0 {
		t.Fatalf("poweroff: netspawn exited %d, want 0", code)
	}
}

func TestBootRebootAndSIGTERM(t *testing.T) {
	e := harness.NewEnv(t)
	tree := debianTree(t, e)
	b := boot(t, e, tree, "rb", "--private-network")
	b.waitRunning()
	first := b.leader()
	// The network namespace survives a reboot.
	if _, err := b.exec("ip", "link", "add", "keepme", "type", "veth", "peer", "name", "keepme2"); err != nil {
		t.Fatalf("adding a link inside: %v", err)
	}
	_, _ = b.exec("systemctl", "reboot")
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if l := b.leader(); l != 0 && l != first {
			break
		}
		select {
		case <-b.done:
			t.Fatalf("netspawn exited on reboot (status %d), want the container restarted", b.cmd.ProcessState.ExitCode())
		case <-time.After(100 * time.Millisecond):
		}
	}
	b.waitRunning()
	if b.leader() == first {
		t.Fatal("container was not restarted")
	}
	if out, _ := b.exec("ip", "-o", "link", "show", "keepme"); !strings.Contains(out, "keepme") {
		t.Errorf("network namespace not kept across the reboot: %q", out)
	}
	if !strings.Contains(b.output(), "is being rebooted") {
		t.Errorf("no reboot message")
	}
	// poweroff from inside (systemctl poweroff) would end netspawn with 0 too;
	// netspawnctl reboot (SIGINT to systemd) restarts it in place too.
	second := b.leader()
	b.ctl("reboot")
	deadline = time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if l := b.leader(); l != 0 && l != second {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.waitRunning()
	if b.leader() == second {
		t.Fatal("netspawnctl reboot did not restart the container")
	}
	// SIGTERM to netspawn asks systemd to halt, and netspawn exits 0.
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	if code := b.waitExit(60 * time.Second); code != 0 {
		t.Fatalf("SIGTERM: netspawn exited %d, want 0", code)
	}
}

func TestBootRefusesNonOS(t *testing.T) {
	e := harness.NewEnv(t)
	os.Remove(filepath.Join(e.Tree, "etc/os-release"))
	wantFail(t, e.Netspawn("-b"), "os-release")
}

func TestBootNetworkByName(t *testing.T) {
	e := harness.NewEnv(t)
	tree := debianTree(t, e)
	b := boot(t, e, tree, "debnet", "-n")
	b.waitRunning()
	// systemd-networkd's DHCP client on host0 gets the address netspawnd
	// reserved for the machine, with no step inside the container.
	var addr string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		out, _ := b.exec("sh", "-c", "ip -o -4 addr show dev host0 | awk '{print $4}'")
		if out != "" {
			addr = strings.Split(out, "/")[0]
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if addr == "" {
		t.Fatal("host0 got no IPv4 address from DHCP")
	}
	st := e.Run("netspawnctl", "status", "debnet")
	if !strings.Contains(st.Stdout, addr) {
		t.Errorf("DHCP gave %s, but the controller reserved something else:\n%s", addr, st.Stdout)
	}
	// The host reaches it by name.
	out, _ := e.NS.Command("dig", "@127.0.0.153", "+short", "debnet").Output()
	if strings.TrimSpace(string(out)) != addr {
		t.Errorf("dig debnet: %q, want %s", out, addr)
	}
	if err := e.NS.Command("busybox", "ping", "-c1", "-W2", addr).Run(); err != nil {
		t.Errorf("ping %s from the host: %v", addr, err)
	}
	if out, _ := b.exec("sh", "-c", "resolvectl status host0 2>/dev/null | grep -c netspawn.internal || grep -c netspawn.internal /etc/resolv.conf /run/systemd/resolve/resolv.conf 2>/dev/null | head -1"); out == "" {
		t.Logf("search domain inside: %q", out)
	}
	b.ctl("poweroff")
	if code := b.waitExit(60 * time.Second); code != 0 {
		t.Fatalf("poweroff: status %d", code)
	}
}
