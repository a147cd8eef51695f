// Package sdnotify speaks systemd's service notification protocol
// (sd_notify(3)): newline-separated VARIABLE=VALUE assignments in one
// AF_UNIX datagram, sent to the socket $NOTIFY_SOCKET names. netspawn is
// on both ends of it, as systemd-nspawn is: it listens on the socket its
// container's PID 1 finds at /run/host/notify, and tells its own
// supervisor (systemd for a Type=notify unit, or netspawnd for a started
// machine) READY=1, STATUS= and STOPPING=1.
//
// Parse is pure; Send, Listen, NewUnbound and Conn make the system calls.
package sdnotify

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// MaxMessage is the largest datagram taken (systemd's NOTIFY_BUFFER_MAX);
// a longer one is dropped.
const MaxMessage = 4096

// Message is what one notification says, of what netspawn acts on.
type Message struct {
	Ready     bool   // READY=1
	Stopping  bool   // STOPPING=1
	Status    string // STATUS=, when HasStatus
	HasStatus bool
}

// Parse reads one datagram: assignments separated by newlines (or carriage
// returns, as systemd-nspawn splits them). Other variables are ignored.
func Parse(b []byte) Message {
	var m Message
	for _, line := range strings.FieldsFunc(string(b), func(r rune) bool { return r == '\n' || r == '\r' }) {
		switch {
		case line == "READY=1":
			m.Ready = true
		case line == "STOPPING=1":
			m.Stopping = true
		case strings.HasPrefix(line, "STATUS="):
			m.Status, m.HasStatus = strings.TrimPrefix(line, "STATUS="), true
		}
	}
	return m
}

// CheckAddr checks a $NOTIFY_SOCKET value: an absolute path, or an
// abstract socket name starting with "@".
func CheckAddr(addr string) error {
	switch {
	case addr == "":
		return errors.New("empty notification socket address")
	case addr[0] != '/' && addr[0] != '@':
		return fmt.Errorf("notification socket %q is neither an absolute path nor an abstract name (@NAME)", addr)
	case len(addr) >= len(unix.RawSockaddrUnix{}.Path):
		return fmt.Errorf("notification socket address %q is too long", addr)
	}
	return nil
}

// Send sends state to the socket $NOTIFY_SOCKET names; without the
// variable it does nothing (not run by a service manager that listens).
func Send(state string) error {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return nil
	}
	return SendTo(addr, state)
}

// SendTo sends state in one datagram to the notification socket addr
// ("/path" or "@abstract"). The kernel attaches the sender's credentials,
// by which the receiver tells who sent it.
func SendTo(addr, state string) error {
	if err := CheckAddr(addr); err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("notification socket: %w", err)
	}
	defer unix.Close(fd)
	// A receiver that stopped reading must not block us for long.
	tv := unix.NsecToTimeval(int64(2 * time.Second))
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	if err := unix.Sendto(fd, []byte(state), 0, &unix.SockaddrUnix{Name: addr}); err != nil {
		return fmt.Errorf("sending %q to %s: %w", firstLine(state), addr, err)
	}
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// Conn receives notifications, with each sender's process ID.
type Conn struct {
	c *net.UnixConn
}

// Datagram is one notification received.
type Datagram struct {
	// PID is the sender's process ID as this process's PID namespace sees
	// it (0: the kernel attached no credentials).
	PID     int
	Message Message
	Raw     []byte
}

// Listen binds a notification socket at addr ("/path" or "@abstract"),
// passing credentials. A path is the caller's to remove.
func Listen(addr string) (*Conn, error) {
	if err := CheckAddr(addr); err != nil {
		return nil, err
	}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("binding notification socket %s: %w", addr, err)
	}
	if err := passCred(c); err != nil {
		c.Close()
		return nil, err
	}
	return &Conn{c: c}, nil
}

// NewUnbound makes a notification socket that someone else binds: the
// container's first process binds it at /run/host/notify in the
// container's mount namespace (only the file name lives there; the socket
// is the same). It returns the receiving end and a descriptor of the same
// socket to hand over (close-on-exec; the caller closes it once handed).
func NewUnbound() (*Conn, *os.File, error) {
	// Made blocking: os.NewFile then leaves the descriptor out of Go's
	// poller, and its Fd (which os/exec calls on ExtraFiles) does not
	// switch the socket, shared with the receiving end, back to blocking
	// under that end's poller.
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("creating the notification socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("notification socket: SO_PASSCRED: %w", err)
	}
	f := os.NewFile(uintptr(fd), "notify")
	fc, err := net.FileConn(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("notification socket: %w", err)
	}
	uc, ok := fc.(*net.UnixConn)
	if !ok {
		fc.Close()
		f.Close()
		return nil, nil, errors.New("notification socket: not a unix socket")
	}
	return &Conn{c: uc}, f, nil
}

func passCred(c *net.UnixConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("notification socket: SO_PASSCRED: %w", serr)
	}
	return nil
}

// Read waits for the next notification. Oversized datagrams are skipped,
// and descriptors sent along (the file descriptor store, which netspawn
// does not keep) are closed. It fails once the Conn is closed.
func (c *Conn) Read() (Datagram, error) {
	buf := make([]byte, MaxMessage+1)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred)+unix.CmsgSpace(4*768))
	for {
		n, oobn, flags, _, err := c.c.ReadMsgUnix(buf, oob)
		if err != nil {
			return Datagram{}, err
		}
		pid := 0
		if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, m := range msgs {
				if fds, err := unix.ParseUnixRights(&m); err == nil {
					for _, fd := range fds {
						unix.Close(fd)
					}
				}
				if cred, err := unix.ParseUnixCredentials(&m); err == nil {
					pid = int(cred.Pid)
				}
			}
		}
		if n > MaxMessage || flags&unix.MSG_TRUNC != 0 {
			continue
		}
		raw := bytes.Clone(buf[:n])
		return Datagram{PID: pid, Message: Parse(raw), Raw: raw}, nil
	}
}

// SetDeadline bounds the wait of Read.
func (c *Conn) SetDeadline(t time.Time) error { return c.c.SetReadDeadline(t) }

// Close closes the receiving end; a pending Read returns.
func (c *Conn) Close() error { return c.c.Close() }
