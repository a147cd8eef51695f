// Package supervisor runs machines as background services for netspawnd,
// as systemd-nspawn@.service does under systemd: start, enable at
// netspawnd's start, and the console log of each.
package supervisor

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/netspawn/netspawn/internal/sdnotify"
	"github.com/netspawn/netspawn/spawn/config"

	"github.com/netspawn/netspawn/netctl/api"
)

// Supervisor runs machines as background services, as systemd-nspawn@.service
// does under systemd: `netspawnctl start NAME` boots the image NAME from the
// images directory with the template unit's flags, its console going to a
// log file; `enable NAME` makes netspawnd start it whenever netspawnd starts.
type Supervisor struct {
	StateDir  string // enabled/ and logs/ live here
	ImagesDir string // default $NETSPAWN_IMAGES_DIR or /var/lib/machines
	Netspawn  string // the netspawn binary; default next to netspawnd, else in PATH
	Log       *slog.Logger
	Running   func(name string) bool // whether a machine of that name is registered
	// StartTimeout bounds Start's wait for the machine to be ready: 0 is
	// 90s, systemd's default for systemd-nspawn@.service (TimeoutStartSec).
	StartTimeout time.Duration

	mu    sync.Mutex
	procs map[string]*os.Process
}

// ImagesDir returns the default images directory.
func ImagesDir() string { return config.ImageDirs(nil)[0] }

func (s *Supervisor) images() string {
	if s.ImagesDir != "" {
		return s.ImagesDir
	}
	return ImagesDir()
}

func (s *Supervisor) enabledDir() string { return filepath.Join(s.StateDir, "enabled") }

// LogPath is where a started machine's console output goes.
func LogPath(stateDir, name string) string { return filepath.Join(stateDir, "logs", name+".log") }

func (s *Supervisor) netspawn() (string, error) {
	if s.Netspawn != "" {
		return s.Netspawn, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "netspawn")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("netspawn")
	if err != nil {
		return "", fmt.Errorf("netspawn not found next to netspawnd or in PATH: %w", err)
	}
	return p, nil
}

// StartArgs are the netspawn arguments for a started machine: those of
// systemd-nspawn@.service (with its --link-journal=try-guest), but for user
// namespacing.
func StartArgs(name string) []string {
	return []string{"--quiet", "--keep-unit", "--boot", "--link-journal=try-guest", "--network-veth", "--settings=override",
		"--console=read-only", "--machine=" + name}
}

