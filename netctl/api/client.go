package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/netspawn/netspawn/spawn/config"

	"golang.org/x/sys/unix"
)

// ConnectOptions configure Connect. The zero value is right for netspawn
// and netspawnctl.
type ConnectOptions struct {
	// RuntimeDir holds the socket; default $NETSPAWN_RUNTIME_DIR or /run/netspawn.
	RuntimeDir string
	// NoStart disables starting netspawnd when nothing answers.
	NoStart bool
	// DaemonPath is the netspawnd binary to start; default: netspawnd next to
	// the running executable, else netspawnd in PATH.
	DaemonPath string
	// DaemonArgs are extra arguments for a started netspawnd.
	DaemonArgs []string
	// StartTimeout bounds the wait for a started daemon's socket (default 5s).
	StartTimeout time.Duration
}

// Client is a connection to netspawnd. Its methods may be called from
// several goroutines; calls are serialised on the connection.
type Client struct {
	opts ConnectOptions
	mu   sync.Mutex
	conn *net.UnixConn
	r    *bufio.Reader
	seq  uint64
	// Started is true when this Connect started the daemon.
	Started bool
}

func runtimeDir(o ConnectOptions) string {
	if o.RuntimeDir != "" {
		return o.RuntimeDir
	}
	return config.RuntimeDir()
}

func dial(ctx context.Context, sock string) (*net.UnixConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return nil, err
	}
	return c.(*net.UnixConn), nil
}

// daemonAbsent reports whether a dial error means nobody serves the socket.
func daemonAbsent(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)
}

// Connect connects to netspawnd, starting it (detached, in a new session,
// logging to netspawnd.log in the runtime dir) when nothing answers. A lock
// file keeps concurrent callers from starting two daemons.
func Connect(ctx context.Context, o ConnectOptions) (*Client, error) {
	dir := runtimeDir(o)
	sock := filepath.Join(dir, SocketName)
	conn, err := dial(ctx, sock)
	if err == nil {
		return newClient(o, conn, false), nil
	}
	if o.NoStart || !daemonAbsent(err) {
		return nil, fmt.Errorf("connect to netspawnd at %s: %w", sock, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create runtime dir: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "netspawnd-start.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open start lock: %w", err)
	}
	defer lock.Close()
	if err := flock(ctx, lock); err != nil {
		return nil, err
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)
	// Someone may have started it while we waited for the lock.
	if conn, err := dial(ctx, sock); err == nil {
		return newClient(o, conn, false), nil
	}
	timeout := o.StartTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	deadline := time.Now().Add(timeout)
	logPath := filepath.Join(dir, "netspawnd.log")
	// A service manager running netspawnd, or about to restart it
	// (killed, crashed): leave it to it, for as long as the start
	// timeout. A second daemon started here would hold the lock and make
	// every one of the manager's restarts fail.
	for dir == defaultRuntimeDir && serviceRestarting() && time.Now().Before(deadline) {
		if conn, err := dial(ctx, sock); err == nil {
			return newClient(o, conn, false), nil
		}
		if daemonStarting(dir) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	// A daemon that holds its lock but has no socket yet is starting (a
	// service manager started it a moment ago): wait for it rather than
	// start a second one, which would find the lock taken and give up.
	if daemonStarting(dir) {
		for delay := time.Millisecond; time.Now().Before(deadline); delay = min(delay*2, 50*time.Millisecond) {
			if conn, err := dial(ctx, sock); err == nil {
				return newClient(o, conn, false), nil
			}
			if !daemonStarting(dir) {
				break // it gave up: start one
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(delay):
			}
		}
		if daemonStarting(dir) {
			return nil, fmt.Errorf("a netspawnd holds %s but did not open %s within %s", filepath.Join(dir, "netspawnd.lock"), sock, timeout)
		}
	}
	proc, exited, err := startDaemon(o, dir, logPath)
	if err != nil {
		return nil, err
	}
	for delay := time.Millisecond; ; delay = min(delay*2, 50*time.Millisecond) {
		conn, err := dial(ctx, sock)
		if err == nil {
			return newClient(o, conn, true), nil
		}
		select {
		case werr := <-exited:
			if last := lastLogLine(logPath); last != "" {
				return nil, fmt.Errorf("netspawnd exited during start-up (%v): %s (log: %s)", werr, last, logPath)
			}
			return nil, fmt.Errorf("netspawnd exited during start-up (%v); see %s", werr, logPath)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		if time.Now().After(deadline) {
			proc.Kill() // a half-started daemon would hold the lock
			return nil, fmt.Errorf("netspawnd did not open %s within %s (stopped it); see %s", sock, timeout, logPath)
		}
	}
}

// defaultRuntimeDir is the runtime directory of the netspawnd a service
// manager runs (configs/netspawnd.service).
const defaultRuntimeDir = "/run/netspawn"

// serviceRestarting reports whether systemd runs netspawnd.service or is
// about to restart it: the unit is active (its daemon just died and
// systemd has not seen it yet), activating, or waits out its RestartSec=
// (sub-state auto-restart). Only asked when nothing answers on the socket.
func serviceRestarting() bool {
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		return false // not booted with systemd
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "systemctl", "show", "--property=ActiveState", "--property=SubState", "netspawnd.service").Output()
	if err != nil {
		return false
	}
	return serviceWillAnswer(string(out))
}

// serviceWillAnswer reads systemctl show's ActiveState= and SubState=.
func serviceWillAnswer(show string) bool {
	var active, sub string
	for _, line := range strings.Split(show, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
		switch k {
		case "ActiveState":
			active = v
		case "SubState":
			sub = v
		}
	}
	return sub == "auto-restart" || active == "active" || active == "activating" || active == "reloading"
}

// daemonStarting reports whether a netspawnd holds the runtime dir's
// daemon lock (netctl.LockRuntimeDir).
func daemonStarting(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "netspawnd.lock"))
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}

