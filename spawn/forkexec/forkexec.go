// Package forkexec starts a process with what os.StartProcess cannot give
// it: a chosen PID (clone3 set_tid), and membership of an existing user
// namespace (setns(CLONE_NEWUSER), which the kernel refuses to a process
// with more than one thread, so a Go program can only do it in a forked
// child before exec).
//
// It forks the way the syscall package does: signals blocked on a locked
// thread, a plain clone3 (no shared memory), and in the child raw system
// calls only until execve, whose failure comes back through a close-on-exec
// pipe.
package forkexec

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Attr describes the process to start.
type Attr struct {
	Path string   // absolute path of the program
	Argv []string // argv, argv[0] included
	Env  []string
	// Files become the child's descriptors 0, 1, 2, ...; nil means the
	// caller's 0, 1 and 2.
	Files []int
	Dir   string // working directory, entered after the credentials change
	// Setsid makes a new session; Setctty also makes descriptor 0 its
	// controlling terminal.
	Setsid, Setctty bool
	// Cred, when set, is the child's user, group and supplementary groups,
	// as IDs of the user namespace it ends up in.
	Cred *syscall.Credential
	// UserNS, when not nil, is a user namespace the child joins first.
	UserNS *int
	// CgroupNS, when not nil, is a cgroup namespace the child joins after
	// it started in CgroupFD. Joined by the caller before the fork, the
	// kernel refuses the clone into a cgroup outside the namespace's root
	// on hosts mounting cgroup2 with nsdelegate (ENOENT): systemd's.
	CgroupNS *int
	// CgroupFD, when not nil, is the cgroup v2 directory the child starts in.
	CgroupFD *int
	// PID, when not 0, is the PID the child must have in the caller's
	// namespace for new processes.
	PID int
}

// ErrPIDUnavailable means the kernel did not hand out the PID asked for
// (it needs Linux 5.5 and CAP_SYS_ADMIN over the PID namespace, and the
// PID must be free); nothing was started.
var ErrPIDUnavailable = errors.New("the kernel did not give out the PID asked for")

// cloneArgs is the kernel's struct clone_args (include/uapi/linux/sched.h).
type cloneArgs struct {
	flags, pidfd, childTID, parentTID, exitSignal, stack, stackSize, tls, setTID, setTIDSize, cgroup uint64
}

// child is everything the child needs, prepared before the fork: the
// child allocates nothing.
type child struct {
	args     cloneArgs
	tid      [1]int32
	path     *byte
	argv     []*byte
	env      []*byte
	dir      *byte
	files    []int
	nextFD   int
	userNS   int
	cgroupNS int
	uid, gid uintptr
	groups   []uint32
	setCreds bool
	setsid   bool
	setctty  bool
	errPipe  int
}

// Start starts the process and returns its PID. The PID belongs to the
// caller, who must wait for it.
func Start(a *Attr) (int, error) {
	c := child{userNS: -1, cgroupNS: -1, setsid: a.Setsid, setctty: a.Setctty}
	var err error
	if c.path, err = syscall.BytePtrFromString(a.Path); err != nil {
		return 0, err
	}
	if c.argv, err = syscall.SlicePtrFromStrings(a.Argv); err != nil {
		return 0, err
	}
	if c.env, err = syscall.SlicePtrFromStrings(a.Env); err != nil {
		return 0, err
	}
	if a.Dir != "" {
		if c.dir, err = syscall.BytePtrFromString(a.Dir); err != nil {
			return 0, err
		}
	}
	if len(a.Argv) == 0 {
		return 0, errors.New("forkexec: empty argv")
	}
	c.files = a.Files
	if c.files == nil {
		c.files = []int{0, 1, 2}
	}
	if a.UserNS != nil {
		c.userNS = *a.UserNS
	}
	if a.CgroupNS != nil {
		c.cgroupNS = *a.CgroupNS
	}
	if a.Cred != nil {
		c.setCreds, c.uid, c.gid, c.groups = true, uintptr(a.Cred.Uid), uintptr(a.Cred.Gid), a.Cred.Groups
	}
	c.args.exitSignal = uint64(syscall.SIGCHLD)
	if a.PID != 0 {
		c.tid[0] = int32(a.PID)
		c.args.setTID = uint64(uintptr(unsafe.Pointer(&c.tid[0])))
		c.args.setTIDSize = 1
	}
	if a.CgroupFD != nil {
		c.args.flags |= unix.CLONE_INTO_CGROUP
		c.args.cgroup = uint64(*a.CgroupFD)
	}

	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return 0, fmt.Errorf("forkexec: pipe: %w", err)
	}
	defer unix.Close(p[0])
	c.errPipe = p[1]
	// Descriptors moved out of the way in the child start above every
	// descriptor it is given and above the pipe.
	c.nextFD = max(len(c.files), c.errPipe+1)
	for _, fd := range c.files {
		c.nextFD = max(c.nextFD, fd+1)
	}
	if c.errPipe < len(c.files) {
		fd, err := unix.FcntlInt(uintptr(c.errPipe), unix.F_DUPFD_CLOEXEC, c.nextFD)
		if err != nil {
			unix.Close(p[1])
			return 0, fmt.Errorf("forkexec: %w", err)
		}
		unix.Close(c.errPipe)
		c.errPipe, c.nextFD = fd, fd+1
	}

	runtime.LockOSThread()
	pid, errno := forkAndExec(&c)
	runtime.UnlockOSThread()
	runtime.KeepAlive(&c)
	unix.Close(c.errPipe)
	if errno != 0 {
		if a.PID != 0 && (errno == unix.EPERM || errno == unix.EEXIST || errno == unix.EINVAL || errno == unix.E2BIG || errno == unix.ENOSYS) {
			return 0, fmt.Errorf("%w (PID %d): %v", ErrPIDUnavailable, a.PID, errno)
		}
		return 0, fmt.Errorf("clone3: %w", errno)
	}
	// The pipe closes on a successful execve; otherwise it carries errno.
	var buf [4]byte
	for {
		n, err := unix.Read(p[0], buf[:])
		if err == unix.EINTR {
			continue
		}
		if n != len(buf) {
			return pid, nil
		}
		var ws unix.WaitStatus
		for {
			if _, err := unix.Wait4(pid, &ws, 0, nil); err != unix.EINTR {
				break
			}
		}
		return 0, syscall.Errno(*(*uint32)(unsafe.Pointer(&buf[0])))
	}
}

