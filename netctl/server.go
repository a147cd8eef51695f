package netctl

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/netspawn/netspawn/netctl/api"
	"github.com/netspawn/netspawn/netctl/supervisor"
	"golang.org/x/sys/unix"
)

// Version is reported by ping.
var Version = "dev"

// Server serves the controller's API on a Unix socket.
type Server struct {
	c    *Controller
	ln   *net.UnixListener
	lock *os.File
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]bool
}

// LockRuntimeDir takes the daemon lock of a runtime dir (one daemon per
// runtime dir); hold it for the daemon's life and before New.
func LockRuntimeDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create runtime dir: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "netspawnd.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("another netspawnd is running with runtime dir %s", dir)
	}
	return lock, nil
}

// LockNetNS makes sure only one netspawnd manages the current network
// namespace (its nftables table is per namespace): it binds an abstract
// Unix socket, which exists per network namespace and disappears with the
// process. Keep the returned listener open for the daemon's life.
func LockNetNS() (net.Listener, error) {
	ln, err := net.Listen("unix", "@netspawnd/netns-lock")
	if err != nil {
		if errors.Is(err, unix.EADDRINUSE) {
			return nil, errors.New("another netspawnd already manages this network namespace")
		}
		return nil, fmt.Errorf("network namespace lock: %w", err)
	}
	return ln, nil
}

// Listen replaces a stale socket in the controller's runtime dir and listens
// on it (mode 0600). lock is the file from LockRuntimeDir, released by Close.
func Listen(c *Controller, lock *os.File) (*Server, error) {
	dir := c.cfg.RuntimeDir
	sock := filepath.Join(dir, api.SocketName)
	_ = os.Remove(sock)
	old := unix.Umask(0o077)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("listen on %s: %w", sock, err)
	}
	ln.SetUnlinkOnClose(false) // a successor removes it; clients see ECONNREFUSED meanwhile
	if err := os.Chmod(sock, 0o600); err != nil {
		ln.Close()
		lock.Close()
		return nil, err
	}
	return NewServer(c, ln, lock), nil
}

// NewServer serves on an existing listener (the lock may be nil).
func NewServer(c *Controller, ln *net.UnixListener, lock *os.File) *Server {
	return &Server{c: c, ln: ln, lock: lock, conns: map[net.Conn]bool{}}
}

// Serve accepts connections until ctx ends.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				s.closeAll()
				s.wg.Wait()
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			s.c.log.Warn("accept", "err", err)
			continue
		}
		if err := checkPeer(conn); err != nil {
			s.c.log.Warn("refused API client", "err", err)
			conn.Close()
			continue
		}
		s.mu.Lock()
		s.conns[conn] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(ctx, conn)
			s.mu.Lock()
			delete(s.conns, conn)
			s.mu.Unlock()
		}()
	}
}

func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// Close releases the lock file (the listener closes with Serve's context).
func (s *Server) Close() {
	s.ln.Close()
	if s.lock != nil {
		s.lock.Close()
	}
}

// checkPeer admits only root (and the daemon's own user).
func checkPeer(conn *net.UnixConn) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return fmt.Errorf("SO_PEERCRED: %w", cerr)
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Geteuid() {
		return fmt.Errorf("uid %d (pid %d) is not root", cred.Uid, cred.Pid)
	}
	return nil
}

func (s *Server) serveConn(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	r := bufio.NewReaderSize(conn, 64<<10)
	w := bufio.NewWriter(conn)
	enc := json.NewEncoder(w)
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				_ = enc.Encode(api.Response{Error: &api.Error{Code: api.CodeInvalid, Message: "request too large"}})
				w.Flush()
			}
			return
		}
		var req api.Request
		var resp api.Response
		t0 := time.Now()
		method := "invalid"
		if err := json.Unmarshal(line, &req); err != nil {
			resp.Error = &api.Error{Code: api.CodeInvalid, Message: "malformed request: " + err.Error()}
		} else {
			resp = s.handle(ctx, req)
			method = req.Method
			if !apiMethods[method] {
				method = "unknown" // a metric label from a closed set
			}
		}
		if o := s.c.cfg.Observer; o != nil {
			var err error
			if resp.Error != nil {
				err = resp.Error
			}
			o.APICall(method, time.Since(t0), err)
		}
		s.c.log.Debug("api call", "method", method, "ms", msSince(t0, time.Now()))
		if err := enc.Encode(resp); err != nil {
			return
		}
		if err := w.Flush(); err != nil {
			return
		}
	}
}

