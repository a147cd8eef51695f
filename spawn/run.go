package spawn

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/netspawn/netspawn/internal/sdnotify"
	"github.com/netspawn/netspawn/spawn/config"
	"github.com/netspawn/netspawn/spawn/internal/console"
	"github.com/netspawn/netspawn/spawn/internal/proc"
	"github.com/netspawn/netspawn/spawn/seccomp"

	"github.com/netspawn/netspawn/spawn/cgroup"

	"golang.org/x/sys/unix"
)

// ExitError carries the exit status netspawn must return: the payload's own
// status, or 128+N when it was killed by signal N.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("container exited with status %d", e.Code) }

// initMsg is the first message the parent sends to the container's first
// process: everything it needs to build the container.
type initMsg struct {
	Config  *config.Config `json:"config"`
	Console bool           `json:"console"` // /dev/console is the pty on stdin
	// ConsolePath is the pty's path on the host (e.g. /dev/pts/3), visible
	// in the container's copy of the host's mounts before pivot_root.
	ConsolePath string `json:"console_path,omitempty"`
	Term        string `json:"term,omitempty"`
	// TempBinds holds the host directories created for --bind with an empty source.
	TempBinds map[int]string `json:"temp_binds,omitempty"`
	// JoinNetNS: fd 5 is a network namespace to join.
	JoinNetNS bool `json:"join_netns,omitempty"`
	// CgroupMode says how to mount /sys/fs/cgroup: "" (leave sysfs's
	// directory), "ro" or "rw" (a cgroup2 view of the container's subtree).
	CgroupMode string `json:"cgroup_mode,omitempty"`
	// Seccomp is the compiled system call filter, installed right before
	// the payload starts (none where the kernel lacks seccomp).
	Seccomp seccomp.Program `json:"seccomp,omitempty"`
	// Storage: detached mounts and the user namespace (storage.go).
	Storage *storageMsg `json:"storage,omitempty"`
	// Rlimits are the payload's resource limits, by RLIMIT_* number
	// (execprops.go).
	Rlimits []config.Rlimit `json:"rlimits,omitempty"`
	// NotifyFD is the notification socket to bind at /run/host/notify
	// (notify.go); 0: none.
	NotifyFD int `json:"notify_fd,omitempty"`
	// BindUsers are the --bind-user= users: their records go to
	// /run/host/userdb, their IDs into the user namespace's maps
	// (binduser.go).
	BindUsers []boundUser `json:"bind_users,omitempty"`
}

// NetworkSetup is the second message: how to configure the container's
// interfaces before the payload starts. Filled by the network hook.
type NetworkSetup struct {
	Interfaces []InterfaceSetup `json:"interfaces,omitempty"`
	DNS        []string         `json:"dns,omitempty"`
	Search     []string         `json:"search,omitempty"`
	// Configured: the controller has configured Interfaces already (a
	// machine attached before its first process, early.go).
	Configured bool `json:"-"`
}

// InterfaceSetup configures one interface inside the container.
type InterfaceSetup struct {
	Name      string   `json:"name"`
	Addresses []string `json:"addresses,omitempty"` // CIDR
	Gateway4  string   `json:"gateway4,omitempty"`
	Gateway6  string   `json:"gateway6,omitempty"`
	MTU       int      `json:"mtu,omitempty"`
}

// NetworkHook attaches the container to its networks once its first process
// exists (in its own network namespace, blocked until the hook returns).
// Release undoes it after the container is gone.
type NetworkHook interface {
	Attach(ctx context.Context, cfg *config.Config, leaderPID int) (NetworkSetup, error)
	Release(ctx context.Context, cfg *config.Config)
}

// EarlyNetworkHook is a NetworkHook that can attach a container before its
// first process exists, to a network namespace netspawn made (early.go):
// the links are made while the container is prepared. SetLeader names the
// first process once it runs there.
type EarlyNetworkHook interface {
	NetworkHook
	// Dial connects to the controller ahead of AttachStarting.
	Dial(ctx context.Context) error
	AttachStarting(ctx context.Context, cfg *config.Config, netnsPath string) (NetworkSetup, error)
	SetLeader(ctx context.Context, cfg *config.Config, leaderPID int) error
}

