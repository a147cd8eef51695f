// Package e2e runs the dhcp server (as the dhcptestd binary) against real
// DHCP clients: busybox udhcpc, ISC dhclient, dhcpcd and nclient4. Each test
// builds its own pair of network namespaces joined by a veth pair (server
// side ve-t, client side host0); nothing on the host is touched. Needs root;
// fails instead of skipping when CI=true.
package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netspawn/netspawn/internal/testutil"
	"golang.org/x/sys/unix"
)

const (
	subnet   = "10.9.0.0/24"
	serverIP = "10.9.0.1"
	pool     = "10.9.0.100-10.9.0.199"
)

func need(t *testing.T, why string) {
	t.Helper()
	testutil.Unavailable(t, why)
}

func requireRoot(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t, "end-to-end DHCP tests create network namespaces", "ip", "nsenter", "unshare")
}

func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		need(t, fmt.Sprintf("%s not installed", name))
	}
	return p
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// serverBinary builds dhcptestd once per test run.
func serverBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dhcp-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "dhcptestd")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/netspawn/netspawn/dhcp/internal/dhcptestd").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("building dhcptestd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// topo is a server namespace and a client namespace joined by a veth pair.
type topo struct {
	t        *testing.T
	dir      string
	srv, cli int // PIDs holding the namespaces
}

func newTopo(t *testing.T, clientMAC string) *topo {
	t.Helper()
	requireRoot(t)
	tp := &topo{t: t, dir: t.TempDir()}
	tp.srv = holdNetns(t)
	tp.cli = holdNetns(t)
	tp.sh(tp.srv, fmt.Sprintf("ip link set lo up && ip link add ve-t type veth peer name host0 netns %d && ip addr add %s/24 dev ve-t && ip link set ve-t up", tp.cli, serverIP))
	tp.sh(tp.cli, fmt.Sprintf("ip link set lo up && ip link set host0 address %s && ip link set host0 up", clientMAC))
	return tp
}

// holdNetns starts a process in a new network namespace and returns its PID;
// the namespace lives as long as it does.
func holdNetns(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("unshare", "--net", "sleep", "infinity")
	if err := cmd.Start(); err != nil {
		t.Fatalf("unshare: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	// Wait until the process is in its own namespace.
	self, _ := os.Readlink("/proc/self/ns/net")
	for i := 0; i < 500; i++ {
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)); err == nil && ns != self {
			if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid)); strings.HasSuffix(exe, "sleep") {
				return cmd.Process.Pid
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("namespace holder did not start")
	return 0
}

func nsCmd(pid int, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{fmt.Sprintf("--net=/proc/%d/ns/net", pid)}, args...)...)
}

func (tp *topo) sh(pid int, script string) string {
	tp.t.Helper()
	out, err := nsCmd(pid, "sh", "-c", script).CombinedOutput()
	if err != nil {
		tp.t.Fatalf("%s: %v\n%s", script, err, out)
	}
	return string(out)
}

// server is a running dhcptestd.
type server struct {
	cmd   *exec.Cmd
	state string
	log   string
}

// startServer runs dhcptestd in the server namespace on ve-t.
func (tp *topo) startServer(state string, extra ...string) *server {
	tp.t.Helper()
	bin := serverBinary(tp.t)
	args := append([]string{bin, "-state", state, "-link", "ve-t", "-subnet", subnet, "-server", serverIP,
		"-pool", pool, "-router", serverIP, "-dns", serverIP, "-domain", "machines", "-search", "machines", "-mtu", "1400", "-v"}, extra...)
	cmd := nsCmd(tp.srv, args...)
	logPath := filepath.Join(tp.dir, fmt.Sprintf("server-%d.log", time.Now().UnixNano()))
	lf, err := os.Create(logPath)
	if err != nil {
		tp.t.Fatal(err)
	}
	cmd.Stderr = lf
	out, err := cmd.StdoutPipe()
	if err != nil {
		tp.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tp.t.Fatal(err)
	}
	s := &server{cmd: cmd, state: state, log: logPath}
	tp.t.Cleanup(func() {
		s.kill()
		lf.Close()
		if tp.t.Failed() {
			b, _ := os.ReadFile(logPath)
			tp.t.Logf("server log:\n%s", b)
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		b, _ := os.ReadFile(logPath)
		tp.t.Fatalf("server did not start (%q, %v):\n%s", line, err, b)
	}
	return s
}

// kill sends SIGKILL (nsenter execs the server, so the PID is the server's).
func (s *server) kill() {
	if s.cmd.ProcessState == nil {
		s.cmd.Process.Signal(unix.SIGKILL)
		s.cmd.Wait()
	}
}

// recScript writes a client hook script that appends one line per event to
// rec.txt (and configures the address for udhcpc so that renewals work).
func (tp *topo) recScript(body string) (script, rec string) {
	rec = filepath.Join(tp.dir, "rec.txt")
	script = filepath.Join(tp.dir, "hook.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nREC="+rec+"\n"+body), 0o755); err != nil {
		tp.t.Fatal(err)
	}
	return script, rec
}

// waitLine waits for a line in file containing all of want; the timeout
// only bounds a hung client, nothing is asserted about speed.
func waitLine(t *testing.T, file string, timeout time.Duration, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(file)
		for _, l := range strings.Split(string(b), "\n") {
			ok := l != ""
			for _, w := range want {
				ok = ok && strings.Contains(l, w)
			}
			if ok {
				return l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no line with %q in %s after %v:\n%s", want, file, timeout, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// inNetns runs fn on a thread switched into pid's network namespace; the
// thread is discarded afterwards (never unlocked).
func inNetns(pid int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
