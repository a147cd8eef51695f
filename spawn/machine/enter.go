package machine

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/netspawn/netspawn/spawn/config"
	"github.com/netspawn/netspawn/spawn/internal/console"
	"github.com/netspawn/netspawn/spawn/internal/proc"

	"github.com/netspawn/netspawn/spawn/cgroup"

	"github.com/netspawn/netspawn/spawn/forkexec"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// EnterOptions describe a process started inside a running container, as
// `netspawnctl shell` and `login` do.
type EnterOptions struct {
	Leader  int      // host PID of the container's PID 1
	User    string   // user name or UID in the container ("" = root)
	Command []string // empty: the user's login shell
	Env     []string // extra NAME=VALUE
	Stdin   *os.File
	Stdout  *os.File
	Stderr  *os.File
	Quiet   bool
}

// Enter runs a command in the namespaces of a running container and returns
// its exit status. On a terminal the command gets a pty of the container's
// own devpts, and Ctrl-] three times within a second disconnects.
//
// setns into a mount namespace needs a thread whose file system state is not
// shared with other threads: the work happens on a locked OS thread that
// first unshares CLONE_FS and is never returned to the Go runtime.
func Enter(o EnterOptions) (int, error) {
	if o.Stdin == nil {
		o.Stdin, o.Stdout, o.Stderr = os.Stdin, os.Stdout, os.Stderr
	}
	type result struct {
		code int
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: this thread dies with the goroutine
		code, err := enterLocked(o)
		ch <- result{code, err}
	}()
	r := <-ch
	return r.code, r.err
}

// nsOrder is the order in which namespaces are joined: the mount namespace
// last, since afterwards /proc is the container's. The cgroup namespace is
// joined by the forked child once it is in the machine's cgroup (see
// forkexec.Attr.CgroupNS), the user namespace by the child first.
var nsOrder = []struct {
	name string
	flag int
}{
	{"ipc", unix.CLONE_NEWIPC}, {"uts", unix.CLONE_NEWUTS},
	{"net", unix.CLONE_NEWNET}, {"pid", unix.CLONE_NEWPID}, {"mnt", unix.CLONE_NEWNS},
}

func enterLocked(o EnterOptions) (int, error) {
	leader := strconv.Itoa(o.Leader)
	// Everything from the host's view first.
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for _, ns := range nsOrder {
		fd, err := unix.Open("/proc/"+leader+"/ns/"+ns.name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, fmt.Errorf("opening %s namespace of PID %d: %w", ns.name, o.Leader, err)
		}
		fds = append(fds, fd)
	}
	bnd, _ := readCapBnd(o.Leader)
	service := leaderEnv(o.Leader, "container", "netspawn")
	cgroupDir := leaderCgroupDir(o.Leader)
	// A machine with a user namespace of its own (-U, --private-users=):
	// the process joins it, so that inside it is the machine's root (or
	// user), with the capabilities that root has there, and its files are
	// owned by the shifted IDs on the host.
	userNS, uids, err := leaderUserNS(o.Leader)
	if err != nil {
		return 0, err
	}
	if userNS >= 0 {
		defer unix.Close(userNS)
	}

	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return 0, fmt.Errorf("unshare(CLONE_FS): %w", err)
	}
	cgns, err := unix.Open("/proc/"+leader+"/ns/cgroup", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("opening cgroup namespace of PID %d: %w", o.Leader, err)
	}
	defer unix.Close(cgns)
	for i, ns := range nsOrder {
		if err := unix.Setns(fds[i], ns.flag); err != nil {
			return 0, fmt.Errorf("joining the container's %s namespace: %w", ns.name, err)
		}
	}
	// Now in the container: its /etc/passwd, its devpts.
	u, err := proc.LookupUser(o.User)
	if err != nil {
		return 0, err
	}
	argv := o.Command
	if len(argv) == 0 {
		shell := u.Shell
		if shell == "" || !proc.IsExecutable(shell) {
			shell = "/bin/sh"
		}
		argv = []string{shell, "-l"}
	}
	env := []string{"PATH=" + proc.DefaultPath, "container=" + service, "HOME=" + u.Home, "USER=" + u.Name,
		"LOGNAME=" + u.Name, "SHELL=" + u.Shell}
	tty := console.IsTerminal(o.Stdin) && console.IsTerminal(o.Stdout)
	if tty {
		term := os.Getenv("TERM")
		if term == "" {
			term = "vt220"
		}
		env = append(env, "TERM="+term)
	}
	for _, kv := range o.Env {
		name, _, _ := strings.Cut(kv, "=")
		env = proc.SetEnv(env, name, kv)
	}
	path, err := proc.FindExecutable(argv[0], proc.DefaultPath)
	if err != nil {
		return 0, err
	}
	dir := u.Home
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		dir = "/"
	}
	// The shell gets no more privilege than the container's own processes.
	if bnd != 0 {
		for c := 0; c <= proc.LastCap(); c++ {
			if c < 64 && bnd&(1<<uint(c)) == 0 {
				_ = unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
			}
		}
	}

	attr := &forkexec.Attr{Path: path, Argv: argv, Env: env, Dir: dir, Setsid: true, CgroupNS: &cgns}
	if u.UID != 0 || u.GID != 0 || userNS >= 0 {
		// In a user namespace even root changes credentials: the host's
		// root is nobody there.
		attr.Cred = &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID), Groups: u.Groups32()}
	}
	if userNS >= 0 {
		attr.UserNS = &userNS
	}
	if cgroupDir != nil {
		defer cgroupDir.Close()
		fd := int(cgroupDir.Fd())
		attr.CgroupFD = &fd
	}
	var con *console.Console
	if tty {
		// A pty of the container's devpts, so the shell's tty exists inside.
		master, slave, err := pty.Open()
		if err != nil {
			return 0, fmt.Errorf("allocating a terminal in the container: %w", err)
		}
		if userNS >= 0 {
			// devpts made it the host root's, which is nobody inside: give
			// it to the user, as login does.
			if hostUID, ok := uids.toHost(uint32(u.UID)); ok {
				_ = slave.Chown(int(hostUID), -1)
			}
		}
		con = console.FromPTY(config.ConsoleInteractive, master, slave, o.Stdin, o.Stdout)
		defer con.Close()
		fd := int(slave.Fd())
		attr.Files = []int{fd, fd, fd}
		attr.Setctty = true
	} else {
		attr.Files = []int{int(o.Stdin.Fd()), int(o.Stdout.Fd()), int(o.Stderr.Fd())}
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGWINCH, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	pid, err := forkexec.Start(attr)
	if err != nil {
		if errors.Is(err, unix.EPERM) && userNS >= 0 {
			return 0, fmt.Errorf("starting %s in the machine's user namespace: %w", path, err)
		}
		return 0, fmt.Errorf("starting %s in the container: %w", path, err)
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return 0, err
	}
	if con != nil && !o.Quiet {
		fmt.Fprintf(o.Stderr, "Connected to the container. Press Ctrl-] three times within 1s to exit session.\r\n")
	}
	waited := make(chan *os.ProcessState, 1)
	ended := make(chan struct{})
	go func() {
		st, _ := p.Wait()
		close(ended)
		waited <- st
	}()
	if con != nil {
		con.Start(ended)
	}
	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGWINCH {
				if con != nil {
					con.Resize()
				}
				continue
			}
			_ = p.Signal(s)
		case <-con.Escaped():
			_ = p.Signal(syscall.SIGHUP)
			con.Disarm()
			go func() { time.Sleep(time.Second); _ = p.Kill() }()
		case st := <-waited:
			if con != nil {
				con.Pause()
			}
			if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				return 128 + int(ws.Signal()), nil
			}
			return st.ExitCode(), nil
		}
	}
}

