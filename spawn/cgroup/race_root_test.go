package cgroup

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netspawn/netspawn/internal/testutil"
)

// netspawnd removes a dead machine's leftover cgroups (RemoveUnlocked) when
// it notices the machine is gone, which may be while a netspawn makes the
// cgroups of a new machine of the same name: that netspawn must never end
// up holding cgroups that are gone (its container's clone into them then
// fails with ENOENT), and the removal must not take the new ones.
func TestCreateWhileLeftoversAreRemoved(t *testing.T) {
	testutil.RequireRoot(t, "makes cgroups")
	root := V2Root()
	if root == "" {
		testutil.Unavailable(t, "no cgroup2 hierarchy on this host")
	}
	if SystemdRunning() {
		// There systemd makes the scope (through D-Bus) and removes it.
		testutil.Unavailable(t, "systemd runs this host's cgroups: this is the race of hosts without it")
	}
	name := fmt.Sprintf("cgroup-race-%d", os.Getpid())
	scope := filepath.Join(root, ScopePath(name))
	t.Cleanup(func() { _ = RemoveTree(scope) })

	for i := 0; i < 400; i++ {
		if i%2 == 0 {
			// A leftover of the machine before (netspawn killed).
			if err := os.MkdirAll(filepath.Join(scope, "payload"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		removed := make(chan struct{})
		go func() {
			defer close(removed)
			RemoveUnlocked([]string{scope}, 0)
		}()
		m, err := Create(context.Background(), Options{Machine: name})
		if err != nil {
			<-removed
			t.Fatalf("run %d: %v", i, err)
		}
		<-removed
		if m.FD() < 0 {
			t.Fatalf("run %d: no cgroup made", i)
		}
		if _, err := os.Stat(m.Payload); err != nil {
			m.Remove(nil)
			t.Fatalf("run %d: the payload cgroup went while netspawn held it: %v", i, err)
		}
		m.Remove(nil)
	}
}

// netspawnd's sweep (RemoveStray) may find a scope a netspawn is making
// right now, empty and not yet locked: the same race, the same answer.
func TestCreateWhileStraysAreRemoved(t *testing.T) {
	scope, name := raceScope(t)
	removed := 0
	for i := 0; i < 400; i++ {
		if i%2 == 0 {
			if err := os.MkdirAll(filepath.Join(scope, "payload"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		done := make(chan StrayResult)
		go func() {
			r, err := RemoveStray(Scope{Unit: ScopeUnit(name), V2: scope})
			if err != nil {
				t.Errorf("run %d: %v", i, err)
			}
			done <- r
		}()
		m, err := Create(context.Background(), Options{Machine: name})
		if err != nil {
			<-done
			t.Fatalf("run %d: %v", i, err)
		}
		if <-done == StrayRemoved {
			removed++
		}
		if _, err := os.Stat(m.Payload); err != nil {
			m.Remove(nil)
			t.Fatalf("run %d: the payload cgroup went while netspawn held it: %v", i, err)
		}
		// Held now: never removed.
		if r, err := RemoveStray(Scope{Unit: ScopeUnit(name), V2: scope}); r != StrayHeld || err != nil {
			m.Remove(nil)
			t.Fatalf("run %d: a scope its netspawn holds: %v %v", i, r, err)
		}
		m.Remove(nil)
	}
	t.Logf("the sweep removed the scope first %d times of 400", removed)
}

// RemoveStray removes an empty scope no netspawn holds, with its
// sub-cgroups, and leaves one with a process in it.
func TestRemoveStray(t *testing.T) {
	scope, _ := raceScope(t)
	payload := filepath.Join(scope, "payload")
	if err := os.MkdirAll(filepath.Join(payload, "init.scope"), 0o755); err != nil {
		t.Fatal(err)
	}
	sleep := exec.Command("sleep", "1000")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sleep.Process.Kill(); _ = sleep.Wait() }()
	if err := writeFile(filepath.Join(payload, "init.scope", "cgroup.procs"), strconv.Itoa(sleep.Process.Pid)); err != nil {
		t.Fatalf("moving a process into %s: %v", payload, err)
	}
	s := Scope{V2: scope}
	if r, err := RemoveStray(s); r != StrayBusy || err != nil {
		t.Fatalf("a scope with a process: %v %v", r, err)
	}
	if _, err := os.Stat(filepath.Join(payload, "init.scope")); err != nil {
		t.Fatalf("a scope with a process lost a sub-cgroup: %v", err)
	}
	_ = sleep.Process.Kill()
	_ = sleep.Wait()
	// Its cgroup may stay populated a moment after the wait.
	var r StrayResult
	for i := 0; i < 500; i++ {
		var err error
		if r, err = RemoveStray(s); err != nil || r != StrayBusy {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r != StrayRemoved {
		t.Fatalf("an empty scope: %v", r)
	}
	if _, err := os.Stat(scope); !os.IsNotExist(err) {
		t.Fatalf("the scope is still there: %v", err)
	}
	if r, err := RemoveStray(s); r != StrayGone || err != nil {
		t.Fatalf("a scope gone: %v %v", r, err)
	}
}

// raceScope is a machine scope's v2 directory for a test that makes
// cgroups itself, removed when it ends.
func raceScope(t *testing.T) (scope, name string) {
	testutil.RequireRoot(t, "makes cgroups")
	root := V2Root()
	if root == "" {
		testutil.Unavailable(t, "no cgroup2 hierarchy on this host")
	}
	if SystemdRunning() {
		testutil.Unavailable(t, "systemd runs this host's cgroups: netspawn makes them itself only without it")
	}
	name = fmt.Sprintf("cgroup-%s-%d", strings.ToLower(t.Name()), os.Getpid())
	scope = filepath.Join(root, ScopePath(name))
	t.Cleanup(func() { _ = RemoveTree(scope) })
	return scope, name
}
