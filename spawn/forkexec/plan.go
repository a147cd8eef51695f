package forkexec

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"unsafe"

	"github.com/netspawn/netspawn/spawn/internal/plan"

	"golang.org/x/sys/unix"
)

// InitAttr describes a container's first process started without a Go
// runtime of its own: a clone of the caller that runs Steps with raw
// system calls (ending with an Exec step) and nothing else.
type InitAttr struct {
	Steps []plan.Step
	// Files become the child's descriptors 0, 1 and 2.
	Files []int
	// CloneFlags are clone3's namespace flags.
	CloneFlags uint64
	// CgroupFD, when not nil, is the cgroup v2 directory the child starts in.
	CgroupFD *int
	// Pdeathsig is the signal the child gets when the calling thread ends.
	Pdeathsig syscall.Signal
	// Status is the descriptor a failed step is reported on (a
	// plan.Report); it must be close-on-exec.
	Status int
	// Close lists descriptors the child closes first (the caller's ends of
	// its pipes).
	Close []int
	// Shared is a MAP_SHARED region whose first 8 bytes are the number of
	// seccomp instructions that follow (read at the Seccomp step).
	Shared []byte
	// Vfork clones with CLONE_VM|CLONE_VFORK: the child runs in the
	// caller's memory and StartInit returns once it has exec'd or failed.
	// Its steps must not wait for the caller (no Gate step).
	Vfork bool
}

// rawStep is a plan.Step with everything the child needs prepared.
type rawStep struct {
	kind                             plan.Kind
	ifExists, ignoreErr, afterOK     bool
	recursive, writable, fallback    bool
	single                           bool
	path, src, fstype, data          *byte
	dataLen                          uintptr
	flags                            uintptr
	attr                             unix.MountAttr
	mode                             uint32
	dev                              uint64
	arg                              uintptr
	paths                            []*byte
	argv, env                        []*byte
	uid, gid                         uintptr
	groups                           []uint32
	setIDs                           bool
	chown                            bool
	sysBind, slash, dot, sysfsFSType *byte
	rlim                             unix.Rlimit
	sa                               unix.RawSockaddrUnix // BindSocket: the name
	saLen                            uintptr
}

// initChild is the child's whole state, prepared before the clone: the
// child allocates nothing.
type initChild struct {
	args      cloneArgs
	steps     []rawStep
	files     []int
	nextFD    int
	close     []int
	status    int
	pdeathsig uintptr
	shared    unsafe.Pointer
	fprog     unix.SockFprog
	stx       unix.Statx_t
	act       [4]uint64
	dfl       [4]uint64
	buf       [1]byte
	report    plan.Report
	find      int // index of the FindExec step
	chosenIdx uint32
	found     bool
	prevBad   bool
	vfork     bool
	// clearSighand: cloned with CLONE_CLEAR_SIGHAND.
	clearSighand bool
}

