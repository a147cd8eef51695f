package spawn

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"github.com/netspawn/netspawn/spawn/forkexec"
	"github.com/netspawn/netspawn/spawn/internal/proc"

	"golang.org/x/sys/unix"
)

// stubArg0 is argv[0] of the stub init of --as-pid2.
const stubArg0 = "netspawn-stub"

// IsStub reports whether this process is the stub init of --as-pid2.
func IsStub() bool { return len(os.Args) > 0 && os.Args[0] == stubArg0 }

// execStub replaces the container's first process with a fresh copy of
// netspawn acting as the stub init. The exec ends every runtime thread of
// this process; the stub then starts the payload as PID 2.
func execStub(path string, argv, env []string, u *proc.User, console bool, label string) error {
	groups := make([]string, len(u.Groups))
	for i, g := range u.Groups {
		groups[i] = strconv.Itoa(g)
	}
	args := []string{stubArg0, strconv.FormatBool(console),
		strconv.Itoa(u.UID), strconv.Itoa(u.GID), strings.Join(groups, ","),
		path, label, "--"}
	args = append(args, argv...)
	// The status pipe stays open: the stub closes it once the payload runs.
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
	console := args[0] == "true"
	uid, _ := strconv.Atoi(args[1])
	gid, _ := strconv.Atoi(args[2])
	var groups []uint32
	for _, g := range strings.Split(args[3], ",") {
		if n, err := strconv.Atoi(g); err == nil {
			groups = append(groups, uint32(n))
		}
	}
	path, label, argv := args[4], args[5], args[7:]
	unix.CloseOnExec(fdStatus)
	// Show up as what we are in ps, not as "exe".
	name := []byte(stubArg0 + "\x00")
	_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0, 0, 0)

	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs)
	var cred *syscall.Credential
	if uid != 0 || gid != 0 {
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}
	}
	// -Z: the label is the forking thread's, which the payload's clone
	// inherits for its execve (the stub itself was not relabelled).
	runtime.LockOSThread()
	if err := setExecLabel(label); err != nil {
		return err
	}
	// PID 2 exactly (the stub's own runtime threads take PIDs as they start,
	// so rewinding the PID counter and forking raced with them).
	payload, err := forkexec.Start(&forkexec.Attr{Path: path, Argv: argv, Env: os.Environ(),
		Setsid: true, Setctty: console, Cred: cred, PID: 2})
	if errors.Is(err, forkexec.ErrPIDUnavailable) {
		// Without CAP_SYS_ADMIN in the container (--drop-capability=) or
		// before Linux 5.5 the kernel hands out no chosen PID.
		fmt.Fprintf(os.Stderr, "netspawn: the kernel will not give the payload PID 2 (it needs Linux 5.5 and CAP_SYS_ADMIN in the container); starting it as the next free PID\n")
		payload, err = forkexec.Start(&forkexec.Attr{Path: path, Argv: argv, Env: os.Environ(),
			Setsid: true, Setctty: console, Cred: cred})
	}
	runtime.UnlockOSThread()
	if err != nil {
		return execError(path, err)
	}
	status.Close()
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
