package cgroup

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

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