// StartInit clones the caller into the container's first process and
// returns its PID (the caller must wait for it). The child runs the steps
// in order; a failed step (not IgnoreErr) is reported on Status and ends
// it, a successful Exec closes Status.
func StartInit(a *InitAttr) (int, error) {
	c := &initChild{status: a.Status, close: a.Close, pdeathsig: uintptr(a.Pdeathsig)}
	if len(a.Steps) == 0 || a.Steps[len(a.Steps)-1].Kind != plan.Exec {
		return 0, errors.New("forkexec: the plan must end with its Exec step")
	}
	if len(a.Shared) >= 8 {
		c.shared = unsafe.Pointer(&a.Shared[0])
	}
	if c.shared != nil {
		c.fprog.Filter = (*unix.SockFilter)(unsafe.Add(c.shared, 8))
	}
	c.find = -1
	c.steps = make([]rawStep, len(a.Steps))
	for i := range a.Steps {
		if a.Steps[i].Kind == plan.FindExec {
			c.find = i
		}
		if k := a.Steps[i].Kind; k == plan.Gate || k == plan.BindSocket {
			// Descriptors the steps use: childFiles must not dup onto them.
			c.nextFD = max(c.nextFD, int(a.Steps[i].Arg)+1)
		}
		if err := compileStep(&a.Steps[i], &c.steps[i]); err != nil {
			return 0, fmt.Errorf("forkexec: step %d: %w", i, err)
		}
	}
	if c.find < 0 {
		return 0, errors.New("forkexec: the plan has no FindExec step")
	}
	c.files = append([]int(nil), a.Files...)
	if c.files == nil {
		c.files = []int{0, 1, 2}
	}
	c.nextFD = max(c.nextFD, len(c.files), c.status+1)
	for _, fd := range c.files {
		c.nextFD = max(c.nextFD, fd+1)
	}
	if c.status < len(c.files) {
		return 0, errors.New("forkexec: the status descriptor must not be one of the child's files")
	}
	c.args.flags = a.CloneFlags
	if a.Vfork && vforkSupported {
		c.vfork = true
		for i := range a.Steps {
			if a.Steps[i].Kind == plan.Gate {
				return 0, errors.New("forkexec: a Gate step cannot be used with Vfork (the caller waits for the exec)")
			}
		}
		c.args.flags |= unix.CLONE_VM | unix.CLONE_VFORK
	}
	c.args.exitSignal = uint64(syscall.SIGCHLD)
	if a.CgroupFD != nil {
		c.args.flags |= unix.CLONE_INTO_CGROUP
		c.args.cgroup = uint64(*a.CgroupFD)
	}
	// The kernel resets the handled signals to their defaults in the child
	// (ignored ones stay ignored, as across execve): ~120 system calls
	// fewer between the clone and the exec. Kernels before 5.5 refuse the
	// flag; the child does it itself there.
	c.args.flags |= unix.CLONE_CLEAR_SIGHAND
	c.clearSighand = true
	runtime.LockOSThread()
	pid, errno := cloneInit(c)
	if errno == unix.EINVAL {
		c.args.flags &^= unix.CLONE_CLEAR_SIGHAND
		c.clearSighand = false
		pid, errno = cloneInit(c)
	}
	runtime.UnlockOSThread()
	runtime.KeepAlive(c)
	runtime.KeepAlive(a)
	if errno != 0 {
		return 0, fmt.Errorf("clone3: %w", errno)
	}
	return pid, nil
}

func bytePtr(s string) (*byte, error) { return syscall.BytePtrFromString(s) }