func flock(ctx context.Context, f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// DaemonPath returns the netspawnd binary Connect would start.
func DaemonPath(o ConnectOptions) (string, error) {
	if o.DaemonPath != "" {
		return o.DaemonPath, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "netspawnd")
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath("netspawnd")
	if err != nil {
		return "", fmt.Errorf("netspawnd is not running and its binary was found neither next to %s nor in PATH", os.Args[0])
	}
	return p, nil
}

func startDaemon(o ConnectOptions, dir, logPath string) (*os.Process, <-chan error, error) {
	path, err := DaemonPath(o)
	if err != nil {
		return nil, nil, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", logPath, err)
	}
	defer logf.Close()
	args := append([]string{"--runtime-dir", dir}, o.DaemonArgs...)
	cmd := exec.Command(path, args...)
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logf, logf
	// NETSPAWN_* included; not a service manager's NOTIFY_SOCKET meant for
	// the caller (netspawnd would report the caller's unit ready).
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NOTIFY_SOCKET=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", path, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // reaps it if it ever exits while we live
	return cmd.Process, exited, nil
}

func newClient(o ConnectOptions, c *net.UnixConn, started bool) *Client {
	return &Client{opts: o, conn: c, r: bufio.NewReaderSize(c, 64<<10), Started: started}
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// callAttempts bounds how often a call is sent again over a new
// connection: a netspawnd killed while it answered may still accept a
// connection or two as it dies.
const callAttempts = 5

// call sends one request and decodes the result into out (may be nil).
// When the connection broke (netspawnd was restarted or killed since), it
// reconnects, starting netspawnd again unless NoStart, and retries, a few
// times: every method is idempotent.
func (c *Client) call(ctx context.Context, method string, params, out any) error {
	err := c.call1(ctx, method, params, out)
	var cerr error // the last reconnect's failure
	for attempt := 1; attempt < callAttempts; attempt++ {
		var ioe *ioError
		if !errors.As(err, &ioe) || ctx.Err() != nil {
			break
		}
		if attempt > 1 {
			select { // let a dying daemon finish dying
			case <-ctx.Done():
				return withReconnect(err, cerr)
			case <-time.After(time.Duration(attempt) * 50 * time.Millisecond):
			}
		}
		nc, e := Connect(ctx, c.opts)
		if cerr = e; e != nil {
			// The netspawnd started for us died too (killed during its
			// start-up): the next attempt starts another.
			continue
		}
		c.mu.Lock()
		c.conn.Close()
		c.conn, c.r = nc.conn, nc.r
		c.mu.Unlock()
		err = c.call1(ctx, method, params, out)
	}
	return withReconnect(err, cerr)
}

func withReconnect(err, cerr error) error {
	if err == nil || cerr == nil {
		return err
	}
	return fmt.Errorf("%w (reconnect: %v)", err, cerr)
}

// ioError marks a failure of the connection itself.
type ioError struct{ err error }

func (e *ioError) Error() string { return e.err.Error() }
func (e *ioError) Unwrap() error { return e.err }

func (c *Client) call1(ctx context.Context, method string, params, out any) error {
	var raw json.RawMessage
	if params != nil {
		b, err := json.Marshal(params)
		if err != nil {
			return err
		}
		raw = b
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	req, err := json.Marshal(Request{ID: c.seq, Method: method, Params: raw})
	if err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.conn.SetDeadline(dl)
	} else {
		c.conn.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := c.conn.Write(append(req, '\n')); err != nil {
		return c.ioErr(ctx, method, err)
	}
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		return c.ioErr(ctx, method, err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return fmt.Errorf("netspawnd %s: malformed response: %w", method, err)
	}
	if resp.Error != nil {
		return resp.Error
	}
	if resp.ID != c.seq {
		return fmt.Errorf("netspawnd %s: response out of order", method)
	}
	if out != nil && len(resp.Result) > 0 {
		if err := json.Unmarshal(resp.Result, out); err != nil {
			return fmt.Errorf("netspawnd %s: malformed result: %w", method, err)
		}
	}
	return nil
}

func (c *Client) ioErr(ctx context.Context, method string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return &ioError{fmt.Errorf("netspawnd %s: %w", method, err)}
}

// Ping checks the daemon and returns its PID.
func (c *Client) Ping(ctx context.Context) (PingReply, error) {
	var r PingReply
	err := c.call(ctx, MethodPing, nil, &r)
	return r, err
}

// Register registers a machine whose leader already runs in its own
// network namespace and returns how to configure the container's side.
func (c *Client) Register(ctx context.Context, req RegisterRequest) (RegisterReply, error) {
	var r RegisterReply
	err := c.call(ctx, MethodRegister, req, &r)
	return r, err
}

// SetLeader names the first process of a machine registered while
// starting (RegisterRequest.Starting); it must run in the machine's
// network namespace.
func (c *Client) SetLeader(ctx context.Context, name string, leader int) error {
	return c.call(ctx, MethodSetLeader, SetLeaderParams{Name: name, Leader: leader}, nil)
}

// Unregister removes a machine's networking.
func (c *Client) Unregister(ctx context.Context, name string) error {
	return c.call(ctx, MethodUnregister, NameParams{Name: name}, nil)
}

// List returns the running machines.
func (c *Client) List(ctx context.Context) ([]Machine, error) {
	var r []Machine
	err := c.call(ctx, MethodList, nil, &r)
	return r, err
}

// FindCNI returns the machine of a CNI attachment (container ID and
// interface), if any, without listing every machine.
func (c *Client) FindCNI(ctx context.Context, containerID, ifName string) (Machine, bool, error) {
	p := ListParams{CNIContainerID: containerID, CNIIfName: ifName}
	var r []Machine
	if err := c.call(ctx, MethodList, p, &r); err != nil {
		return Machine{}, false, err
	}
	for _, m := range r {
		if p.Match(m) {
			return m, true, nil
		}
	}
	return Machine{}, false, nil
}

// Status returns one machine in detail.
func (c *Client) Status(ctx context.Context, name string) (MachineStatus, error) {
	var r MachineStatus
	err := c.call(ctx, MethodStatus, NameParams{Name: name}, &r)
	return r, err
}

// Networks returns the subnets the controller manages.
func (c *Client) Networks(ctx context.Context) ([]Network, error) {
	var r []Network
	err := c.call(ctx, MethodNetworks, nil, &r)
	return r, err
}

// Leases lists the DHCP leases on a link ("" for every link).
func (c *Client) Leases(ctx context.Context, link string) ([]Lease, error) {
	var out []Lease
	err := c.call(ctx, MethodLeases, NameParams{Name: link}, &out)
	return out, err
}

// Start boots image NAME as a background service supervised by netspawnd.
func (c *Client) Start(ctx context.Context, name string) error {
	return c.call(ctx, MethodStart, NameParams{Name: name}, nil)
}

// Enable makes netspawnd start NAME whenever it starts.
func (c *Client) Enable(ctx context.Context, name string) error {
	return c.call(ctx, MethodEnable, NameParams{Name: name}, nil)
}

// CreateZone creates a cluster zone with the subnet asked for ("" picks
// one) and returns it.
func (c *Client) CreateZone(ctx context.Context, name, subnet string) (Network, error) {
	var n Network
	err := c.call(ctx, MethodZoneCreate, ZoneParams{Name: name, Subnet: subnet}, &n)
	return n, err
}

// Release gives a stopped machine's zone addresses back (in the cluster
// too): the next machine of that name gets a new one.
func (c *Client) Release(ctx context.Context, name string) error {
	return c.call(ctx, MethodRelease, NameParams{Name: name}, nil)
}

// Disable undoes Enable.
func (c *Client) Disable(ctx context.Context, name string) error {
	return c.call(ctx, MethodDisable, NameParams{Name: name}, nil)
}

// lastLogLine is the last non-empty line of an on-demand netspawnd's log:
// what it said before it exited.
func lastLogLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// Capacity asks whether one more machine would get an address, on veth
// links (zone "") or in zone.
func (c *Client) Capacity(ctx context.Context, zone string) (Capacity, error) {
	var out Capacity
	err := c.call(ctx, MethodCapacity, ZoneParams{Name: zone}, &out)
	return out, err
}