// ControllerDialer is a NetworkHook that can connect to a controller that
// already runs ahead of a plain registration (Attach of a machine without
// networking from the controller), while the container is prepared. It
// never starts one: a container that fails to start starts nothing.
type ControllerDialer interface {
	DialRunning(ctx context.Context) error
}

// Options are the parts of a run that are not container configuration.
type Options struct {
	Stdin  *os.File
	Stdout *os.File
	Stderr *os.File
	// Network is consulted when the configuration asks for networking
	// beyond a bare private namespace. Nil: such configurations are refused.
	Network NetworkHook
}

// Run runs the container described by cfg and returns when it is gone. A
// non-zero exit of the payload is returned as *ExitError. In boot mode a
// reboot inside the container starts it again in place, keeping its network.
func Run(cfg *config.Config, opts Options) error {
	if opts.Stdin == nil {
		opts.Stdin, opts.Stdout, opts.Stderr = os.Stdin, os.Stdout, os.Stderr
	}
	if os.Geteuid() != 0 {
		return errors.New("netspawn must be run as root (it creates namespaces and mounts)")
	}
	if err := checkSELinux(cfg, selinuxEnabled); err != nil {
		return err
	}
	closeInheritedFDs()
	trace("run")
	sigs := catchSignals()
	// The network first: netspawnd makes the links while the rest is
	// prepared (early.go).
	early := startEarlyNetwork(cfg, opts.Network)
	defer early.close()
	dial := startDialing(cfg, opts.Network, early != nil)
	// The filter depends on the settings only: compiled while the tree,
	// the image and the cgroups are prepared.
	seccompReady, seccompProg := compileSeccompAsync(cfg)
	devices := loadDevicePolicy(cfg)
	defer devices.close()
	if err := prepareImage(cfg); err != nil {
		return err
	}
	if cfg.Image == "" {
		if err := prepareDirectory(cfg); err != nil {
			return err
		}
	}
	if !cfg.NoLock {
		lock, err := lockImage(cfg.Source(), cfg.ReadOnly || cfg.Ephemeral || cfg.Volatile != config.VolatileNo)
		if err != nil {
			return err
		}
		defer lock.release()
	}
	var img *diskImage
	if cfg.Image != "" {
		var err error
		if img, err = attachImage(cfg); err != nil {
			return err
		}
		defer img.close()
		if err := checkImageTree(cfg, img); err != nil {
			return err
		}
		cfg.Directory = img.rootPath()
	}
	stor, err := prepareStorage(cfg, img)
	if err != nil {
		return err
	}
	defer stor.cleanup()
	if cfg.Boot {
		if img != nil {
			err = img.checkBootable()
		} else {
			err = checkBootable(hostTree{"/": cfg.Directory}, "directory "+cfg.Directory)
		}
		if err != nil {
			return err
		}
	}
	if cfg.Boot || cfg.UUID == "" {
		cfg.UUID = containerUUID(cfg)
	}
	if err := setupJournal(cfg); err != nil {
		return err
	}
	bound, err := setupBindUsers(cfg)
	if err != nil {
		return err
	}
	needNet := cfg.NeedsNetworkController()
	if needNet && opts.Network == nil {
		return errors.New("this build of netspawn has no network controller: networking flags are not available")
	}

	trace("storage prepared")
	r := &runner{cfg: cfg, opts: opts, needNet: needNet, stor: stor, bindUsers: bound,
		seccompReady: seccompReady, seccompProg: seccompProg, devices: devices, early: early, dial: dial, sigs: sigs}
	defer r.cleanup()
	// As nspawn, whatever the outcome (before the clean-up).
	defer func() { _ = sdnotify.Send("STOPPING=1\nSTATUS=Terminating...") }()
	if err := r.prepare(); err != nil {
		return err
	}
	if !cfg.Quiet {
		fmt.Fprintf(opts.Stderr, "Spawning container %s on %s.\n", cfg.Machine, cfg.Source())
		if r.mode == config.ConsoleInteractive {
			fmt.Fprintf(opts.Stderr, "Press Ctrl-] three times within 1s to kill container.\n")
		}
	}
	for {
		reboot, err := r.runOnce()
		if err != nil || !reboot {
			return err
		}
		if !cfg.Quiet {
			fmt.Fprintf(opts.Stderr, "Container %s is being rebooted.\n", cfg.Machine)
		}
	}
}