func compileStep(s *plan.Step, r *rawStep) (err error) {
	*r = rawStep{kind: s.Kind, ifExists: s.IfExists, ignoreErr: s.IgnoreErr, afterOK: s.AfterOK,
		recursive: s.Recursive, writable: s.Writable, fallback: s.Fallback,
		flags: s.Flags, mode: s.Mode, dev: s.Dev, arg: s.Arg}
	if r.path, err = bytePtr(s.Path); err != nil {
		return err
	}
	if r.src, err = bytePtr(s.Src); err != nil {
		return err
	}
	if r.fstype, err = bytePtr(s.FSType); err != nil {
		return err
	}
	if s.Data != "" {
		if r.data, err = bytePtr(s.Data); err != nil && s.Kind != plan.WriteFile {
			return err
		}
		if s.Kind == plan.WriteFile {
			b := []byte(s.Data)
			r.data, r.dataLen = &b[0], uintptr(len(b))
		}
	}
	r.slash, _ = bytePtr("/")
	r.dot, _ = bytePtr(".")
	r.sysBind, _ = bytePtr("/sys")
	r.sysfsFSType, _ = bytePtr("sysfs")
	switch s.Kind {
	case plan.Sysfs:
		r.attr = unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
	case plan.ReadOnly:
		r.attr = unix.MountAttr{Attr_set: s.Set, Attr_clr: s.Clr}
		if s.Set == 0 && s.Clr == 0 {
			r.attr.Attr_set = unix.MOUNT_ATTR_RDONLY
		}
		if s.Recursive {
			r.flags = unix.AT_RECURSIVE
		}
	case plan.FindExec:
		if len(s.Paths) == 0 {
			return errors.New("no program to look for")
		}
		r.single = len(s.Paths) == 1 && s.Paths[0] == s.Data
		if r.paths, err = syscall.SlicePtrFromStrings(s.Paths); err != nil {
			return err
		}
	case plan.Exec:
		if len(s.Argv) == 0 {
			return errors.New("empty argv")
		}
		if r.argv, err = syscall.SlicePtrFromStrings(s.Argv); err != nil {
			return err
		}
		if r.env, err = syscall.SlicePtrFromStrings(s.Env); err != nil {
			return err
		}
	case plan.Mknod:
		r.chown = s.Chown
		r.uid, r.gid = uintptr(s.UID), uintptr(s.GID)
	case plan.Creds:
		r.groups = s.Groups
		r.uid, r.gid = uintptr(s.UID), uintptr(s.GID)
		r.setIDs = s.UID != 0 || s.GID != 0
	case plan.Setrlimit:
		r.rlim = unix.Rlimit{Cur: s.Rlim[0], Max: s.Rlim[1]}
	case plan.BindSocket:
		if s.Data == "" || len(s.Data) >= len(r.sa.Path) {
			return fmt.Errorf("socket name %q: empty or too long", s.Data)
		}
		r.sa.Family = unix.AF_UNIX
		for i := 0; i < len(s.Data); i++ {
			r.sa.Path[i] = int8(s.Data[i])
		}
		r.saLen = unsafe.Offsetof(r.sa.Path) + uintptr(len(s.Data)) + 1
	case plan.Seccomp, plan.Gate, plan.Setns, plan.Sethostname, plan.PivotRoot, plan.Chdir, plan.CapDrop, plan.NoNewPrivs,
		plan.Umask, plan.Mount, plan.Mkdir, plan.MkdirNew, plan.MkFile, plan.Symlink, plan.WriteFile:
	default:
		return fmt.Errorf("unknown step kind %d", s.Kind)
	}
	if s.Kind == plan.Sethostname {
		r.dataLen = uintptr(len(s.Data))
	}
	return nil
}

// cloneInit clones the calling thread into the child that runs the plan.
// As in forkAndExec, every signal stays blocked across the clone and the
// child makes raw system calls only.
//
//go:nosplit
//go:norace
func cloneInit(c *initChild) (pid int, errno syscall.Errno) {
	var all, old [1]uint64
	all[0] = ^uint64(0)
	syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&all[0])), uintptr(unsafe.Pointer(&old[0])), 8, 0, 0)
	var r uintptr
	var e syscall.Errno
	if c.vfork {
		var en uintptr
		r, en = vforkSyscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(&c.args)), unsafe.Sizeof(c.args))
		e = syscall.Errno(en)
	} else {
		r, _, e = syscall.RawSyscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(&c.args)), unsafe.Sizeof(c.args), 0)
	}
	if e != 0 || r != 0 {
		syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&old[0])), 0, 8, 0, 0)
		return int(r), e
	}
	// The child (in the caller's memory with Vfork: it must not return
	// from here, nor allocate, nor grow its stack).
	initChildMain(c)
	return 0, 0
}

