package spawn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"unsafe"

	"github.com/netspawn/netspawn/spawn/config"
	"github.com/netspawn/netspawn/spawn/forkexec"
	"github.com/netspawn/netspawn/spawn/internal/plan"
	"github.com/netspawn/netspawn/spawn/internal/proc"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The fast path: in the common case (a command in a plain directory tree,
// no terminal, no user namespace, no binds), the container's first process
// is a raw clone of netspawn that runs a list of system calls prepared here
// and then execs the payload: no second Go runtime starts (on a virtualised
// host that start is milliseconds of page faults and thread clones). The
// file system view comes from apiMountSteps, the same list the re-executed
// init runs; what the init does in Go between its mounts and its exec is
// done here, in the parent, before or while the child waits at its gate:
// the user's account is read from the tree, the network inside the
// container is configured through a netlink socket in its namespace, and
// /etc/resolv.conf and /etc/localtime are written into the tree. Whatever
// the fast path does not cover takes the re-executed init.

// maxSeccompInsns is the kernel's BPF_MAXINSNS.
const maxSeccompInsns = 4096

// fastStart is what the fast path prepared before the clone.
type fastStart struct {
	steps []plan.Step
	// vfork: nothing is left to do between the clone and the exec (no
	// network to configure inside, no v1 cgroup to join), so the child
	// shares netspawn's memory and netspawn waits for its exec, as Go's
	// own fork and exec do: no copy of page tables, no copy-on-write
	// faults afterwards. Otherwise the child waits at its Gate step.
	vfork bool
	gate  int // index of the Gate step, -1 without one
	setns int // index of the Setns step (early.go), -1 without one
	find  int // index of the FindExec step
	exec  int // index of the Exec step
}

// mountSetattrSupported reports whether the kernel has mount_setattr(2)
// (Linux 5.12), which the raw child's read-only steps use.
func mountSetattrSupported() bool {
	err := unix.MountSetattr(-1, "", 0, &unix.MountAttr{})
	return !errors.Is(err, unix.ENOSYS)
}

// fastPlan returns the fast path's plan for this start, or nil when the
// container needs the re-executed init.
func (r *runner) fastPlan() *fastStart {
	cfg := r.cfg
	switch {
	case os.Getenv("NETSPAWN_REEXEC_INIT") == "1", // the re-executed init, always (for comparison)
		r.con != nil, cfg.Boot, cfg.AsPid2, cfg.ReadOnly, len(cfg.Command) == 0,
		r.netns != nil, cfg.Network.NamespacePath != "",
		r.stor != nil && r.stor.runDir != nil,
		len(cfg.Binds) > 0, len(cfg.Tmpfs) > 0, len(cfg.Inaccessible) > 0, len(cfg.MaskedPaths) > 0, len(cfg.Overlays) > 0,
		// Set by the init on itself (execprops.go); the limits are set
		// from here.
		cfg.OOMScoreAdjust != nil, len(cfg.CPUAffinity) > 0, cfg.Personality != "", cfg.AmbientCaps != 0,
		// Mounts the raw child does not make (pivot_cred.go).
		len(cfg.Credentials) > 0, cfg.PivotRoot != "",
		// The payload's SELinux label is written by the init (selinux.go).
		cfg.SELinuxContext != "",
		r.notifyHand == nil:
		return nil
	}
	root := cfg.Directory
	// /etc/resolv.conf and /etc/localtime are written from here, into the
	// tree: only where that needs no mount in the container.
	hfi, herr := os.Lstat("/etc/localtime")
	for _, dns := range []bool{false, true} {
		if a, _ := resolvConfPlan(cfg.ResolvConf, cfg.Network.Private, false, dns); a == "bind" {
			return nil
		}
	}
	if timezonePlan(cfg.Timezone, herr == nil && hfi.Mode()&os.ModeSymlink != 0, false) == "bind" {
		return nil
	}
	for _, d := range []string{root, filepath.Join(root, "etc")} {
		var st unix.Statfs_t
		if err := unix.Statfs(d, &st); err != nil || st.Flags&unix.ST_RDONLY != 0 {
			return nil
		}
	}
	if !mountSetattrSupported() {
		return nil
	}
	usr, err := payloadUser(cfg, func(p string) (io.ReadCloser, error) { return openInTree(root, p) })
	if err != nil {
		return nil // the re-executed init says why
	}
	msg := r.msg
	env := payloadEnv(cfg, &msg, usr)

	f := &fastStart{gate: -1, setns: -1}
	// Nothing to wait for between the clone and the exec: no network, or
	// one attached before the clone (early.go).
	f.vfork = (!cfg.Network.Private && !r.needNet || r.early != nil) && (r.cgroup == nil || len(r.cgroup.V1) == 0) &&
		os.Getenv("NETSPAWN_FORK_INIT") != "1"
	add := func(st ...plan.Step) { f.steps = append(f.steps, st...) }
	if r.early != nil {
		// Its descriptor is set once the namespace exists (runOnceFast).
		f.setns = len(f.steps)
		add(plan.Step{Kind: plan.Setns, Flags: unix.CLONE_NEWNET})
	}
	add(plan.Step{Kind: plan.Umask, Mode: 0},
		// Nothing mounted may propagate back to the host; pivot_root needs
		// the new root to be a mount point (setupMounts, attachRoot).
		plan.Step{Kind: plan.Mount, Path: "/", Flags: unix.MS_SLAVE | unix.MS_REC},
		plan.Step{Kind: plan.Mount, Src: root, Path: root, Flags: unix.MS_BIND | unix.MS_REC})
	add(apiMountSteps(root, &msg)...)
	add(notifyStep(root, int(r.notifyHand.Fd())))
	if !f.vfork {
		f.gate = len(f.steps)
		add(plan.Step{Kind: plan.Gate})
	}
	if !cfg.ShareUTS {
		hostname := cfg.Hostname
		if hostname == "" {
			hostname = cfg.Machine
		}
		add(plan.Step{Kind: plan.Sethostname, Data: hostname})
	}
	add(plan.Step{Kind: plan.PivotRoot, Path: root})
	name := cfg.Command[0]
	find := plan.Step{Kind: plan.FindExec, Data: name, Src: proc.EnvValue(env, "PATH")}
	if strings.Contains(name, "/") {
		find.Paths = []string{name}
	} else {
		for _, dir := range filepath.SplitList(find.Src) {
			if dir != "" {
				find.Paths = append(find.Paths, filepath.Join(dir, name))
			}
		}
		if len(find.Paths) == 0 {
			return nil
		}
	}
	f.find = len(f.steps)
	add(find)
	if cfg.Chdir != "" {
		add(plan.Step{Kind: plan.Chdir, Path: cfg.Chdir})
	} else {
		add(plan.Step{Kind: plan.Chdir, Path: usr.Home, Fallback: true})
	}
	keep := cfg.Capabilities()
	for c := 0; c <= proc.LastCap(); c++ {
		if c < 64 && keep&(1<<uint(c)) != 0 {
			continue
		}
		add(plan.Step{Kind: plan.CapDrop, Arg: uintptr(c)})
	}
	if cfg.NoNewPrivileges {
		add(plan.Step{Kind: plan.NoNewPrivs})
	}
	// The payload's limits, last before the user switch (as nspawn): a
	// low NOFILE must not hamper the steps before.
	for res, l := range closestRlimits(r.msg.Rlimits) {
		add(plan.Step{Kind: plan.Setrlimit, Arg: uintptr(res), Rlim: [2]uint64{l.Cur, l.Max},
			Context: "RLIMIT_" + config.RlimitNames[res]})
	}
	add(plan.Step{Kind: plan.Umask, Mode: 0o022},
		plan.Step{Kind: plan.Seccomp},
		plan.Step{Kind: plan.Creds, UID: uint32(usr.UID), GID: uint32(usr.GID), Groups: usr.Groups32()})
	f.exec = len(f.steps)
	add(plan.Step{Kind: plan.Exec, Argv: cfg.Command, Env: env})
	return f
}

// openInTree opens a file of the container's tree as the container will
// see it (symbolic links resolved inside the tree); a link anywhere on the
// way is refused (ELOOP), so the re-executed init looks instead.
func openInTree(root, p string) (io.ReadCloser, error) {
	dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dir)
	fd, err := unix.Openat2(dir, strings.TrimPrefix(p, "/"), &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_XDEV,
	})
	if errors.Is(err, unix.ENOENT) {
		return nil, &os.PathError{Op: "open", Path: p, Err: os.ErrNotExist}
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return os.NewFile(uintptr(fd), p), nil
}