// runner holds what lives across one netspawn invocation, possibly several
// boots of the container.
type runner struct {
	cfg      *config.Config
	opts     Options
	needNet  bool
	dial     *dialing // connecting to netspawnd for a plain registration
	mode     config.ConsoleMode
	con      *console.Console
	msg      initMsg
	tempDirs []string
	cgroup   *cgroup.Machine
	// limitsV2 and limitsV1 are the cgroup files of --property= and
	// the saved properties, written after the first process started.
	limitsV2 map[string]string
	limitsV1 map[string]map[string]string
	netns    *os.File // the container's network namespace, kept across reboots
	attached bool
	sigs     *signalCatcher
	// startedOnce: whileStarting ran.
	startedOnce bool
	// seccompReady delivers the result of the filter's compilation into
	// seccompProg (once per run), which whileStarting moves to msg.Seccomp.
	seccompReady <-chan error
	seccompProg  *[]unix.SockFilter
	// registering is closed when a background registration is over.
	registering chan struct{}
	mu          sync.Mutex    // guards attached against the registration goroutine
	stor        *storageState // user namespace and root file system (storage.go)
	// notify is this start's notification socket (notify.go), and
	// notifyHand the descriptor of it the first process binds.
	notify     *sdnotify.Conn
	notifyHand *os.File
	bindUsers  []boundUser // --bind-user= (binduser.go)
	devices    *devicePolicyProgram
	// early is the network attached before the first process (early.go),
	// or nil.
	early *earlyNetwork
}

func (r *runner) prepare() error {
	cfg := r.cfg
	r.mode = consoleMode(cfg, r.opts.Stdin, r.opts.Stdout)
	r.msg = initMsg{Config: cfg, BindUsers: r.bindUsers}
	rlimits, err := payloadRlimits(cfg)
	if err != nil {
		return err
	}
	r.msg.Rlimits = rlimits
	for i, b := range cfg.Binds {
		if b.Source == "" && !b.SourceInRoot {
			d, err := os.MkdirTemp("/var/tmp", "netspawn-bind-")
			if err != nil {
				return fmt.Errorf("creating temporary directory for --bind=:%s: %w", b.Dest, err)
			}
			r.tempDirs = append(r.tempDirs, d)
			if r.msg.TempBinds == nil {
				r.msg.TempBinds = map[int]string{}
			}
			r.msg.TempBinds[i] = d
		}
	}
	trace("prepare")
	saved, err := config.LoadProperties(config.StateDir(), cfg.Machine)
	if err != nil {
		return fmt.Errorf("reading the saved properties of %s: %w", cfg.Machine, err)
	}
	limits, err := config.ParseProperties(append(saved, cfg.Properties...))
	if err != nil {
		return err
	}
	v1 := limits.V1Files()
	cg, err := cgroup.Create(context.Background(), cgroup.Options{Machine: cfg.Machine, Slice: cfg.Slice, V1: limitControllers(v1), KeepUnit: cfg.KeepUnit,
		Warn: func(format string, args ...any) { warnf(cfg.Quiet, format, args...) }})
	if err != nil {
		return err
	}
	r.cgroup = cg
	r.stor.cgroup = cg.Payload
	if err := r.applyDevicePolicy(); err != nil {
		return err
	}
	trace("cgroups made")
	r.limitsV2, r.limitsV1 = limits.V2Files(), v1
	r.msg.CgroupMode = containerCgroupMode(cg, cfg.Boot)

	if p := cfg.Network.NamespacePath; p != "" {
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("opening network namespace %s: %w", p, err)
		}
		var st unix.Statfs_t
		if err := unix.Fstatfs(int(f.Fd()), &st); err != nil || (st.Type != unix.NSFS_MAGIC && st.Type != unix.PROC_SUPER_MAGIC) {
			f.Close()
			return fmt.Errorf("--network-namespace-path=%s is not a network namespace file (expected e.g. /run/netns/NAME)", p)
		}
		r.netns = f
	}
	if r.mode != config.ConsolePipe {
		con, err := console.Open(r.mode, r.opts.Stdin, r.opts.Stdout)
		if err != nil {
			return err
		}
		r.con = con
		con.SetBackground(cfg.Background)
		r.msg.Console = true
		r.msg.ConsolePath = con.SlavePath()
		r.msg.Term = os.Getenv("TERM")
	}
	return nil
}