// initChildMain is the child. It never returns.
//
//go:nosplit
//go:norace
func initChildMain(c *initChild) {
	var e syscall.Errno
	var i int
	// Handlers back to their defaults before anything can unblock a
	// signal (an ignored signal stays ignored, as across execve), unless
	// the clone did it.
	for sig := uintptr(1); sig <= 64 && !c.clearSighand; sig++ {
		if sig == uintptr(syscall.SIGKILL) || sig == uintptr(syscall.SIGSTOP) {
			continue
		}
		syscall.RawSyscall6(unix.SYS_RT_SIGACTION, sig, 0, uintptr(unsafe.Pointer(&c.act[0])), 8, 0, 0)
		if c.act[0] != 1 { // SIG_IGN
			syscall.RawSyscall6(unix.SYS_RT_SIGACTION, sig, uintptr(unsafe.Pointer(&c.dfl[0])), 0, 8, 0, 0)
		}
	}
	for i = 0; i < len(c.close); i++ {
		syscall.RawSyscall(unix.SYS_CLOSE, uintptr(c.close[i]), 0, 0)
	}
	if _, _, e = syscall.RawSyscall(unix.SYS_SETSID, 0, 0, 0); e != 0 {
		c.report.Step = ^uint32(0)
		goto fail
	}
	if c.pdeathsig != 0 {
		if _, _, e = syscall.RawSyscall(unix.SYS_PRCTL, unix.PR_SET_PDEATHSIG, c.pdeathsig, 0); e != 0 {
			c.report.Step = ^uint32(0)
			goto fail
		}
	}
	if e = childFiles(c); e != 0 {
		c.report.Step = ^uint32(0)
		goto fail
	}
	for i = 0; i < len(c.steps); i++ {
		s := &c.steps[i]
		if s.afterOK && c.prevBad {
			continue
		}
		if s.ifExists {
			if statx(c, s.path, 0) != 0 {
				c.prevBad = false
				continue
			}
		}
		e = runRawStep(c, s)
		c.prevBad = e != 0
		if e != 0 && !s.ignoreErr {
			c.report.Step = uint32(i)
			goto fail
		}
	}
	// Not reached: the last step execs or fails.
	e = syscall.EINVAL
	c.report.Step = uint32(len(c.steps) - 1)
fail:
	c.report.Errno = uint32(e)
	syscall.RawSyscall(unix.SYS_WRITE, uintptr(c.status), uintptr(unsafe.Pointer(&c.report)), unsafe.Sizeof(c.report))
	for {
		syscall.RawSyscall(unix.SYS_EXIT_GROUP, 1, 0, 0)
	}
}

// childFiles puts the child's files at 0, 1, 2 (as forkAndExec does).
//
//go:nosplit
//go:norace
func childFiles(c *initChild) syscall.Errno {
	var e syscall.Errno
	var fd int
	for i := 0; i < len(c.files); i++ {
		if c.files[i] >= 0 && c.files[i] < i {
			if _, _, e = syscall.RawSyscall(unix.SYS_DUP3, uintptr(c.files[i]), uintptr(c.nextFD), unix.O_CLOEXEC); e != 0 {
				return e
			}
			c.files[i] = c.nextFD
			c.nextFD++
		}
	}
	for i := 0; i < len(c.files); i++ {
		fd = c.files[i]
		switch {
		case fd < 0:
			syscall.RawSyscall(unix.SYS_CLOSE, uintptr(i), 0, 0)
		case fd == i:
			if _, _, e = syscall.RawSyscall(unix.SYS_FCNTL, uintptr(fd), unix.F_SETFD, 0); e != 0 {
				return e
			}
		default:
			if _, _, e = syscall.RawSyscall(unix.SYS_DUP3, uintptr(fd), uintptr(i), 0); e != 0 {
				return e
			}
		}
	}
	return 0
}

const atFDCWD = uintptr(0xffffffffffffff9c) // AT_FDCWD (-100) as a register value

//go:nosplit
//go:norace
func statx(c *initChild, path *byte, flags uintptr) syscall.Errno {
	_, _, e := syscall.RawSyscall6(unix.SYS_STATX, atFDCWD, uintptr(unsafe.Pointer(path)), flags, unix.STATX_TYPE|unix.STATX_MODE, uintptr(unsafe.Pointer(&c.stx)), 0)
	return e
}

//go:nosplit
//go:norace
func rawMount(src, dst, fstype, data *byte, flags uintptr) syscall.Errno {
	_, _, e := syscall.RawSyscall6(unix.SYS_MOUNT, uintptr(unsafe.Pointer(src)), uintptr(unsafe.Pointer(dst)), uintptr(unsafe.Pointer(fstype)), flags, uintptr(unsafe.Pointer(data)), 0)
	return e
}

