package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeDaemon answers list with one machine and everything else with an error.
func fakeDaemon(t *testing.T, dir string) {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(dir, SocketName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					var req Request
					json.Unmarshal(sc.Bytes(), &req)
					resp := Response{ID: req.ID}
					if req.Method == MethodList {
						resp.Result, _ = json.Marshal([]Machine{{Name: "web", Class: "container"}})
					} else {
						resp.Error = &Error{Code: CodeNotFound, Message: "no machine \"x\""}
					}
					b, _ := json.Marshal(resp)
					c.Write(append(b, '\n'))
				}
			}()
		}
	}()
}

func TestClientCalls(t *testing.T) {
	dir := t.TempDir()
	fakeDaemon(t, dir)
	c, err := Connect(context.Background(), ConnectOptions{RuntimeDir: dir, NoStart: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 3 {
		ms, err := c.List(context.Background())
		if err != nil || len(ms) != 1 || ms[0].Name != "web" {
			t.Fatalf("list %v %v", ms, err)
		}
	}
	_, err = c.Status(context.Background(), "x")
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != CodeNotFound || !strings.Contains(err.Error(), `no machine "x"`) {
		t.Fatalf("status error %v", err)
	}
	// The daemon restarts: the next call reconnects.
	c.conn.Close()
	if ms, err := c.List(context.Background()); err != nil || len(ms) != 1 {
		t.Fatalf("after reconnect: %v %v", ms, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.List(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v", err)
	}
}

func TestConnectNoDaemon(t *testing.T) {
	dir := t.TempDir()
	if _, err := Connect(context.Background(), ConnectOptions{RuntimeDir: dir, NoStart: true}); err == nil {
		t.Fatal("connected to nothing")
	}
	// A daemon that exits at once: the error names the log file.
	script := filepath.Join(dir, "fake-netspawnd")
	os.WriteFile(script, []byte("#!/bin/sh\necho 'fake failure' >&2\nexit 3\n"), 0o755)
	_, err := Connect(context.Background(), ConnectOptions{RuntimeDir: dir, DaemonPath: script, StartTimeout: 5 * time.Second})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "netspawnd.log")) {
		t.Fatalf("error %v", err)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "netspawnd.log"))
	if !strings.Contains(string(log), "fake failure") {
		t.Fatalf("log %q", log)
	}
	// A daemon that never listens: timeout, with the log file named.
	os.WriteFile(script, []byte("#!/bin/sh\nexec sleep 30\n"), 0o755)
	_, err = Connect(context.Background(), ConnectOptions{RuntimeDir: dir, DaemonPath: script, StartTimeout: 200 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "did not open") {
		t.Fatalf("error %v", err)
	}
}

// A daemon a service manager started a moment ago holds its lock but has no
// socket yet: Connect waits for it instead of starting a second one (which
// would find the lock taken and exit: the host lane saw that at boot).
func TestConnectWaitsForAStartingDaemon(t *testing.T) {
	dir := t.TempDir()
	lock, err := os.OpenFile(filepath.Join(dir, "netspawnd.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "second-netspawnd")
	os.WriteFile(script, []byte("#!/bin/sh\ntouch "+filepath.Join(dir, "second-started")+"\nexit 1\n"), 0o755)
	listening := make(chan net.Listener, 1)
	go func() {
		time.Sleep(100 * time.Millisecond) // the starting daemon's own start-up
		ln, err := net.Listen("unix", filepath.Join(dir, SocketName))
		if err != nil {
			t.Error(err)
		}
		listening <- ln
	}()
	c, err := Connect(context.Background(), ConnectOptions{RuntimeDir: dir, DaemonPath: script, StartTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("Connect while a daemon starts: %v", err)
	}
	c.Close()
	(<-listening).Close()
	if _, err := os.Stat(filepath.Join(dir, "second-started")); err == nil {
		t.Error("a second netspawnd was started beside the starting one")
	}
	// One that holds the lock and never listens: a clear error in time.
	os.Remove(filepath.Join(dir, SocketName))
	_, err = Connect(context.Background(), ConnectOptions{RuntimeDir: dir, DaemonPath: script, StartTimeout: 200 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "netspawnd.lock") {
		t.Fatalf("error %v", err)
	}
}

// A call whose netspawnd was killed, and whose first restarted netspawnd
// is killed during its start-up too, goes on to start another.
func TestCallSurvivesADaemonKilledDuringStartUp(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, SocketName))
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	script := filepath.Join(dir, "fake-netspawnd")
	// First start: dies at once. Second: asks the test to listen, and lives.
	os.WriteFile(script, []byte("#!/bin/sh\nif [ -e "+dir+"/started-once ]; then touch "+dir+"/listen; exec sleep 5; fi\ntouch "+dir+"/started-once\nkill -9 $$\n"), 0o755)
	c, err := Connect(context.Background(), ConnectOptions{RuntimeDir: dir, DaemonPath: script, StartTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	(<-accepted).Close() // the daemon is killed: connection and socket gone
	ln.Close()
	go func() {
		for range 500 {
			if _, err := os.Stat(filepath.Join(dir, "listen")); err == nil {
				fakeDaemon(t, dir)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	ms, err := c.List(context.Background())
	if err != nil || len(ms) != 1 {
		t.Fatalf("list after two deaths: %v %v", ms, err)
	}
}

func TestListParamsMatch(t *testing.T) {
	a := Machine{Name: "a", CNI: &CNIAttachment{ContainerID: "c1", IfName: "eth0", Network: "n"}}
	b := Machine{Name: "b", CNI: &CNIAttachment{ContainerID: "c1", IfName: "eth1", Network: "n"}}
	plain := Machine{Name: "p"}
	all := ListParams{}
	one := ListParams{CNIContainerID: "c1", CNIIfName: "eth0"}
	for _, c := range []struct {
		p    ListParams
		m    Machine
		want bool
	}{{all, a, true}, {all, plain, true}, {one, a, true}, {one, b, false}, {one, plain, false}} {
		if got := c.p.Match(c.m); got != c.want {
			t.Errorf("%+v.Match(%s) = %v, want %v", c.p, c.m.Name, got, c.want)
		}
	}
}

func TestServiceWillAnswer(t *testing.T) {
	for show, want := range map[string]bool{
		"ActiveState=activating\nSubState=auto-restart\n": true,
		"ActiveState=active\nSubState=running\n":          true,
		"ActiveState=activating\nSubState=start\n":        true,
		"ActiveState=failed\nSubState=failed\n":           false,
		"ActiveState=inactive\nSubState=dead\n":           false,
		"":                                                false,
	} {
		if got := serviceWillAnswer(show); got != want {
			t.Errorf("%q: %v, want %v", show, got, want)
		}
	}
}