// signalCatcher catches the signals netspawn forwards to the container,
// from the start of Run and in the background: Go's signal.Notify is a
// handshake with the runtime's signal goroutine per signal (milliseconds
// on a virtualised host with both CPUs busy), which the preparation
// overlaps this way. Until the container's first process is about to
// start (forward), SIGINT, SIGTERM and SIGHUP end netspawn as they would
// without a handler, so a Ctrl-C during a long preparation (a copy for -x,
// an image) still stops it at once; afterwards they are forwarded, from
// the moment signal.Notify has them, which supervise waits for before it
// announces the container (READY=1). A signal between the two ends
// netspawn as a kill -9 would: the first process dies with it (its
// parent-death signal) and the next start of the machine removes what is
// left.
type signalCatcher struct {
	raw     chan os.Signal // from the runtime
	out     chan os.Signal // to supervise
	caught  chan struct{}  // closed once signal.Notify is done
	forward atomic.Bool
}

var forwardedSignals = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGWINCH}

func catchSignals() *signalCatcher {
	c := &signalCatcher{raw: make(chan os.Signal, 8), out: make(chan os.Signal, 8), caught: make(chan struct{})}
	go func() {
		defer close(c.caught)
		signal.Notify(c.raw, forwardedSignals...)
	}()
	go func() {
		for s := range c.raw {
			if s != syscall.SIGWINCH && !c.forward.Load() {
				// Its default action, as if never caught.
				signal.Reset(s)
				_ = unix.Kill(os.Getpid(), s.(syscall.Signal))
				continue
			}
			select {
			case c.out <- s:
			default: // the container is flooded with it already
			}
		}
	}()
	return c
}

// stop hands the signals back, in the background: ~0.2 ms of round trips
// apiece on a virtualised host, and netspawn exits right after. What
// arrives meanwhile is dropped.
func (c *signalCatcher) stop() {
	go func() {
		<-c.caught
		signal.Stop(c.raw)
	}()
}

// whileStarting is the part of the preparation that can wait until the
// container's first process exists: it runs while that process starts
// (its mounts, or a runtime start on the re-executed path), which needs
// the setup only after that. Only on a container's first boot.
func (r *runner) whileStarting() error {
	if r.startedOnce {
		return nil
	}
	r.startedOnce = true
	// From here on signals are forwarded to the container. (Before,
	// netspawn's death kills the first process through its parent-death
	// signal, as a kill -9 would; cleanup copes with either.)
	// signal.Notify may still be at work (see signalCatcher): supervise
	// waits for it, the first process need not.
	r.sigs.forward.Store(true)
	if err := <-r.seccompReady; err != nil {
		return err
	}
	r.msg.Seccomp = *r.seccompProg
	trace("seccomp compiled")
	if err := r.cgroup.ApplyTo(r.limitsV2, r.limitsV1); err != nil {
		warnf(r.cfg.Quiet, "%v", err)
	}
	trace("limits applied")
	return nil
}

// waitRegistered waits (briefly) for a background registration to finish.
func (r *runner) waitRegistered() {
	if r.registering == nil {
		return
	}
	select {
	case <-r.registering:
	case <-time.After(5 * time.Second):
	}
}