// forkAndExec clones the calling thread into a new process that execs the
// program. Every signal stays blocked across the clone, so no Go signal
// handler ever runs in the child; the child part makes raw system calls
// only: it must neither grow the stack nor allocate.
//
//go:nosplit
//go:norace
func forkAndExec(c *child) (pid int, errno syscall.Errno) {
	var all, old [1]uint64
	all[0] = ^uint64(0)
	syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&all[0])), uintptr(unsafe.Pointer(&old[0])), 8, 0, 0)
	r, _, e := syscall.RawSyscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(&c.args)), unsafe.Sizeof(c.args), 0)
	if e != 0 || r != 0 {
		// The parent, or a clone that failed: the thread's mask back.
		syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&old[0])), 0, 8, 0, 0)
		return int(r), e
	}

	// The child. Handlers back to their defaults before anything can
	// unblock a signal: the Go runtime's handlers must never run here.
	var dfl [4]uint64 // a struct sigaction of SIG_DFL, no flags, empty mask
	var fd int
	for sig := uintptr(1); sig <= 64; sig++ {
		if sig != uintptr(syscall.SIGKILL) && sig != uintptr(syscall.SIGSTOP) {
			syscall.RawSyscall6(unix.SYS_RT_SIGACTION, sig, uintptr(unsafe.Pointer(&dfl[0])), 0, 8, 0, 0)
		}
	}
	if c.userNS >= 0 {
		if _, _, e = syscall.RawSyscall(unix.SYS_SETNS, uintptr(c.userNS), unix.CLONE_NEWUSER, 0); e != 0 {
			goto fail
		}
	}
	if c.cgroupNS >= 0 {
		if _, _, e = syscall.RawSyscall(unix.SYS_SETNS, uintptr(c.cgroupNS), unix.CLONE_NEWCGROUP, 0); e != 0 && e != unix.EINVAL {
			goto fail // EINVAL: the namespace the child is in already
		}
	}
	if c.setsid {
		if _, _, e = syscall.RawSyscall(unix.SYS_SETSID, 0, 0, 0); e != 0 {
			goto fail
		}
	}
	if c.setCreds {
		var groups uintptr
		if len(c.groups) > 0 {
			groups = uintptr(unsafe.Pointer(&c.groups[0]))
		}
		if _, _, e = syscall.RawSyscall(sysSetgroups, uintptr(len(c.groups)), groups, 0); e != 0 {
			goto fail
		}
		if _, _, e = syscall.RawSyscall(sysSetgid, c.gid, 0, 0); e != 0 {
			goto fail
		}
		if _, _, e = syscall.RawSyscall(sysSetuid, c.uid, 0, 0); e != 0 {
			goto fail
		}
	}
	if c.dir != nil {
		if _, _, e = syscall.RawSyscall(unix.SYS_CHDIR, uintptr(unsafe.Pointer(c.dir)), 0, 0); e != 0 {
			goto fail
		}
	}
	// Descriptors: first move any that a lower target would overwrite out
	// of the way, then put each in place (dup3 clears close-on-exec).
	for i := 0; i < len(c.files); i++ {
		if c.files[i] >= 0 && c.files[i] < i {
			if _, _, e = syscall.RawSyscall(unix.SYS_DUP3, uintptr(c.files[i]), uintptr(c.nextFD), unix.O_CLOEXEC); e != 0 {
				goto fail
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
				goto fail
			}
		default:
			if _, _, e = syscall.RawSyscall(unix.SYS_DUP3, uintptr(fd), uintptr(i), 0); e != 0 {
				goto fail
			}
		}
	}
	if c.setctty {
		if _, _, e = syscall.RawSyscall(unix.SYS_IOCTL, 0, unix.TIOCSCTTY, 1); e != 0 {
			goto fail
		}
	}
	old[0] = 0
	syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&old[0])), 0, 8, 0, 0)
	_, _, e = syscall.RawSyscall(unix.SYS_EXECVE, uintptr(unsafe.Pointer(c.path)),
		uintptr(unsafe.Pointer(&c.argv[0])), uintptr(unsafe.Pointer(&c.env[0])))
fail:
	code := uint32(e)
	syscall.RawSyscall(unix.SYS_WRITE, uintptr(c.errPipe), uintptr(unsafe.Pointer(&code)), 4)
	for {
		syscall.RawSyscall(unix.SYS_EXIT_GROUP, 127, 0, 0)
	}
}
