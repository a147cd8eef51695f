package netctl

import (
	"testing"

	"github.com/netspawn/netspawn/netctl/api"
	"golang.org/x/sys/unix"
)

func fdOpen(fd int) bool {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return err == nil
}

// A leader's exit reported after its machine was unregistered (its
// netspawn's Unregister got the lock first) must leave alone the
// descriptor number the report was about: unregisterLocked closed the
// pidfd, and the number may already belong to another file (it was the
// host namespace handle moved interfaces go back to: they then failed with
// EBADF) or to the pidfd of the machine registered next under that name.
func TestLeaderExitedAfterUnregister(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	c := &Controller{machines: map[string]*machine{}, managed: map[int]bool{}}
	old := &machine{Req: api.RegisterRequest{Name: "web"}, pidfd: -1} // unregistered
	c.leaderExited(old)
	// The name registered again; its pidfd got the old number.
	cur := &machine{Req: api.RegisterRequest{Name: "web"}, pidfd: p[0]}
	c.machines["web"] = cur
	c.leaderExited(old)
	if !fdOpen(p[0]) {
		t.Fatal("a stale exit report closed the new machine's pidfd")
	}
	if c.machines["web"] != cur || cur.pidfd != p[0] {
		t.Fatal("a stale exit report unregistered the new machine")
	}
}