// runOnceFast is runOnce for a container the fast path covers.
func (r *runner) runOnceFast(f *fastStart) (reboot bool, err error) {
	cfg := r.cfg
	// As in runOnce: the thread that clones is the parent the child's
	// Pdeathsig watches.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var status [2]int
	gate := [2]int{-1, -1}
	closeGate := func() {
		if gate[1] >= 0 {
			unix.Close(gate[1])
			gate[1] = -1
		}
	}
	defer closeGate()
	if f.gate >= 0 {
		if err := unix.Pipe2(gate[:], unix.O_CLOEXEC); err != nil {
			return false, fmt.Errorf("creating pipe: %w", err)
		}
	}
	if err := unix.Pipe2(status[:], unix.O_CLOEXEC); err != nil {
		if gate[0] >= 0 {
			unix.Close(gate[0])
		}
		return false, fmt.Errorf("creating pipe: %w", err)
	}
	statusR := os.NewFile(uintptr(status[0]), "status")
	defer statusR.Close()
	shared, err := unix.Mmap(-1, 0, 8+8*maxSeccompInsns, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	if err != nil {
		if gate[0] >= 0 {
			unix.Close(gate[0])
		}
		unix.Close(status[1])
		return false, fmt.Errorf("mapping the seccomp page: %w", err)
	}
	defer unix.Munmap(shared)
	closeChildEnds := func() {
		if gate[0] >= 0 {
			unix.Close(gate[0])
			gate[0] = -1
		}
		unix.Close(status[1])
	}
	if f.gate >= 0 {
		f.steps[f.gate].Arg = uintptr(gate[0])
	}
	if f.setns >= 0 {
		ns, err := r.early.namespace()
		if err != nil {
			closeChildEnds()
			return false, err
		}
		f.steps[f.setns].Arg = ns.Fd()
	}
	if f.vfork {
		// What the gate waits for otherwise, done before the clone: the
		// child runs straight to its exec while netspawn waits.
		if err := r.whileStarting(); err != nil {
			closeChildEnds()
			return false, err
		}
		if err := putSeccomp(shared, r.msg.Seccomp); err != nil {
			closeChildEnds()
			return false, err
		}
		var setup NetworkSetup
		if r.early != nil {
			if setup, err = r.early.wait(); err != nil {
				closeChildEnds()
				return false, err
			}
		}
		if err := r.finishFromParent(0, &setup); err != nil {
			closeChildEnds()
			return false, err
		}
		trace("files configured")
	}

	flags := uint64(unix.CLONE_NEWNS)
	for _, ns := range []struct {
		flag   uint64
		shared bool
	}{{unix.CLONE_NEWPID, cfg.SharePID}, {unix.CLONE_NEWUTS, cfg.ShareUTS}, {unix.CLONE_NEWIPC, cfg.ShareIPC}} {
		if !ns.shared {
			flags |= ns.flag
		}
	}
	if cgroupNamespaceSupported() && !cfg.NoCgroupNS {
		flags |= unix.CLONE_NEWCGROUP
	}
	if cfg.Network.Private && r.early == nil {
		flags |= unix.CLONE_NEWNET
	}
	attr := &forkexec.InitAttr{
		Steps:      f.steps,
		Files:      []int{int(r.opts.Stdin.Fd()), int(r.opts.Stdout.Fd()), int(r.opts.Stderr.Fd())},
		CloneFlags: flags,
		Pdeathsig:  syscall.SIGKILL,
		Status:     status[1],
		Close:      []int{status[0]},
		Shared:     shared,
		Vfork:      f.vfork,
	}
	if gate[1] >= 0 {
		attr.Close = append(attr.Close, gate[1])
	}
	if fd := r.cgroup.FD(); fd >= 0 {
		attr.CgroupFD = &fd
	}
	trace("starting the container process (fast path)")
	pid, err := forkexec.StartInit(attr)
	closeChildEnds()
	r.notifyHand.Close()
	if err != nil {
		return false, fmt.Errorf("starting container process: %w", err)
	}
	trace("container process started")
	go forwardNotify(r.notify, pid)
	// The first process is waited for with wait4, not through os.Process:
	// Go's first use of a process handle checks once that pidfds work,
	// with a throwaway vfork'd child (milliseconds on a virtualised host).
	var ws syscall.WaitStatus
	var waited bool
	waitDone := make(chan error, 1)
	ended := make(chan struct{})
	go func() {
		var err error
		for {
			if _, err = syscall.Wait4(pid, &ws, 0, nil); err != syscall.EINTR {
				break
			}
		}
		waited = err == nil
		close(ended)
		waitDone <- err
	}()
	kill := func() {
		_ = unix.Kill(pid, unix.SIGKILL)
		<-waitDone
	}
	if !f.vfork {
		if err := r.whileStarting(); err != nil {
			kill()
			return false, err
		}
		if err := putSeccomp(shared, r.msg.Seccomp); err != nil {
			kill()
			return false, err
		}
		if err := r.cgroup.AddProcess(pid); err != nil {
			kill()
			return false, err
		}
	}
	var werr error
	if !f.vfork {
		setup, err := r.register(pid, ended)
		if err != nil {
			kill()
			return false, err
		}
		trace("registered")
		if err := r.finishFromParent(pid, &setup); err != nil {
			kill()
			return false, err
		}
		trace("network and files configured")
		// The gate: the child goes on to pivot_root and exec.
		_, werr = unix.Write(gate[1], []byte{1})
		closeGate()
	}
	var rep [unsafe.Sizeof(plan.Report{})]byte
	n, _ := io.ReadFull(statusR, rep[:])
	trace("payload started")
	if n > 0 || werr != nil {
		kill()
		if n != len(rep) {
			if werr != nil {
				return false, fmt.Errorf("starting the container: %w", werr)
			}
			return false, errors.New("the container's first process failed without a report")
		}
		var report plan.Report
		_ = binary.Read(bytes.NewReader(rep[:]), binary.NativeEndian, &report)
		return false, fastError(f, report)
	}
	if f.vfork {
		if _, err := r.register(pid, ended); err != nil {
			kill()
			return false, err
		}
	}
	r.nameLeader(pid, ended)
	return r.supervise(pid, ended, waitDone, func() *syscall.WaitStatus {
		if !waited {
			return nil
		}
		return &ws
	})
}

// finishFromParent does, from netspawn, what the re-executed init does
// between its mounts and its pivot_root: the network inside the container
// (through a netlink socket in its namespace), /etc/resolv.conf and
// /etc/localtime (written into the tree, which is the container's root).
func (r *runner) finishFromParent(pid int, setup *NetworkSetup) error {
	cfg := r.cfg
	if cfg.Network.Private && r.early == nil { // early.go configures it otherwise
		ns, err := netns.GetFromPid(pid)
		if err != nil {
			return fmt.Errorf("opening the container's network namespace: %w", err)
		}
		h, err := netlink.NewHandleAt(ns)
		ns.Close()
		if err != nil {
			return fmt.Errorf("opening netlink in the container's network namespace: %w", err)
		}
		err = configureNetwork(h, setup)
		h.Close()
		if err != nil {
			return err
		}
	}
	// The init writes these with a umask of 0.
	old := unix.Umask(0)
	defer unix.Umask(old)
	if err := setupResolvConf(cfg.Directory, cfg, setup, cfg.Quiet); err != nil {
		return err
	}
	return setupTimezone(cfg.Directory, cfg, cfg.Quiet)
}

// putSeccomp leaves the compiled filter where the child's Seccomp step
// reads it.
func putSeccomp(shared []byte, prog []unix.SockFilter) error {
	if len(prog) > maxSeccompInsns {
		return fmt.Errorf("installing seccomp filter: program of %d instructions (want 1..%d)", len(prog), maxSeccompInsns)
	}
	for i, in := range prog {
		b := shared[8+8*i:]
		binary.NativeEndian.PutUint16(b[0:], in.Code)
		b[2], b[3] = in.Jt, in.Jf
		binary.NativeEndian.PutUint32(b[4:], in.K)
	}
	binary.NativeEndian.PutUint64(shared[0:], uint64(len(prog)))
	return nil
}

// fastError tells the child's report as the re-executed init would.
func fastError(f *fastStart, rep plan.Report) error {
	errno := syscall.Errno(rep.Errno)
	switch {
	case rep.Step == ^uint32(0):
		return fmt.Errorf("setting up the container's first process: %w", errno)
	case int(rep.Step) >= len(f.steps):
		return fmt.Errorf("the container's first process reported step %d: %w", rep.Step, errno)
	case int(rep.Step) == f.exec:
		paths := f.steps[f.find].Paths
		path := f.steps[f.find].Data
		if int(rep.Aux) < len(paths) {
			path = paths[rep.Aux]
		}
		return execError(path, errno)
	}
	st := f.steps[rep.Step]
	return st.Err(errno, rep.Aux)
}