//go:nosplit
//go:norace
func mkFile(c *initChild, path *byte) syscall.Errno {
	if statx(c, path, unix.AT_SYMLINK_NOFOLLOW) == 0 {
		return 0
	}
	fd, _, e := syscall.RawSyscall6(unix.SYS_OPENAT, atFDCWD, uintptr(unsafe.Pointer(path)), unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644, 0, 0)
	if e != 0 {
		return e
	}
	syscall.RawSyscall(unix.SYS_CLOSE, fd, 0, 0)
	return 0
}

//go:nosplit
//go:norace
func runRawStep(c *initChild, s *rawStep) syscall.Errno {
	switch s.kind {
	case plan.Mount:
		return rawMount(s.src, s.path, s.fstype, s.data, s.flags)
	case plan.ReadOnly:
		return setattr(s.path, s.flags, &s.attr)
	case plan.Mkdir, plan.MkdirNew:
		return stepMkdir(c, s)
	case plan.MkFile:
		return mkFile(c, s.path)
	case plan.Mknod:
		return stepMknod(c, s)
	case plan.Symlink:
		return sys3(unix.SYS_SYMLINKAT, uintptr(unsafe.Pointer(s.src)), atFDCWD, uintptr(unsafe.Pointer(s.path)))
	case plan.WriteFile:
		return stepWriteFile(s)
	case plan.Sysfs:
		return stepSysfs(s)
	case plan.BindSocket:
		return stepBindSocket(s)
	case plan.Gate:
		return stepGate(c, s)
	case plan.Setns:
		return sys3(unix.SYS_SETNS, s.arg, s.flags, 0)
	case plan.Sethostname:
		return sys3(unix.SYS_SETHOSTNAME, uintptr(unsafe.Pointer(s.data)), s.dataLen, 0)
	case plan.PivotRoot:
		return stepPivot(s)
	case plan.FindExec:
		return stepFind(c, s)
	case plan.Chdir:
		return stepChdir(c, s)
	case plan.CapDrop:
		if e := sys3(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, s.arg, 0); e != syscall.EINVAL {
			return e
		}
		return 0
	case plan.NoNewPrivs:
		return sys3(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0)
	case plan.Setrlimit:
		_, _, e := syscall.RawSyscall6(unix.SYS_PRLIMIT64, 0, s.arg, uintptr(unsafe.Pointer(&s.rlim)), 0, 0, 0)
		return e
	case plan.Umask:
		sys3(unix.SYS_UMASK, uintptr(s.mode), 0, 0)
		return 0
	case plan.Seccomp:
		return stepSeccomp(c)
	case plan.Creds:
		return stepCreds(s)
	case plan.Exec:
		return stepExec(c, s)
	}
	return syscall.ENOSYS
}

// sys3 is a raw system call of up to 3 arguments (the others zero).
//
//go:nosplit
//go:norace
func sys3(trap, a1, a2, a3 uintptr) syscall.Errno {
	_, _, e := syscall.RawSyscall6(trap, a1, a2, a3, 0, 0, 0)
	return e
}

//go:nosplit
//go:norace
func setattr(path *byte, flags uintptr, attr *unix.MountAttr) syscall.Errno {
	_, _, e := syscall.RawSyscall6(unix.SYS_MOUNT_SETATTR, atFDCWD, uintptr(unsafe.Pointer(path)), flags, uintptr(unsafe.Pointer(attr)), unsafe.Sizeof(*attr), 0)
	return e
}

//go:nosplit
//go:norace
func stepMkdir(c *initChild, s *rawStep) syscall.Errno {
	e := sys3(unix.SYS_MKDIRAT, atFDCWD, uintptr(unsafe.Pointer(s.path)), uintptr(s.mode))
	if e == syscall.EEXIST && s.kind == plan.Mkdir && statx(c, s.path, 0) == 0 && c.stx.Mode&unix.S_IFMT == unix.S_IFDIR {
		return 0
	}
	return e
}

