// Package console forwards between netspawn's terminal and a container's
// pseudo terminal: raw mode, window size, output that survives hangups, and
// the Ctrl-] Ctrl-] Ctrl-] escape, as systemd's pty forwarder does.
package console

import (
	"bytes"
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

// Console forwards between netspawn's terminal and the container's pty. It
// outlives one boot of the container: after a reboot the next boot gets the
// same pty.
type Console struct {
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
	// background is --background='s escape ("": none), written while
	// output goes to a terminal; colored is set once it was.
	background string
	colored    bool
}

// SetBackground asks for an ANSI background color (an SGR parameter such
// as 44) on netspawn's terminal while the container runs, as nspawn's
// --background=. Nothing is written when the output is not a terminal.
func (c *Console) SetBackground(color string) {
	if color != "" && c.mode != config.ConsolePassive && IsTerminal(c.out) {
		c.background = config.BackgroundEscape(color)
	}
}

// Open allocates a pty for the container's console, forwarded to in and out
// in the given mode.
func Open(mode config.ConsoleMode, in, out *os.File) (*Console, error) {
	master, slave, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("allocating a pseudo terminal for the container console: %w", err)
	}
	return FromPTY(mode, master, slave, in, out), nil
}

// FromPTY forwards an open pty (made in the container's devpts, say).
func FromPTY(mode config.ConsoleMode, master, slave, in, out *os.File) *Console {
	c := &Console{mode: mode, master: master, slave: slave, slavePath: slave.Name(), in: in, out: out,
		escaped: make(chan struct{})}
	c.Resize()
	return c
}

// SlavePath is the pty's slave side, the container's /dev/console.
func (c *Console) SlavePath() string { return c.slavePath }

// Escaped is closed when the user typed the escape sequence; nil (never
// ready) for a nil console or once Disarm was called.
func (c *Console) Escaped() <-chan struct{} {
	if c == nil {
		return nil
	}
	return c.escaped
}

// Disarm stops reporting the escape sequence (it was acted on).
func (c *Console) Disarm() { c.escaped = nil }

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// OpenSlave returns the pty's slave side for the next boot of the container.
func (c *Console) OpenSlave() (*os.File, error) {
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

// Start begins forwarding for one boot; the slave side belongs to the
// container now. ended is closed when the container is gone.
func (c *Console) Start(ended <-chan struct{}) {
	c.slave.Close()
	c.slave = nil
	done := make(chan struct{})
	c.outDone = done
	out := io.Writer(c.out)
	if c.mode == config.ConsolePassive {
		out = io.Discard
	}
	if c.background != "" {
		_, _ = io.WriteString(c.out, c.background)
		c.colored = true
		out = &backgroundWriter{w: out, escape: []byte(c.background)}
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

// Resize gives the pty the size of netspawn's terminal.
func (c *Console) Resize() {
	if IsTerminal(c.out) {
		_ = pty.InheritSize(c.out, c.master)
	} else if IsTerminal(c.in) {
		_ = pty.InheritSize(c.in, c.master)
	}
}

// Pause waits (briefly) until what the container wrote before it ended has
// been copied out.
func (c *Console) Pause() {
	if c.outDone == nil {
		return
	}
	select {
	case <-c.outDone:
	case <-time.After(200 * time.Millisecond):
	}
}

// Close restores the terminal and closes the pty.
func (c *Console) Close() {
	c.closeOnce.Do(func() {
		if c.colored {
			_, _ = io.WriteString(c.out, config.BackgroundReset)
		}
		if c.state != nil {
			_ = term.Restore(int(c.in.Fd()), c.state)
		}
		c.master.Close()
		if c.slave != nil {
			c.slave.Close()
		}
	})
}

// backgroundWriter puts the background color back after output that holds
// escape sequences (which may have reset it), and paints each new line.
type backgroundWriter struct {
	w      io.Writer
	escape []byte
}

func (b *backgroundWriter) Write(p []byte) (int, error) {
	n, err := b.w.Write(p)
	if err == nil && bytes.ContainsAny(p, "\x1b\n") {
		_, err = b.w.Write(b.escape)
	}
	return n, err
}
