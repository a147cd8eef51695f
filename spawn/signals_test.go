package spawn

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSignalCatcher checks the two halves of netspawn's signal handling in
// a child process of the test binary: before the first process starts, a
// SIGTERM ends netspawn as if no handler were installed; afterwards it is
// forwarded (and SIGWINCH always is).
func TestSignalCatcher(t *testing.T) {
	if mode := os.Getenv("NETSPAWN_TEST_SIGNALS"); mode != "" {
		c := catchSignals()
		<-c.caught
		if mode == "forward" {
			c.forward.Store(true)
		}
		_ = unix.Kill(os.Getpid(), syscall.SIGWINCH)
		if s := <-c.out; s != syscall.SIGWINCH {
			os.Exit(3)
		}
		_ = unix.Kill(os.Getpid(), syscall.SIGTERM)
		select {
		case s := <-c.out:
			if s == syscall.SIGTERM {
				os.Exit(7) // forwarded
			}
			os.Exit(4)
		case <-time.After(10 * time.Second):
			os.Exit(5)
		}
	}
	for _, tc := range []struct {
		mode   string
		code   int
		signal syscall.Signal
	}{{"prepare", -1, syscall.SIGTERM}, {"forward", 7, 0}} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSignalCatcher$")
		cmd.Env = append(os.Environ(), "NETSPAWN_TEST_SIGNALS="+tc.mode)
		out, err := cmd.CombinedOutput()
		ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
		switch {
		case tc.signal != 0 && !(ws.Signaled() && ws.Signal() == tc.signal):
			t.Errorf("%s: %v (%v), want death by %v: %s", tc.mode, err, ws, tc.signal, out)
		case tc.signal == 0 && ws.ExitStatus() != tc.code:
			t.Errorf("%s: %v, want exit %d: %s", tc.mode, err, tc.code, out)
		}
	}
}
