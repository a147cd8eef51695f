package test

import (
	"bytes"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// step is one exchange with a program on a terminal: wait until its output
// (since the previous step) shows want, then type send.
type step struct{ want, send string }

// onTerminal runs cmd on a new terminal and plays the steps; it returns
// what the terminal showed and whether every step's text appeared within
// the time given. The program is killed at the end.
func onTerminal(t *testing.T, cmd *exec.Cmd, within time.Duration, steps ...step) (string, bool) {
	t.Helper()
	ptmx, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var out bytes.Buffer
	grew := make(chan struct{}, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			mu.Lock()
			out.Write(buf[:n])
			mu.Unlock()
			select {
			case grew <- struct{}{}:
			default:
			}
			if err != nil {
				close(grew)
				return
			}
		}
	}()
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		ptmx.Close()
	}()
	deadline := time.After(within)
	from, ended := 0, false
	for _, s := range steps {
		for {
			mu.Lock()
			seen := out.String()
			mu.Unlock()
			if i := strings.Index(seen[from:], s.want); i >= 0 {
				from += i + len(s.want)
				break
			}
			if ended {
				return seen, false
			}
			select {
			case _, open := <-grew:
				ended = !open
			case <-deadline:
				return seen, false
			}
		}
		if s.send != "" {
			if _, err := ptmx.Write([]byte(s.send)); err != nil {
				t.Fatal(err)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return out.String(), true
}
