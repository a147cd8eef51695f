package sdnotify

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Message
	}{
		{"READY=1", Message{Ready: true}},
		{"READY=1\nSTATUS=up and running\n", Message{Ready: true, Status: "up and running", HasStatus: true}},
		{"STATUS=a\r\nSTOPPING=1", Message{Stopping: true, Status: "a", HasStatus: true}},
		{"READY=0\nREADY=11\nMAINPID=4\nX_READY=1", Message{}},
		{"STATUS=", Message{HasStatus: true}},
		{"", Message{}},
	}
	for _, tt := range tests {
		if got := Parse([]byte(tt.in)); got != tt.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestCheckAddr(t *testing.T) {
	for _, ok := range []string{"/run/host/notify", "@netspawnd/notify/x"} {
		if err := CheckAddr(ok); err != nil {
			t.Errorf("CheckAddr(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "relative", "/" + strings.Repeat("a", 200)} {
		if err := CheckAddr(bad); err == nil {
			t.Errorf("CheckAddr(%q) accepted", bad)
		}
	}
}

// A datagram sent to a bound socket arrives with the sender's PID; too
// long ones are skipped; with no $NOTIFY_SOCKET, Send does nothing.
func TestSendListen(t *testing.T) {
	for _, addr := range []string{filepath.Join(t.TempDir(), "n"), "@netspawn-sdnotify-test-" + time.Now().Format("150405.000000000")} {
		c, err := Listen(addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := SendTo(addr, strings.Repeat("x", MaxMessage+1)); err != nil {
			t.Fatal(err)
		}
		if err := SendTo(addr, "READY=1\nSTATUS=hello"); err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		d, err := c.Read()
		if err != nil {
			t.Fatal(err)
		}
		if d.PID != os.Getpid() || !d.Message.Ready || d.Message.Status != "hello" {
			t.Errorf("%s: got %+v", addr, d)
		}
		c.Close()
	}
	t.Setenv("NOTIFY_SOCKET", "")
	if err := Send("READY=1"); err != nil {
		t.Errorf("Send without NOTIFY_SOCKET: %v", err)
	}
	if err := SendTo("/nonexistent/notify", "READY=1"); err == nil || !strings.Contains(err.Error(), "/nonexistent/notify") {
		t.Errorf("SendTo a missing socket: %v", err)
	}
}

// An unbound socket, bound through its handed-over descriptor, receives.
func TestNewUnbound(t *testing.T) {
	c, f, err := NewUnbound()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := filepath.Join(t.TempDir(), "notify")
	if err := unix.Bind(int(f.Fd()), &unix.SockaddrUnix{Name: p}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := SendTo(p, "READY=1"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	d, err := c.Read()
	if err != nil || !d.Message.Ready || d.PID != os.Getpid() {
		t.Errorf("got %+v, %v", d, err)
	}
}

// Handing the descriptor over (os/exec calls Fd) leaves the receiving end
// under Go's poller: Close still ends a pending Read.
func TestNewUnboundCloseEndsRead(t *testing.T) {
	c, f, err := NewUnbound()
	if err != nil {
		t.Fatal(err)
	}
	_ = f.Fd()
	defer f.Close()
	done := make(chan error, 1)
	go func() { _, err := c.Read(); done <- err }()
	c.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Read after Close returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a pending Read")
	}
}
