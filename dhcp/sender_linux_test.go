package dhcp

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// The links of one network namespace share one packet socket, closed with
// the last of them (needs CAP_NET_RAW, as netspawnd has).
func TestSenderShared(t *testing.T) {
	runtime.LockOSThread() // one namespace for both
	defer runtime.UnlockOSThread()
	a, err := acquireSender()
	if err != nil {
		t.Fatalf("first link: %v (needs CAP_NET_RAW)", err)
	}
	b, err := acquireSender()
	if err != nil {
		t.Fatal(err)
	}
	if a != b || a.refs != 2 {
		t.Fatalf("two links of a namespace: sockets %d and %d, refs %d; want one shared, refs 2", a.fd, b.fd, a.refs)
	}
	fd := a.fd
	a.release()
	if _, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil {
		t.Fatalf("socket closed while a link still uses it: %v", err)
	}
	b.release()
	senders.Lock()
	defer senders.Unlock()
	if len(senders.m) != 0 {
		t.Fatalf("%d senders left after the last release", len(senders.m))
	}
}
