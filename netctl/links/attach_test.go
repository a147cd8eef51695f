package links

import (
	"os"
	"testing"

	"github.com/netspawn/netspawn/netctl/internal/nstest"
	"golang.org/x/sys/unix"
)

func netnsIno(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// NewAt enters the container's namespace on a thread of its own; that
// thread must come back. A thread left behind there is not always ended:
// the main thread, which the runtime parks instead, then shows the whole
// process (/proc/self/ns/net, /proc/PID/ns/net) in the container's
// namespace and keeps that namespace alive.
func TestNewAtLeavesNoThreadInTheNamespace(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.New(t, "newat")
	f, err := os.Open(ns.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ns.MustRun(t, "ip", "link", "add", "newat0", "type", "veth", "peer", "name", "newat1")
	own := netnsIno(t, "/proc/thread-self/ns/net")
	for i := 0; i < 300; i++ {
		h, err := NewAt(int(f.Fd()))
		if err != nil {
			t.Fatal(err)
		}
		if _, ok, err := h.Get("newat0"); err != nil || !ok {
			t.Fatalf("the handle does not work in the namespace: %v %v", ok, err)
		}
		h.Close()
		if ino := netnsIno(t, "/proc/self/ns/net"); ino != own {
			t.Fatalf("after %d handles the main thread is in namespace %d, not the process's %d", i+1, ino, own)
		}
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if ino := netnsIno(t, "/proc/self/task/"+task.Name()+"/ns/net"); ino != own {
			t.Errorf("thread %s is in namespace %d, not the process's %d", task.Name(), ino, own)
		}
	}
}