func (r *runner) cleanup() {
	defer trace("cleaned up")
	r.sigs.stop()
	r.waitRegistered()
	if e := r.early; e != nil {
		<-e.done
		if e.attached {
			e.handed = true
			r.mu.Lock()
			r.attached = true
			r.mu.Unlock()
		}
	}
	trace("cleanup: registration over")
	r.mu.Lock()
	attached := r.attached
	r.mu.Unlock()
	if attached {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r.opts.Network.Release(ctx, r.cfg)
		cancel()
		trace("cleanup: released")
	}
	if r.con != nil {
		r.con.Close()
	}
	if r.netns != nil {
		r.netns.Close()
	}
	if r.cgroup != nil {
		r.cgroup.Remove(func(format string, args ...any) { warnf(false, format, args...) })
		trace("cleanup: cgroup removed")
	}
	for _, d := range r.tempDirs {
		os.RemoveAll(d)
	}
}

// runOnce starts the container, waits for it and reports whether it asked
// for a reboot.
func (r *runner) runOnce() (reboot bool, err error) {
	if !r.startedOnce && r.seccompReady == nil {
		r.seccompReady, r.seccompProg = compileSeccompAsync(r.cfg)
	}
	conn, hand, err := sdnotify.NewUnbound()
	if err != nil {
		return false, err
	}
	defer conn.Close()
	defer hand.Close()
	r.notify, r.notifyHand = conn, hand
	if f := r.fastPlan(); f != nil {
		return r.runOnceFast(f)
	}
	cfg := r.cfg
	// The container's first process gets SIGKILL (Pdeathsig) when the OS
	// thread that forked it exits. Keep that thread to this goroutine for
	// the container's life, so no other goroutine can lock it and discard
	// it (as the bridged DHCP client does after entering the container's
	// network namespace).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// Pipes: parent -> child (setup messages) and child -> parent (errors;
	// closed on a successful exec of the payload).
	toChildR, toChildW, err := os.Pipe()
	if err != nil {
		return false, fmt.Errorf("creating pipe: %w", err)
	}
	defer toChildW.Close()
	statusR, statusW, err := os.Pipe()
	if err != nil {
		toChildR.Close()
		return false, fmt.Errorf("creating pipe: %w", err)
	}
	defer statusR.Close()

	exe, err := os.Executable()
	if err != nil {
		return false, fmt.Errorf("finding own executable: %w", err)
	}
	cmd := exec.Command(exe)
	cmd.Args = []string{proc.InitArg0}
	cmd.Env = append([]string{}, traceEnv()...)
	cmd.ExtraFiles = []*os.File{toChildR, statusW}
	flags := uintptr(unix.CLONE_NEWNS)
	for _, ns := range []struct {
		flag   uintptr
		shared bool
	}{{unix.CLONE_NEWPID, cfg.SharePID}, {unix.CLONE_NEWUTS, cfg.ShareUTS}, {unix.CLONE_NEWIPC, cfg.ShareIPC}} {
		if !ns.shared {
			flags |= ns.flag
		}
	}
	if cgroupNamespaceSupported() && !cfg.NoCgroupNS {
		flags |= unix.CLONE_NEWCGROUP
	}
	msg := r.msg
	joinNS := r.netns
	if joinNS == nil && r.early != nil {
		if joinNS, err = r.early.namespace(); err != nil {
			toChildR.Close()
			statusW.Close()
			return false, err
		}
	}
	if joinNS != nil {
		// Join a named namespace, the one kept from before a reboot, or
		// the one attached early.
		cmd.ExtraFiles = append(cmd.ExtraFiles, joinNS)
		msg.JoinNetNS = true
	} else if cfg.Network.Private {
		flags |= unix.CLONE_NEWNET
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: flags, Setsid: true, Pdeathsig: syscall.SIGKILL}
	if fd := r.cgroup.FD(); fd >= 0 {
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = fd
	}
	if r.con == nil {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = r.opts.Stdin, r.opts.Stdout, r.opts.Stderr
	} else {
		slave, err := r.con.OpenSlave()
		if err != nil {
			toChildR.Close()
			statusW.Close()
			return false, err
		}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		if !cfg.AsPid2 {
			cmd.SysProcAttr.Setctty = true
			cmd.SysProcAttr.Ctty = 0
		}
	}

	if err := r.stor.apply(cmd, &msg); err != nil {
		toChildR.Close()
		statusW.Close()
		return false, err
	}
	msg.NotifyFD = 3 + len(cmd.ExtraFiles)
	cmd.ExtraFiles = append(cmd.ExtraFiles, r.notifyHand)
	trace("starting the container process")
	if err := cmd.Start(); err != nil {
		toChildR.Close()
		statusW.Close()
		return false, fmt.Errorf("starting container process: %w", err)
	}
	trace("container process started")
	toChildR.Close()
	statusW.Close()
	r.notifyHand.Close()
	pid := cmd.Process.Pid
	go forwardNotify(r.notify, pid)
	if err := r.whileStarting(); err != nil {
		_ = unix.Kill(pid, unix.SIGKILL)
		_ = cmd.Wait()
		return false, err
	}
	msg.Seccomp = r.msg.Seccomp
	if err := r.cgroup.AddProcess(pid); err != nil {
		_ = unix.Kill(pid, unix.SIGKILL)
		_ = cmd.Wait()
		return false, err
	}

	waitDone := make(chan error, 1)
	ended := make(chan struct{})
	go func() {
		err := cmd.Wait()
		close(ended)
		waitDone <- err
	}()
	kill := func() {
		_ = unix.Kill(pid, unix.SIGKILL)
		<-waitDone
	}

	if cfg.Network.Private && r.netns == nil && cfg.Boot && !cfg.PrivateUsers.Enabled() {
		// Keep the network namespace so a reboot finds it again. (Not with
		// -U: it belongs to this boot's user namespace, which the next one
		// cannot enter.)
		if f, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid)); err == nil {
			r.netns = f
		}
	}

	enc := json.NewEncoder(toChildW)
	if err := enc.Encode(&msg); err != nil {
		kill()
		return false, fmt.Errorf("sending setup to container: %w", err)
	}

	setup, err := r.register(pid, ended)
	if err != nil {
		kill()
		return false, err
	}
	if err := enc.Encode(&setup); err != nil {
		kill()
		// It may have failed already (while the controller answered): say why.
		if status, _ := io.ReadAll(statusR); len(status) > 0 {
			return false, errors.New(strings.TrimSpace(string(status)))
		}
		return false, fmt.Errorf("sending network setup to container: %w", err)
	}
	toChildW.Close()

	trace("setup sent")
	// Wait for the payload to start, or for the reason it could not.
	status, _ := io.ReadAll(bufio.NewReader(statusR))
	trace("payload started")
	if len(status) > 0 {
		kill()
		return false, errors.New(strings.TrimSpace(string(status)))
	}
	r.nameLeader(pid, ended)

	return r.supervise(pid, ended, waitDone, func() *syscall.WaitStatus { return waitStatusOf(cmd.ProcessState) })
}