// Start boots image NAME in the background. The console log of the previous
// run is kept as NAME.log.1. As systemctl start of the Type=notify
// systemd-nspawn@.service, it returns once netspawn reports the machine
// ready (READY=1 on the notification socket Start gives it): when its
// payload runs, or, with NotifyReady=yes in the machine's .nspawn file,
// when the machine's init said so itself. A machine not ready in time is
// stopped, and Start fails.
func (s *Supervisor) Start(name string) error {
	if err := config.CheckMachineName(name); err != nil {
		return apiErr(api.CodeInvalid, "%v", err)
	}
	img := filepath.Join(s.images(), name)
	root := "--directory=" + img
	if st, err := os.Stat(img); err != nil || !st.IsDir() {
		// A disk image NAME.raw, as systemd-nspawn@.service finds it.
		if st, err := os.Stat(img + ".raw"); err == nil && st.Mode().IsRegular() {
			root = "--image=" + img + ".raw"
		} else {
			return apiErr(api.CodeNotFound, "no image %q in %s (netspawnctl list-images shows them)", name, s.images())
		}
	}
	s.mu.Lock()
	locked := true
	defer func() {
		if locked {
			s.mu.Unlock()
		}
	}()
	if s.procs == nil {
		s.procs = map[string]*os.Process{}
	}
	if _, ok := s.procs[name]; ok || (s.Running != nil && s.Running(name)) {
		return apiErr(api.CodeConflict, "machine %q is already running", name)
	}
	bin, err := s.netspawn()
	if err != nil {
		return apiErr(api.CodeInternal, "%v", err)
	}
	logPath := LogPath(s.StateDir, name)
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return apiErr(api.CodeInternal, "%v", err)
	}
	// An abstract socket: nothing to remove, and private to netspawnd's
	// network namespace, where netspawn runs too.
	notifyAddr := fmt.Sprintf("@netspawnd/%d/notify/%s/%d", os.Getpid(), name, time.Now().UnixNano())
	notify, err := sdnotify.Listen(notifyAddr)
	if err != nil {
		return apiErr(api.CodeInternal, "%v", err)
	}
	started := false
	defer func() {
		if !started {
			notify.Close()
		}
	}()
	_ = os.Rename(logPath, logPath+".1")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return apiErr(api.CodeInternal, "opening console log: %v", err)
	}
	defer logf.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return apiErr(api.CodeInternal, "%v", err)
	}
	defer devnull.Close()
	cmd := exec.Command(bin, append(StartArgs(name), root)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, logf, logf
	cmd.Env = append(withoutNotifySocket(os.Environ()), "NOTIFY_SOCKET="+notifyAddr)
	// Its own session: it outlives netspawnd (a restart does not stop it).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	fmt.Fprintf(logf, "-- netspawnd: starting %s at %s: %s %v\n", name, time.Now().UTC().Format(time.RFC3339), bin, cmd.Args[1:])
	if err := cmd.Start(); err != nil {
		return apiErr(api.CodeInternal, "starting netspawn for %s: %v", name, err)
	}
	started = true
	s.procs[name] = cmd.Process
	pid := cmd.Process.Pid
	ready := make(chan struct{})
	go waitReady(notify, pid, ready)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		err := cmd.Wait()
		notify.Close()
		s.mu.Lock()
		delete(s.procs, name)
		s.mu.Unlock()
		if f, ferr := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0); ferr == nil {
			fmt.Fprintf(f, "-- netspawnd: %s ended at %s: %v\n", name, time.Now().UTC().Format(time.RFC3339), exitText(err))
			f.Close()
		}
		s.Log.Info("started machine ended", "machine", name, "status", exitText(err))
	}()
	s.Log.Info("started machine", "machine", name, "pid", pid, "log", logPath)
	// Return once it is ready and registered, as systemctl start returns
	// once the service has started: then list, status and the image rules
	// see it.
	s.mu.Unlock()
	locked = false
	timeout := s.StartTimeout
	if timeout <= 0 {
		timeout = 90 * time.Second
	}
	deadline := time.After(timeout)
	isReady := false
	for !isReady || (s.Running != nil && !s.Running(name)) {
		select {
		case <-exited:
			tail, _ := os.ReadFile(logPath)
			return apiErr(api.CodeInternal, "machine %q ended while starting; its console log %s ends with: %s", name, logPath, lastLine(string(tail)))
		case <-ready:
			isReady, ready = true, nil
		case <-deadline:
			stopStarting(cmd.Process, exited)
			if !isReady {
				return apiErr(api.CodeInternal, "machine %q did not report ready within %s, and was stopped: netspawn says READY=1 once the "+
					"machine's init runs or, with NotifyReady=yes in its .nspawn file, once the init itself sends READY=1 to "+
					"$NOTIFY_SOCKET (/run/host/notify); see %s", name, timeout, logPath)
			}
			return apiErr(api.CodeInternal, "machine %q did not register within %s, and was stopped; see %s", name, timeout, logPath)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// waitReady closes ready when netspawn (pid) reports READY=1 on notify,
// and goes on reading (and dropping) what it says after, until notify is
// closed.
func waitReady(notify *sdnotify.Conn, pid int, ready chan<- struct{}) {
	for {
		d, err := notify.Read()
		if err != nil {
			return
		}
		if d.PID == pid && d.Message.Ready && ready != nil {
			close(ready)
			ready = nil
		}
	}
}

// stopStarting stops a machine that did not start in time, as systemd
// stops a unit whose start timed out: SIGTERM to netspawn (which passes
// its kill signal on to the machine), SIGKILL after 10s.
func stopStarting(p *os.Process, exited <-chan struct{}) {
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = p.Kill()
		<-exited
	}
}

// withoutNotifySocket drops a service manager's $NOTIFY_SOCKET meant for
// netspawnd itself.
func withoutNotifySocket(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "NOTIFY_SOCKET=") {
			out = append(out, kv)
		}
	}
	return out
}

// lastLine is the last line of a console log that netspawn (not netspawnd's
// own start and end marks) wrote.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if !strings.HasPrefix(lines[i], "-- netspawnd:") {
			return lines[i]
		}
	}
	return lines[len(lines)-1]
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// Enable marks a machine to be started whenever netspawnd starts.
func (s *Supervisor) Enable(name string) error {
	if err := config.CheckMachineName(name); err != nil {
		return apiErr(api.CodeInvalid, "%v", err)
	}
	if st, err := os.Stat(filepath.Join(s.images(), name)); err != nil || !st.IsDir() {
		return apiErr(api.CodeNotFound, "no image %q in %s", name, s.images())
	}
	if err := os.MkdirAll(s.enabledDir(), 0o755); err != nil {
		return apiErr(api.CodeInternal, "%v", err)
	}
	if err := os.WriteFile(filepath.Join(s.enabledDir(), name), nil, 0o644); err != nil {
		return apiErr(api.CodeInternal, "%v", err)
	}
	return nil
}

// Disable stops starting a machine with netspawnd.
func (s *Supervisor) Disable(name string) error {
	if err := config.CheckMachineName(name); err != nil {
		return apiErr(api.CodeInvalid, "%v", err)
	}
	err := os.Remove(filepath.Join(s.enabledDir(), name))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return apiErr(api.CodeInternal, "%v", err)
	}
	return nil
}

// Enabled lists the enabled machines.
func (s *Supervisor) Enabled() []string {
	entries, _ := os.ReadDir(s.enabledDir())
	var out []string
	for _, e := range entries {
		if config.CheckMachineName(e.Name()) == nil {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

// StartEnabled starts every enabled machine that is not running (at
// netspawnd's start).
func (s *Supervisor) StartEnabled() {
	for _, name := range s.Enabled() {
		if s.Running != nil && s.Running(name) {
			continue
		}
		if err := s.Start(name); err != nil {
			s.Log.Error("starting enabled machine", "machine", name, "err", err)
		}
	}
}

func apiErr(code, format string, args ...any) error {
	return &api.Error{Code: code, Message: fmt.Sprintf(format, args...)}
}
