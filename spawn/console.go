package spawn

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/creack/pty"
	"golang.org/x/term"
)

// escapeByte is Ctrl-]; three of them within escapeWindow end the container.
const (
	escapeByte   = 0x1d
	escapeCount  = 3
	escapeWindow = time.Second
)

// escapeDetector counts Ctrl-] presses as systemd's pty forwarder does:
// three within one second, counted from the first, and any other byte resets.
type escapeDetector struct {
	n     int
	first time.Time
}

// feed looks at the bytes read at time now and reports whether the escape
// sequence is complete.
func (d *escapeDetector) feed(p []byte, now time.Time) bool {
	for _, c := range p {
		if c != escapeByte {
			d.n = 0
			continue
		}
		if d.n == 0 || now.Sub(d.first) > escapeWindow {
			d.n, d.first = 1, now
			continue
		}
		d.n++
		if d.n >= escapeCount {
			d.n = 0
			return true
		}
	}
	return false
}

// console forwards between netspawn's terminal and the container's pty.
type console struct {
	mode    ConsoleMode
	master  *os.File
	slave   *os.File
	in, out *os.File
	state   *term.State
	escaped chan struct{}
	outDone chan struct{}
	once    sync.Once
}

func openConsole(mode ConsoleMode, in, out *os.File) (*console, error) {
	master, slave, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("allocating a pseudo terminal for the container console: %w", err)
	}
	c := &console{mode: mode, master: master, slave: slave, in: in, out: out,
		escaped: make(chan struct{}), outDone: make(chan struct{})}
	if isTerminal(out) {
		_ = pty.InheritSize(out, master)
	} else if isTerminal(in) {
		_ = pty.InheritSize(in, master)
	}
	return c, nil
}

// start begins forwarding; the slave side belongs to the container now.
func (c *console) start() {
	c.slave.Close()
	go func() {
		defer close(c.outDone)
		if c.mode == ConsolePassive {
			_, _ = io.Copy(io.Discard, c.master)
			return
		}
		_, _ = io.Copy(c.out, c.master)
	}()
	if c.mode != ConsoleInteractive {
		return
	}
	if st, err := term.MakeRaw(int(c.in.Fd())); err == nil {
		c.state = st
	}
	esc := c.escaped
	go func() {
		var det escapeDetector
		buf := make([]byte, 4096)
		for {
			n, err := c.in.Read(buf)
			if n > 0 {
				if det.feed(buf[:n], time.Now()) {
					close(esc)
					return
				}
				if _, werr := c.master.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
}

func (c *console) resize() {
	if isTerminal(c.out) {
		_ = pty.InheritSize(c.out, c.master)
	} else if isTerminal(c.in) {
		_ = pty.InheritSize(c.in, c.master)
	}
}

// finish drains what the container wrote before it ended and restores the
// terminal.
func (c *console) finish() {
	select {
	case <-c.outDone:
	case <-time.After(200 * time.Millisecond):
	}
	c.close()
}

func (c *console) close() {
	c.once.Do(func() {
		if c.state != nil {
			_ = term.Restore(int(c.in.Fd()), c.state)
		}
		c.master.Close()
		c.slave.Close()
	})
}