// apiMethods are the protocol's methods (the metrics' label values).
var apiMethods = map[string]bool{
	api.MethodRegister: true, api.MethodUnregister: true, api.MethodList: true, api.MethodStatus: true,
	api.MethodNetworks: true, api.MethodPing: true, api.MethodLeases: true, api.MethodStart: true,
	api.MethodEnable: true, api.MethodDisable: true, api.MethodZoneCreate: true, api.MethodRelease: true,
	api.MethodCapacity: true, api.MethodSetLeader: true,
}

func (s *Server) handle(ctx context.Context, req api.Request) api.Response {
	resp := api.Response{ID: req.ID}
	var result any
	var err error
	switch req.Method {
	case api.MethodPing:
		result = api.PingReply{PID: os.Getpid(), Version: Version}
	case api.MethodRegister:
		var p api.RegisterRequest
		if err = decode(req.Params, &p); err == nil {
			result, err = s.c.Register(ctx, p)
		}
	case api.MethodUnregister:
		var p api.NameParams
		if err = decode(req.Params, &p); err == nil {
			err = s.c.Unregister(ctx, p.Name)
			result = struct{}{}
		}
	case api.MethodSetLeader:
		var p api.SetLeaderParams
		if err = decode(req.Params, &p); err == nil {
			err = s.c.SetLeader(ctx, p.Name, p.Leader)
			result = struct{}{}
		}
	case api.MethodList:
		var p api.ListParams
		if len(req.Params) > 0 {
			err = decode(req.Params, &p)
		}
		if err == nil {
			result = s.c.ListMatching(ctx, p)
		}
	case api.MethodStatus:
		var p api.NameParams
		if err = decode(req.Params, &p); err == nil {
			result, err = s.c.Status(ctx, p.Name)
		}
	case api.MethodNetworks:
		result = s.c.Networks(ctx)
	case api.MethodStart, api.MethodEnable, api.MethodDisable:
		var p api.NameParams
		if err = decode(req.Params, &p); err == nil {
			err = s.c.supervise(func(sv *supervisor.Supervisor) error {
				switch req.Method {
				case api.MethodStart:
					return sv.Start(p.Name)
				case api.MethodEnable:
					return sv.Enable(p.Name)
				}
				return sv.Disable(p.Name)
			})
			result = struct{}{}
		}
	case api.MethodZoneCreate:
		var p api.ZoneParams
		if err = decode(req.Params, &p); err == nil {
			result, err = s.c.CreateZone(ctx, p.Name, p.Subnet)
		}
	case api.MethodCapacity:
		var p api.ZoneParams
		if err = decode(req.Params, &p); err == nil {
			result, err = s.c.Capacity(ctx, p.Name)
		}
	case api.MethodRelease:
		var p api.NameParams
		if err = decode(req.Params, &p); err == nil {
			err = s.c.Release(ctx, p.Name)
			result = struct{}{}
		}
	case api.MethodLeases:
		var p api.NameParams
		if err = decode(req.Params, &p); err == nil {
			result = s.c.Leases(p.Name)
		}
	default:
		err = &api.Error{Code: api.CodeInvalid, Message: fmt.Sprintf("unknown method %q", req.Method)}
	}
	if err != nil {
		var ae *api.Error
		if !errors.As(err, &ae) {
			ae = &api.Error{Code: api.CodeInternal, Message: err.Error()}
		}
		resp.Error = ae
		s.c.log.Debug("api call failed", "method", req.Method, "err", ae.Message)
		return resp
	}
	b, merr := json.Marshal(result)
	if merr != nil {
		resp.Error = &api.Error{Code: api.CodeInternal, Message: merr.Error()}
		return resp
	}
	resp.Result = b
	return resp
}

func decode(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		return &api.Error{Code: api.CodeInvalid, Message: "missing params"}
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return &api.Error{Code: api.CodeInvalid, Message: "malformed params: " + err.Error()}
	}
	return nil
}
