package seccomp

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Install loads prog as a seccomp filter on every thread of the process
// (SECCOMP_FILTER_FLAG_TSYNC), so that Go runtime threads cannot escape it.
//
// The kernel accepts a filter from a process that either has set
// no_new_privs or holds CAP_SYS_ADMIN in its user namespace. nspawn does
// not set no_new_privs (it would break set-user-ID programs in the
// container), and neither does Install: call it while the calling thread
// still has CAP_SYS_ADMIN in its effective set, or after PR_SET_NO_NEW_PRIVS.
// Dropping capabilities from the bounding set only does not matter here.
//
// The filter stays for the life of the process and every program it
// executes; it cannot be removed. Filters stack: installing twice applies
// both.
func Install(prog []unix.SockFilter) error {
	if len(prog) == 0 || len(prog) > maxInsns {
		return fmt.Errorf("installing seccomp filter: program of %d instructions (want 1..%d)", len(prog), maxInsns)
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	r, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	switch {
	case e == unix.EACCES:
		return fmt.Errorf("installing seccomp filter: %w (needs CAP_SYS_ADMIN or no_new_privs: install it before capabilities leave the effective set)", e)
	case e != 0:
		return fmt.Errorf("installing seccomp filter: %w", e)
	case r != 0:
		// With TSYNC, a positive return is a thread that could not be
		// synchronized (it has a filter of its own); nothing was installed.
		return fmt.Errorf("installing seccomp filter: thread %d has a diverging filter: %w", r, errTSYNC)
	}
	return nil
}

var errTSYNC = errors.New("seccomp TSYNC failed")

// Available reports whether filters should be installed: the kernel
// supports seccomp filters, and the environment does not turn them off.
// Like nspawn, it honours SYSTEMD_SECCOMP=0 (any false value: 0, no, n,
// false, f, off), as does NETSPAWN_SECCOMP, which takes precedence.
func Available() bool {
	for _, v := range []string{"NETSPAWN_SECCOMP", "SYSTEMD_SECCOMP"} {
		if s, ok := os.LookupEnv(v); ok {
			if isFalse(s) {
				return false
			}
			break
		}
	}
	// With a NULL program the kernel answers EFAULT if it could load one,
	// EINVAL if it has no seccomp filters, and installs nothing.
	_, _, e := unix.RawSyscall(unix.SYS_PRCTL, unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, 0)
	return e == unix.EFAULT
}

func isFalse(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "0", "no", "n", "false", "f", "off":
		return true
	}
	return false
}