//go:nosplit
//go:norace
func stepMknod(c *initChild, s *rawStep) syscall.Errno {
	mode := s.mode
	if mode&unix.S_IFMT == 0 {
		mode |= unix.S_IFCHR
	}
	path := uintptr(unsafe.Pointer(s.path))
	_, _, e := syscall.RawSyscall6(unix.SYS_MKNODAT, atFDCWD, path, uintptr(mode), uintptr(s.dev), 0, 0)
	if e == 0 {
		if !s.chown {
			return 0
		}
		if e := sys3(unix.SYS_FCHMODAT, atFDCWD, path, uintptr(mode&0o7777)); e != 0 {
			return e
		}
		_, _, e = syscall.RawSyscall6(unix.SYS_FCHOWNAT, atFDCWD, path, s.uid, s.gid, unix.AT_SYMLINK_NOFOLLOW, 0)
		return e
	}
	if *s.src == 0 {
		return e
	}
	if e = mkFile(c, s.path); e != 0 {
		return e
	}
	return rawMount(s.src, s.path, s.fstype, nil, unix.MS_BIND)
}

//go:nosplit
//go:norace
func stepWriteFile(s *rawStep) syscall.Errno {
	fd, _, e := syscall.RawSyscall6(unix.SYS_OPENAT, atFDCWD, uintptr(unsafe.Pointer(s.path)), unix.O_CREAT|unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, uintptr(s.mode), 0, 0)
	if e != 0 {
		return e
	}
	for off := uintptr(0); off < s.dataLen; {
		n, _, we := syscall.RawSyscall6(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(s.data))+off, s.dataLen-off, 0, 0, 0)
		if we == syscall.EINTR {
			continue
		}
		if we != 0 {
			sys3(unix.SYS_CLOSE, fd, 0, 0)
			return we
		}
		off += n
	}
	sys3(unix.SYS_CLOSE, fd, 0, 0)
	return 0
}

//go:nosplit
//go:norace
func stepSysfs(s *rawStep) syscall.Errno {
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RDONLY)
	if s.writable {
		flags &^= unix.MS_RDONLY
	}
	e := rawMount(s.sysfsFSType, s.path, s.sysfsFSType, nil, flags)
	if e != syscall.EPERM {
		return e
	}
	if e = rawMount(s.sysBind, s.path, s.fstype, nil, unix.MS_BIND|unix.MS_REC); e != 0 || s.writable {
		return e
	}
	return setattr(s.path, unix.AT_RECURSIVE, &s.attr)
}

//go:nosplit
//go:norace
func stepBindSocket(s *rawStep) syscall.Errno {
	if e := sys3(unix.SYS_CHDIR, uintptr(unsafe.Pointer(s.path)), 0, 0); e != 0 {
		return e
	}
	name := uintptr(unsafe.Pointer(&s.sa.Path[0]))
	sys3(unix.SYS_UNLINKAT, atFDCWD, name, 0)
	if e := sys3(unix.SYS_BIND, s.arg, uintptr(unsafe.Pointer(&s.sa)), s.saLen); e != 0 {
		return e
	}
	if e := sys3(unix.SYS_FCHMODAT, atFDCWD, name, uintptr(s.mode)); e != 0 {
		return e
	}
	sys3(unix.SYS_CLOSE, s.arg, 0, 0)
	return 0
}

//go:nosplit
//go:norace
func stepGate(c *initChild, s *rawStep) syscall.Errno {
	for {
		r, _, e := syscall.RawSyscall6(unix.SYS_READ, s.arg, uintptr(unsafe.Pointer(&c.buf[0])), 1, 0, 0, 0)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 || r != 1 {
			// The parent is gone, or gave up: nothing to report to.
			for {
				sys3(unix.SYS_EXIT_GROUP, 1, 0, 0)
			}
		}
		return 0
	}
}

