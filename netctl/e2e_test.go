package netctl_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netspawn/netspawn/internal/testutil"
	"github.com/netspawn/netspawn/netctl/api"
	"github.com/netspawn/netspawn/netctl/internal/nstest"
)

var daemonBin, ctlBin string

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		dir, err := os.MkdirTemp("", "netspawnd-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		daemonBin = filepath.Join(dir, "netspawnd")
		ctlBin = filepath.Join(dir, "netspawnctl")
		args := []string{"build", "-o", dir + "/"}
		if os.Getenv("NETSPAWN_TEST_RACE") == "1" { // build the daemon with the race detector
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "github.com/netspawn/netspawn/cmd/netspawnd", "github.com/netspawn/netspawn/cmd/netspawnctl")...).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build netspawnd and netspawnctl: %v\n%s", err, out)
			os.Exit(1)
		}
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// env is a test host: a network namespace, a runtime and a state dir, and
// a netspawnd running in the namespace.
type env struct {
	t       *testing.T
	host    *nstest.NetNS
	rt, st  string
	args    []string
	daemon  *exec.Cmd
	logPath string
}

func newEnv(t *testing.T, args ...string) *env {
	nstest.RequireRoot(t, "unshare", "busybox", "timeout", "nft")
	if daemonBin == "" {
		t.Fatal("netspawnd was not built")
	}
	dir := t.TempDir()
	e := &env{t: t, host: nstest.New(t, "host"), rt: filepath.Join(dir, "run"), st: filepath.Join(dir, "state"), args: args}
	e.logPath = filepath.Join(dir, "netspawnd.log")
	t.Cleanup(func() {
		e.stopDaemon(syscall.SIGKILL)
		if b, _ := os.ReadFile(e.logPath); strings.Contains(string(b), "DATA RACE") {
			t.Error("netspawnd reported a data race")
		}
		if t.Failed() {
			b, _ := os.ReadFile(e.logPath)
			t.Logf("netspawnd log:\n%s", b)
		}
	})
	return e
}

func (e *env) startDaemon() {
	e.t.Helper()
	logf, err := os.OpenFile(e.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		e.t.Fatal(err)
	}
	defer logf.Close()
	cmd := e.host.Cmd(daemonBin, append([]string{"--runtime-dir", e.rt, "--state-dir", e.st, "--log-level", "debug", "--config", "/dev/null"}, e.args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.daemon = cmd
	for i := 0; ; i++ {
		c, err := api.Connect(context.Background(), api.ConnectOptions{RuntimeDir: e.rt, NoStart: true})
		if err == nil {
			c.Close()
			return
		}
		if i > 1000 {
			e.t.Fatalf("netspawnd did not come up: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) stopDaemon(sig syscall.Signal) {
	if e.daemon == nil {
		return
	}
	e.daemon.Process.Signal(sig)
	e.daemon.Wait()
	e.daemon = nil
}

func (e *env) client() *api.Client {
	e.t.Helper()
	c, err := api.Connect(context.Background(), api.ConnectOptions{RuntimeDir: e.rt, NoStart: true})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// container is a fake container: a process in its own network namespace.
type container struct {
	pid int
	cmd *exec.Cmd
}

func (e *env) container() *container {
	e.t.Helper()
	cmd := e.host.Cmd("unshare", "--net", "sleep", "100000")
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	c := &container{pid: cmd.Process.Pid, cmd: cmd}
	e.t.Cleanup(func() { c.kill() })
	// Wait until unshare has exec'd sleep (then the namespace is its own).
	for i := 0; ; i++ {
		exe, _ := os.Readlink("/proc/" + strconv.Itoa(c.pid) + "/exe")
		if strings.HasSuffix(exe, "/sleep") {
			return c
		}
		if i > 1000 {
			e.t.Fatalf("fake container did not start (exe %q)", exe)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (c *container) kill() {
	if c.cmd.Process != nil {
		c.cmd.Process.Kill()
		c.cmd.Wait()
	}
}

func (c *container) ns() string { return "--net=/proc/" + strconv.Itoa(c.pid) + "/ns/net" }

func (c *container) run(name string, args ...string) (string, error) {
	out, err := exec.Command("nsenter", append([]string{c.ns(), "--", name}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %v in container: %w: %s", name, args, err, out)
	}
	return string(out), nil
}

func (c *container) mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := c.run(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// configure does what netspawn's stage-2 init does with the reply.
func (c *container) configure(t *testing.T, r api.RegisterReply) {
	t.Helper()
	c.mustRun(t, "ip", "link", "set", "lo", "up")
	for _, ifc := range r.Interfaces {
		for _, a := range ifc.Addresses {
			c.mustRun(t, "ip", "addr", "add", a, "dev", ifc.Name)
		}
		c.mustRun(t, "ip", "link", "set", ifc.Name, "up")
		if ifc.Gateway4 != "" {
			c.mustRun(t, "ip", "route", "add", "default", "via", ifc.Gateway4)
		}
	}
}

// background starts a long-running command in a namespace (killed at cleanup).
func background(t *testing.T, nsArg string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command("nsenter", append([]string{nsArg, "--", name}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
}

// httpd serves dir on port in a namespace, with a cgi-bin/ip script that
// prints the client's address.
func httpd(t *testing.T, nsArg string, port int, body string) {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "cgi-bin"), 0o755)
	os.WriteFile(filepath.Join(dir, "index.html"), []byte(body), 0o644)
	os.WriteFile(filepath.Join(dir, "cgi-bin", "ip"), []byte("#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\necho \"$REMOTE_ADDR\"\n"), 0o755)
	background(t, nsArg, "busybox", "httpd", "-f", "-p", strconv.Itoa(port), "-h", dir)
}

// fetch runs busybox wget (under timeout: wget -T is unreliable) in a namespace.
func fetch(nsArg, url string) (string, error) {
	var last error
	for range 20 { // the server may still be starting
		out, err := exec.Command("nsenter", nsArg, "--", "timeout", "3", "busybox", "wget", "-q", "-O", "-", url).CombinedOutput()
		if err == nil {
			return strings.TrimSpace(string(out)), nil
		}
		last = fmt.Errorf("wget %s: %w: %s", url, err, out)
		time.Sleep(100 * time.Millisecond)
	}
	return "", last
}

// waitGone polls until cond is true (the controller reacts asynchronously).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !testutil.Eventually(10*time.Second, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

func (e *env) linkExists(name string) bool {
	_, err := e.host.Run("ip", "link", "show", "dev", name)
	return err == nil
}

func (e *env) nftTable() string {
	out, _ := e.host.Run("nft", "list", "table", "inet", "netspawn")
	return out
}

func apiCode(err error) string {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}