// leaderUserNS opens the user namespace of a machine's leader when it is
// not ours, with the machine's UID map; it returns -1 when the machine
// shares our user namespace.
func leaderUserNS(leader int) (int, idMap, error) {
	var self, theirs unix.Stat_t
	if err := unix.Stat("/proc/self/ns/user", &self); err != nil {
		return -1, nil, fmt.Errorf("reading our user namespace: %w", err)
	}
	p := "/proc/" + strconv.Itoa(leader) + "/ns/user"
	if err := unix.Stat(p, &theirs); err != nil {
		return -1, nil, fmt.Errorf("reading the user namespace of PID %d: %w", leader, err)
	}
	if self.Ino == theirs.Ino && self.Dev == theirs.Dev {
		return -1, nil, nil
	}
	uids, err := readIDMap(leader, "uid")
	if err != nil {
		return -1, nil, fmt.Errorf("reading the UID map of PID %d: %w", leader, err)
	}
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, nil, fmt.Errorf("opening the user namespace of PID %d: %w", leader, err)
	}
	return fd, uids, nil
}

// leaderEnv returns a variable of the leader's environment as it started
// (the container manager's name in $container), or def.
func leaderEnv(pid int, name, def string) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return def
	}
	for _, kv := range strings.Split(string(b), "\x00") {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return def
}

// readCapBnd returns the bounding set of a process.
func readCapBnd(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, errors.New("no CapBnd")
}

// leaderCgroupDir opens the leader's cgroup v2 directory (to start entered
// processes beside it), or returns nil.
func leaderCgroupDir(pid int) *os.File {
	procs, err := cgroup.ProcCgroups(pid)
	root := cgroup.V2Root()
	if err != nil || root == "" {
		return nil
	}
	rel, ok := procs[""]
	if !ok {
		return nil
	}
	f, err := os.Open(filepath.Join(root, rel))
	if err != nil {
		return nil
	}
	return f
}

// PoliteSignal picks how to ask a container's PID 1 to stop: want when it
// handles it (systemd and SIGRTMIN+4), else SIGTERM when it handles that,
// else SIGKILL (the kernel drops unhandled signals to a namespace's init).
func PoliteSignal(pid int, want syscall.Signal) syscall.Signal {
	switch {
	case proc.CatchesSignal(pid, want):
		return want
	case proc.CatchesSignal(pid, syscall.SIGTERM):
		return syscall.SIGTERM
	}
	return syscall.SIGKILL
}

// MachinePIDs lists every process of a machine: those in its container's
// cgroup tree, or, without one, the leader alone.
func MachinePIDs(leader int) []int { return cgroup.PIDs(leader) }