// register registers the machine (and attaches its networks) with the
// controller, on every boot: a reboot has a new leader. A machine with
// networking waits for it (the reply configures host0); one without
// registers off the start's critical path, and a failure only costs the
// registration.
func (r *runner) register(pid int, ended <-chan struct{}) (NetworkSetup, error) {
	cfg := r.cfg
	var setup NetworkSetup
	var err error
	switch {
	case r.early != nil:
		// Attached before the clone; named to netspawnd once it runs
		// (nameLeader).
		if setup, err = r.early.wait(); err != nil {
			return setup, err
		}
	case r.needNet:
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		setup, err = r.opts.Network.Attach(ctx, cfg, pid)
		cancel()
		if err != nil {
			return setup, err
		}
		r.attached = true
	case cfg.Register && r.opts.Network != nil:
		r.waitRegistered()
		done := make(chan struct{})
		r.registering = done
		go func() {
			defer close(done)
			r.dial.wait()
			select {
			case <-ended:
				// Over before netspawnd heard of it: nothing to tell.
				trace("not registered: the container ended first")
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := r.opts.Network.Attach(ctx, cfg, pid); err != nil {
				select {
				case <-ended: // it was over before netspawnd heard of it
				default:
					warnf(cfg.Quiet, "not registered with netspawnd (netspawnctl will not list this machine): %v", err)
				}
				return
			}
			r.mu.Lock()
			r.attached = true
			r.mu.Unlock()
		}()
	}
	if cfg.Register {
		registerMachinedAsync(cfg, pid)
	}
	return setup, nil
}

// nameLeader tells netspawnd which process leads a machine attached before
// its first process existed (early.go), once that process runs in the
// machine's namespace: until then netspawn itself is the machine's leader
// to netspawnd. In the background; cleanup waits for it. A container
// already gone is not named.
func (r *runner) nameLeader(pid int, ended <-chan struct{}) {
	if r.early == nil {
		return
	}
	r.waitRegistered()
	done := make(chan struct{})
	r.registering = done
	go func() {
		defer close(done)
		select {
		case <-ended:
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.early.hook.SetLeader(ctx, r.cfg, pid); err != nil {
			select {
			case <-ended:
			default:
				warnf(r.cfg.Quiet, "%v (netspawnctl cannot enter the machine)", err)
			}
			return
		}
		trace("leader named")
	}()
}

// supervise forwards signals and the console to the running container
// until its first process ends, and returns how it ended.
func (r *runner) supervise(pid int, ended <-chan struct{}, waitDone <-chan error, state func() *syscall.WaitStatus) (reboot bool, err error) {
	cfg := r.cfg
	<-r.sigs.caught
	trace("signals caught")
	r.announce(pid)
	con := r.con
	if con != nil {
		con.Start(ended)
	}
	killSignal := cfg.KillSignal
	if killSignal == 0 && cfg.Boot {
		killSignal = config.SigRTMin + 3 // systemd: halt
	}
	for {
		select {
		case s := <-r.sigs.out:
			switch s {
			case syscall.SIGWINCH:
				if con != nil {
					con.Resize()
				}
			default:
				sendKillSignal(pid, killSignal, s.(syscall.Signal))
			}
		case <-con.Escaped():
			if !cfg.Quiet {
				fmt.Fprintf(r.opts.Stderr, "\r\nContainer %s terminated by Ctrl-].\r\n", cfg.Machine)
			}
			_ = unix.Kill(pid, unix.SIGKILL)
			con.Disarm()
		case werr := <-waitDone:
			trace("container ended")
			if con != nil {
				con.Pause()
			}
			r.cgroup.KillAll()
			return exitResult(cfg, r.opts.Stderr, state(), werr)
		}
	}
}

// sendKillSignal delivers a termination request to the container's PID 1.
// An explicit --kill-signal is sent as is. Otherwise the signal netspawn got
// is forwarded; since the kernel drops signals that PID 1 of a namespace has
// no handler for, it is escalated to SIGKILL when PID 1 does not catch it
// (which is what systemd-nspawn's default of SIGKILL amounts to).
func sendKillSignal(pid int, explicit, got syscall.Signal) {
	if explicit != 0 {
		_ = unix.Kill(pid, explicit)
		return
	}
	if !proc.CatchesSignal(pid, got) {
		got = syscall.SIGKILL
	}
	_ = unix.Kill(pid, got)
}

// exitResult turns how PID 1 ended into netspawn's result. In boot mode, as
// with systemd-nspawn, PID 1 killed by SIGINT means the OS powered off
// (success) and by SIGHUP that it rebooted.
func exitResult(cfg *config.Config, stderr io.Writer, status *syscall.WaitStatus, werr error) (reboot bool, err error) {
	if status == nil {
		return false, fmt.Errorf("waiting for container: %w", werr)
	}
	ws := *status
	if cfg.Boot && ws.Signaled() {
		switch ws.Signal() {
		case syscall.SIGINT:
			if !cfg.Quiet {
				fmt.Fprintf(stderr, "Container %s has been shut down.\n", cfg.Machine)
			}
			return false, nil
		case syscall.SIGHUP:
			return true, nil
		}
	}
	switch {
	case ws.Exited():
		code := ws.ExitStatus()
		if !cfg.Quiet {
			if code == 0 {
				fmt.Fprintf(stderr, "Container %s exited successfully.\n", cfg.Machine)
			} else {
				fmt.Fprintf(stderr, "Container %s failed with error code %d.\n", cfg.Machine, code)
			}
		}
		if code != 0 {
			return false, &ExitError{Code: code}
		}
		return false, nil
	case ws.Signaled():
		if !cfg.Quiet {
			fmt.Fprintf(stderr, "Container %s terminated by signal %s.\n", cfg.Machine, config.SignalName(ws.Signal()))
		}
		return false, &ExitError{Code: 128 + int(ws.Signal())}
	}
	return false, fmt.Errorf("container ended in an unexpected state: %v", werr)
}

// waitStatusOf is the wait status in state, nil if there is none.
func waitStatusOf(state *os.ProcessState) *syscall.WaitStatus {
	if state == nil {
		return nil
	}
	ws, ok := state.Sys().(syscall.WaitStatus)
	if !ok {
		return nil
	}
	return &ws
}

// consoleMode resolves the default console mode: interactive when both
// stdin and stdout are terminals, pipe otherwise.
func consoleMode(cfg *config.Config, stdin, stdout *os.File) config.ConsoleMode {
	tty := console.IsTerminal(stdin) && console.IsTerminal(stdout)
	switch cfg.Console {
	case "", config.ConsoleAutoPipe:
		if tty {
			return config.ConsoleInteractive
		}
		return config.ConsolePipe
	case config.ConsoleInteractive:
		if !console.IsTerminal(stdin) {
			// Nothing to read keys from: behave like read-only.
			return config.ConsoleReadOnly
		}
	}
	return cfg.Console
}

func cgroupNamespaceSupported() bool {
	_, err := os.Stat("/proc/self/ns/cgroup")
	return err == nil
}

// prepareDirectory resolves and checks the container's root directory in
// the parent, so the common mistakes get a clear message before anything is
// created.
func prepareDirectory(cfg *config.Config) error {
	if cfg.Directory == "" {
		return errors.New("no container directory given (use -D DIRECTORY)")
	}
	dir, err := filepath.Abs(cfg.Directory)
	if err != nil {
		return fmt.Errorf("resolving directory %s: %w", cfg.Directory, err)
	}
	dir, err = filepath.EvalSymlinks(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("directory %s does not exist", cfg.Directory)
		}
		return fmt.Errorf("resolving directory %s: %w", cfg.Directory, err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("directory %s: %w", cfg.Directory, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", cfg.Directory)
	}
	if dir == "/" && !config.HostRootAllowed(cfg) {
		return errors.New("spawning a container with the host's root directory as its root is refused (use a separate tree, or -x or --volatile=yes|state)")
	}
	// With --pivot-root the OS tree is the new root (as nspawn checks).
	if _, err := os.Lstat(filepath.Join(dir, filepath.Clean("/"+cfg.PivotRoot), "usr")); err != nil {
		if cfg.PivotRoot != "" {
			return fmt.Errorf("directory %s doesn't look like it has an OS tree in %s (%s/usr is missing); refusing", cfg.Directory, cfg.PivotRoot, cfg.PivotRoot)
		}
		return fmt.Errorf("directory %s doesn't look like an OS tree (/usr is missing); refusing", cfg.Directory)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(dir, &sfs); err == nil && sfs.Flags&unix.ST_NOEXEC != 0 {
		return fmt.Errorf("directory %s is on a file system mounted noexec: programs in it cannot run "+
			"(execv would fail with \"Permission denied\"); remount it with exec (mount -o remount,exec) or move the tree", cfg.Directory)
	}
	cfg.Directory = dir
	return nil
}
