package spawn

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/netspawn/netspawn/spawn/config"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
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

// console forwards between netspawn's terminal and the container's pty. It
// outlives one boot of the container: after a reboot the next boot gets the
// same pty.
type console struct {
	mode      config.ConsoleMode
	master    *os.File
	slave     *os.File // open only until the container has it
	slavePath string
	in, out   *os.File
	state     *term.State
	escaped   chan struct{}
	outDone   chan struct{}
	inputOnce sync.Once
	closeOnce sync.Once
}

func openConsole(mode config.ConsoleMode, in, out *os.File) (*console, error) {
	master, slave, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("allocating a pseudo terminal for the container console: %w", err)
	}
	c := &console{mode: mode, master: master, slave: slave, slavePath: slave.Name(), in: in, out: out,
		escaped: make(chan struct{})}
	c.resize()
	return c, nil
}

// openSlave returns the pty's slave side for the next boot of the container.
func (c *console) openSlave() (*os.File, error) {
	if c.slave != nil {
		return c.slave, nil
	}
	f, err := os.OpenFile(c.slavePath, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("reopening the container console %s: %w", c.slavePath, err)
	}
	c.slave = f
	return f, nil
}

// start begins forwarding for one boot; the slave side belongs to the
// container now. ended is closed when the container is gone.
func (c *console) start(ended <-chan struct{}) {
	c.slave.Close()
	c.slave = nil
	done := make(chan struct{})
	c.outDone = done
	out := io.Writer(c.out)
	if c.mode == config.ConsolePassive {
		out = io.Discard
	}
	go func() {
		defer close(done)
		copyOutput(out, c.master, ended)
	}()
	if c.mode != config.ConsoleInteractive {
		return
	}
	c.inputOnce.Do(func() {
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
					// Input typed while the console is hung up is dropped.
					if _, werr := c.master.Write(buf[:n]); werr != nil && !errors.Is(werr, unix.EIO) {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	})
}

// copyOutput copies the container's console output. The master reports EIO
// whenever no process holds the console open, which also happens while the
// container lives (a getty's vhangup, daemons without a terminal): then it
// waits and retries until the container has ended.
func copyOutput(out io.Writer, master *os.File, ended <-chan struct{}) {
	buf := make([]byte, 32*1024)
	wait := 10 * time.Millisecond
	for {
		n, err := master.Read(buf)
		if n > 0 {
			wait = 10 * time.Millisecond
			if _, werr := out.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, unix.EIO) {
			return
		}
		select {
		case <-ended:
			return
		case <-time.After(wait):
		}
		if wait < 250*time.Millisecond {
			wait *= 2
		}
	}
}

func (c *console) resize() {
	if isTerminal(c.out) {
		_ = pty.InheritSize(c.out, c.master)
	} else if isTerminal(c.in) {
		_ = pty.InheritSize(c.in, c.master)
	}
}

// pause waits (briefly) until what the container wrote before it ended has
// been copied out.
func (c *console) pause() {
	if c.outDone == nil {
		return
	}
	select {
	case <-c.outDone:
	case <-time.After(200 * time.Millisecond):
	}
}

func (c *console) close() {
	c.closeOnce.Do(func() {
		if c.state != nil {
			_ = term.Restore(int(c.in.Fd()), c.state)
		}
		c.master.Close()
		if c.slave != nil {
			c.slave.Close()
		}
	})
}
