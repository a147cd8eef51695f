package spawn

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// stubArg0 is argv[0] of the stub init of --as-pid2.
const stubArg0 = "netspawn-stub"

// IsStub reports whether this process is the stub init of --as-pid2.
func IsStub() bool { return len(os.Args) > 0 && os.Args[0] == stubArg0 }

// execStub replaces the container's first process with a fresh copy of
// netspawn acting as the stub init. The exec ends every runtime thread of
// this process, so their PIDs are free again and the payload can be PID 2.
func execStub(path string, argv, env []string, u *user, console bool, lastPidFD int) error {
	groups := make([]string, len(u.Groups))
	for i, g := range u.Groups {
		groups[i] = strconv.Itoa(g)
	}
	args := []string{stubArg0,
		strconv.Itoa(lastPidFD), strconv.FormatBool(console),
		strconv.Itoa(u.UID), strconv.Itoa(u.GID), strings.Join(groups, ","),
		path, "--"}
	args = append(args, argv...)
	if lastPidFD >= 0 {
		// Keep the PID counter open across the exec.
		if _, err := unix.FcntlInt(uintptr(lastPidFD), unix.F_SETFD, 0); err != nil {
			return fmt.Errorf("keeping ns_last_pid open: %w", err)
		}
	}
	// The status pipe stays open too: the stub closes it once the payload runs.
	if _, err := unix.FcntlInt(fdStatus, unix.F_SETFD, 0); err != nil {
		return fmt.Errorf("keeping the status pipe open: %w", err)
	}
	err := unix.Exec("/proc/self/exe", args, env)
	return fmt.Errorf("starting the stub init: %w", err)
}

// StubMain is the stub init of --as-pid2, PID 1 of the container: it starts
// the payload as PID 2, forwards signals to it, reaps every process that
// ends up with it and exits with the payload's status. It does not return.
func StubMain() {
	status := os.NewFile(fdStatus, "status")
	err := stubMain(os.Args[1:], status)
	fmt.Fprintf(status, "%v\n", err)
	os.Exit(1)
}

func stubMain(args []string, status *os.File) error {
	if len(args) < 7 || args[6] != "--" {
		return errors.New("stub init: bad arguments")
	}
	lastPidFD, _ := strconv.Atoi(args[0])
	console := args[1] == "true"
	uid, _ := strconv.Atoi(args[2])
	gid, _ := strconv.Atoi(args[3])
	var groups []uint32
	for _, g := range strings.Split(args[4], ",") {
		if n, err := strconv.Atoi(g); err == nil {
			groups = append(groups, uint32(n))
		}
	}
	path, argv := args[5], args[7:]
	unix.CloseOnExec(fdStatus)
	// Show up as what we are in ps, not as "exe".
	name := []byte(stubArg0 + "\x00")
	_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0, 0, 0)

	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs)
	attr := &os.ProcAttr{
		Env:   os.Environ(),
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Sys:   &syscall.SysProcAttr{Setsid: true, Setctty: console, Ctty: 0},
	}
	if uid != 0 || gid != 0 {
		attr.Sys.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}
	}
	if lastPidFD >= 0 {
		// The Go runtime probes clone(CLONE_PIDFD) with a throwaway child on
		// its first process start; let that probe take its PID now.
		if self, err := os.FindProcess(os.Getpid()); err == nil {
			_ = self.Release()
		}
		// The threads that held the low PIDs died with the exec: the next
		// process created in this namespace is PID 2.
		one := []byte("1")
		_, _, _ = unix.RawSyscall(unix.SYS_WRITE, uintptr(lastPidFD), uintptr(unsafe.Pointer(&one[0])), 1)
	}
	p, err := os.StartProcess(path, argv, attr)
	if lastPidFD >= 0 {
		unix.Close(lastPidFD)
	}
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return execError(path, err)
	}
	status.Close()
	payload := p.Pid
	for s := range sigs {
		if s != syscall.SIGCHLD {
			if s != syscall.SIGURG { // the Go runtime's own preemption signal
				_ = unix.Kill(payload, s.(syscall.Signal))
			}
			continue
		}
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if err != nil || pid <= 0 {
				break
			}
			if pid == payload {
				if ws.Signaled() {
					os.Exit(128 + int(ws.Signal()))
				}
				os.Exit(ws.ExitStatus())
			}
		}
	}
	return nil
}