//go:nosplit
//go:norace
func stepPivot(s *rawStep) syscall.Errno {
	if e := sys3(unix.SYS_CHDIR, uintptr(unsafe.Pointer(s.path)), 0, 0); e != 0 {
		return e
	}
	if e := sys3(unix.SYS_PIVOT_ROOT, uintptr(unsafe.Pointer(s.dot)), uintptr(unsafe.Pointer(s.dot)), 0); e != 0 {
		return e
	}
	if e := sys3(unix.SYS_UMOUNT2, uintptr(unsafe.Pointer(s.dot)), unix.MNT_DETACH, 0); e != 0 {
		return e
	}
	return sys3(unix.SYS_CHDIR, uintptr(unsafe.Pointer(s.slash)), 0, 0)
}

// stepFind records the chosen program's index in c.chosenIdx (an index,
// not a pointer: the child must not write pointers, which would need the
// garbage collector's write barrier).
//
//go:nosplit
//go:norace
func stepFind(c *initChild, s *rawStep) syscall.Errno {
	if s.single {
		if e := statx(c, s.paths[0], 0); e != 0 {
			c.report.Aux = plan.AuxNotFound
			return e
		}
		if c.stx.Mode&unix.S_IFMT == unix.S_IFDIR {
			c.report.Aux = plan.AuxIsDir
			return syscall.EISDIR
		}
		c.chosenIdx = 0
		c.found = true
		return 0
	}
	for j := 0; j < len(s.paths)-1; j++ { // the last is the nil terminator
		if statx(c, s.paths[j], 0) == 0 && c.stx.Mode&unix.S_IFMT == unix.S_IFREG && c.stx.Mode&0o111 != 0 {
			c.chosenIdx = uint32(j)
			c.found = true
			return 0
		}
	}
	c.report.Aux = plan.AuxNotFound
	return syscall.ENOENT
}

//go:nosplit
//go:norace
func stepChdir(c *initChild, s *rawStep) syscall.Errno {
	p := s.path
	if s.fallback && (statx(c, p, 0) != 0 || c.stx.Mode&unix.S_IFMT != unix.S_IFDIR) {
		p = s.slash
	}
	return sys3(unix.SYS_CHDIR, uintptr(unsafe.Pointer(p)), 0, 0)
}

//go:nosplit
//go:norace
func stepSeccomp(c *initChild) syscall.Errno {
	if c.shared == nil || *(*uint64)(c.shared) == 0 {
		return 0
	}
	c.fprog.Len = uint16(*(*uint64)(c.shared))
	r, _, e := syscall.RawSyscall6(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&c.fprog)), 0, 0, 0)
	if e == 0 && r != 0 {
		return syscall.EBUSY
	}
	return e
}

//go:nosplit
//go:norace
func stepCreds(s *rawStep) syscall.Errno {
	var groups uintptr
	if len(s.groups) > 0 {
		groups = uintptr(unsafe.Pointer(&s.groups[0]))
	}
	if e := sys3(sysSetgroups, uintptr(len(s.groups)), groups, 0); e != 0 || !s.setIDs {
		return e
	}
	if e := sys3(sysSetgid, s.gid, 0, 0); e != 0 {
		return e
	}
	return sys3(sysSetuid, s.uid, 0, 0)
}

//go:nosplit
//go:norace
func stepExec(c *initChild, s *rawStep) syscall.Errno {
	c.report.Aux = c.chosenIdx
	if !c.found {
		return syscall.ENOENT
	}
	path := c.steps[c.find].paths[c.chosenIdx]
	c.act[0] = 0
	syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&c.act[0])), 0, 8, 0, 0)
	return sys3(unix.SYS_EXECVE, uintptr(unsafe.Pointer(path)), uintptr(unsafe.Pointer(&s.argv[0])), uintptr(unsafe.Pointer(&s.env[0])))
}
