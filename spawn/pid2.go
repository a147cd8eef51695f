package spawn

import (
	"errors"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The payload of --as-pid2 must be PID 2, as systemd-nspawn guarantees. The
// stub init is a Go program: its runtime starts threads whenever it needs
// them, and each thread takes the next free PID of the namespace. Rewinding
// the namespace's PID counter (ns_last_pid) and then starting the payload
// raced with those threads: now and then a runtime thread took PID 2 and the
// payload got 3. clone3(2) with set_tid asks the kernel for PID 2 itself, so
// no thread can take it in between.
//
// Go's os.StartProcess has no set_tid, so the payload is forked here the way
// the syscall package forks: signals blocked on a locked thread, a plain
// clone (no shared memory), and in the child only raw system calls until
// execve.

// cloneArgs is the kernel's struct clone_args (include/uapi/linux/sched.h).
type cloneArgs struct {
	flags, pidfd, childTID, parentTID, exitSignal, stack, stackSize, tls, setTID, setTIDSize, cgroup uint64
}

// pid2Exec is everything the child needs, prepared before the fork so that
// the child allocates nothing.
type pid2Exec struct {
	path     *byte
	argv     []*byte
	env      []*byte
	uid, gid uintptr
	groups   []uint32
	setCreds bool
	setctty  bool
	errPipe  int
}

// errPID2Unavailable means the kernel refused to give out PID 2 (no
// clone3 set_tid before Linux 5.5, or no CAP_SYS_ADMIN in the container).
var errPID2Unavailable = errors.New("clone3 with set_tid unavailable")

// startAsPID2 starts path as PID 2 of the caller's PID namespace, in a new
// session (with stdin as its controlling terminal when setctty), with the
// given credentials, and returns its PID. It returns errPID2Unavailable,
// having started nothing, when the kernel will not hand out PID 2.
func startAsPID2(path string, argv, env []string, cred *syscall.Credential, setctty bool) (int, error) {
	x := pid2Exec{setctty: setctty}
	var err error
	if x.path, err = syscall.BytePtrFromString(path); err != nil {
		return 0, err
	}
	if x.argv, err = syscall.SlicePtrFromStrings(argv); err != nil {
		return 0, err
	}
	if x.env, err = syscall.SlicePtrFromStrings(env); err != nil {
		return 0, err
	}
	if cred != nil {
		x.setCreds, x.uid, x.gid, x.groups = true, uintptr(cred.Uid), uintptr(cred.Gid), cred.Groups
		if x.groups == nil {
			x.groups = []uint32{}
		}
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return 0, err
	}
	x.errPipe = p[1]

	runtime.LockOSThread()
	pid, errno := forkPID2(&x)
	runtime.UnlockOSThread()
	unix.Close(p[1])
	defer unix.Close(p[0])
	if errno != 0 {
		switch errno {
		case unix.ENOSYS, unix.E2BIG, unix.EPERM, unix.EINVAL, unix.EEXIST:
			return 0, errPID2Unavailable
		}
		return 0, errno
	}
	// The pipe closes on a successful execve; otherwise it carries errno.
	var buf [4]byte
	for {
		n, err := unix.Read(p[0], buf[:])
		if err == unix.EINTR {
			continue
		}
		if n == 4 {
			var ws unix.WaitStatus
			for {
				if _, err := unix.Wait4(pid, &ws, 0, nil); err != unix.EINTR {
					break
				}
			}
			return 0, syscall.Errno(*(*uint32)(unsafe.Pointer(&buf[0])))
		}
		return pid, nil
	}
}

// forkPID2 clones the calling thread into a new process with PID 2 and
// execs the payload in it. It runs on a locked thread with every signal
// blocked (so no Go signal handler runs in the child), and the child part
// makes raw system calls only: it must not grow the stack or allocate.
//
//go:nosplit
//go:norace
func forkPID2(x *pid2Exec) (pid int, errno syscall.Errno) {
	var all, old [1]uint64
	all[0] = ^uint64(0)
	syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&all[0])), uintptr(unsafe.Pointer(&old[0])), 8, 0, 0)
	tid := [1]int32{2}
	args := cloneArgs{exitSignal: uint64(syscall.SIGCHLD), setTID: uint64(uintptr(unsafe.Pointer(&tid[0]))), setTIDSize: 1}
	r, _, e := syscall.RawSyscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(&args)), unsafe.Sizeof(args), 0)
	if e != 0 || r != 0 {
		// The parent (or a failed clone): restore the thread's signal mask.
		syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&old[0])), 0, 8, 0, 0)
		return int(r), e
	}
	// The child. Signal handlers back to their defaults before signals are
	// unblocked: the Go runtime's handlers must never run here.
	var dfl [4]uint64 // struct sigaction with SIG_DFL, no flags, empty mask
	for sig := uintptr(1); sig <= 64; sig++ {
		if sig != uintptr(syscall.SIGKILL) && sig != uintptr(syscall.SIGSTOP) {
			syscall.RawSyscall6(unix.SYS_RT_SIGACTION, sig, uintptr(unsafe.Pointer(&dfl[0])), 0, 8, 0, 0)
		}
	}
	if _, _, e = syscall.RawSyscall(unix.SYS_SETSID, 0, 0, 0); e != 0 {
		goto fail
	}
	if x.setctty {
		if _, _, e = syscall.RawSyscall(unix.SYS_IOCTL, 0, unix.TIOCSCTTY, 1); e != 0 {
			goto fail
		}
	}
	if x.setCreds {
		var groups uintptr
		if len(x.groups) > 0 {
			groups = uintptr(unsafe.Pointer(&x.groups[0]))
		}
		if _, _, e = syscall.RawSyscall(sysSetgroups, uintptr(len(x.groups)), groups, 0); e != 0 {
			goto fail
		}
		if _, _, e = syscall.RawSyscall(sysSetgid, x.gid, 0, 0); e != 0 {
			goto fail
		}
		if _, _, e = syscall.RawSyscall(sysSetuid, x.uid, 0, 0); e != 0 {
			goto fail
		}
	}
	old[0] = 0
	syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&old[0])), 0, 8, 0, 0)
	_, _, e = syscall.RawSyscall(unix.SYS_EXECVE, uintptr(unsafe.Pointer(x.path)),
		uintptr(unsafe.Pointer(&x.argv[0])), uintptr(unsafe.Pointer(&x.env[0])))
fail:
	code := uint32(e)
	syscall.RawSyscall(unix.SYS_WRITE, uintptr(x.errPipe), uintptr(unsafe.Pointer(&code)), 4)
	for {
		syscall.RawSyscall(unix.SYS_EXIT_GROUP, 127, 0, 0)
	}
}
