package spawn

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/netspawn/netspawn/spawn/config"
	"github.com/netspawn/netspawn/spawn/internal/plan"
	"github.com/netspawn/netspawn/spawn/internal/proc"

	"github.com/netspawn/netspawn/spawn/seccomp"
	"github.com/vishvananda/netlink"

	"golang.org/x/sys/unix"
)

// File descriptors the parent hands to the container's first process.
const (
	fdSetup  = 3 // parent -> child: initMsg, then NetworkSetup (JSON lines)
	fdStatus = 4 // child -> parent: an error message, or EOF once the payload runs
	fdNetNS  = 5 // optional: the network namespace to join
)

// IsInit reports whether this process is the container's first process,
// re-executed by Run. Call it first thing in main.
func IsInit() bool { return len(os.Args) > 0 && os.Args[0] == proc.InitArg0 }

// InitMain is the container's first process: it builds the container's file
// system view and execs the payload (or becomes the stub init of
// --as-pid2). It does not return.
func InitMain() {
	// Everything below, including the final execve, runs on this one thread:
	// thread-scoped state (the network namespace joined with setns) must be
	// what the payload inherits.
	runtime.LockOSThread()
	trace("init: start")
	status := os.NewFile(fdStatus, "status")
	err := initContainer(status)
	fmt.Fprintf(status, "%v\n", err)
	os.Exit(1)
}

func initContainer(status *os.File) error {
	unix.CloseOnExec(fdSetup)
	unix.CloseOnExec(fdStatus)
	setup := bufio.NewReader(os.NewFile(fdSetup, "setup"))
	var msg initMsg
	if err := readJSONLine(setup, &msg); err != nil {
		return fmt.Errorf("reading container setup: %w", err)
	}
	cfg := msg.Config
	trace("init: setup read")
	unix.Umask(0)

	if msg.JoinNetNS {
		unix.CloseOnExec(fdNetNS)
		if err := unix.Setns(fdNetNS, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("joining the container's network namespace: %w", err)
		}
		unix.Close(fdNetNS)
	}

	root := storageRoot(&msg)
	if msg.NotifyFD > 0 {
		unix.CloseOnExec(msg.NotifyFD)
	}
	if err := setupMounts(root, &msg); err != nil {
		return err
	}
	if msg.NotifyFD > 0 {
		if err := runSteps([]plan.Step{notifyStep(root, msg.NotifyFD)}); err != nil {
			return err
		}
	}
	trace("init: mounts done")

	var netSetup NetworkSetup
	if err := readJSONLine(setup, &netSetup); err != nil {
		return fmt.Errorf("reading network setup: %w", err)
	}
	trace("init: network setup read")
	if cfg.Network.Private && cfg.Network.NamespacePath == "" && !msg.JoinNetNS {
		if err := configureNetwork(&netlink.Handle{}, &netSetup); err != nil {
			return err
		}
	}
	if err := setupResolvConf(root, cfg, &netSetup, cfg.Quiet); err != nil {
		return err
	}
	trace("init: network configured")
	if err := setupTimezone(root, cfg, cfg.Quiet); err != nil {
		return err
	}
	trace("init: resolv.conf and timezone")
	if cfg.ReadOnly {
		if err := makeReadOnly(root, false); err != nil {
			return fmt.Errorf("making the root directory read-only: %w", err)
		}
	}
	hostname := cfg.Hostname
	if hostname == "" {
		hostname = cfg.Machine
	}
	// In the host's own UTS namespace the hostname is not ours to set.
	if !cfg.ShareUTS {
		if err := unix.Sethostname([]byte(hostname)); err != nil {
			return fmt.Errorf("setting hostname %q: %w", hostname, err)
		}
	}
	if err := pivotRoot(root); err != nil {
		return err
	}
	trace("init: pivoted")

	// From here on, paths are the container's.
	usr, err := payloadUser(cfg, func(p string) (io.ReadCloser, error) { return os.Open(p) })
	if err != nil {
		return err
	}
	env := payloadEnv(cfg, &msg, usr)
	argv := cfg.Command
	if cfg.Boot {
		init, err := findInit()
		if err != nil {
			return err
		}
		argv = append([]string{init}, cfg.Command...)
	} else if len(argv) == 0 {
		// No command: the user's shell, as a login shell.
		shell := usr.Shell
		if shell == "" || !proc.IsExecutable(shell) {
			shell = "/bin/sh"
		}
		argv = []string{shell}
	}
	path, err := proc.FindExecutable(argv[0], proc.EnvValue(env, "PATH"))
	if err != nil {
		return err
	}
	if len(cfg.Command) == 0 && !cfg.Boot {
		argv = []string{"-" + filepath.Base(path)}
	}

	dir := cfg.Chdir
	if dir == "" {
		dir = usr.Home
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			dir = "/"
		}
	}
	if err := os.Chdir(dir); err != nil {
		return fmt.Errorf("changing to working directory %s in the container: %w", dir, err)
	}
	if err := applyExecProps(cfg, msg.Rlimits); err != nil {
		return err
	}
	if err := dropCapabilities(cfg.Capabilities()); err != nil {
		return err
	}
	if cfg.NoNewPrivileges {
		if err := prctlAllThreads(unix.PR_SET_NO_NEW_PRIVS, 1); err != nil {
			return fmt.Errorf("setting no_new_privs: %w", err)
		}
	}
	unix.Umask(0o022)
	trace("init: capabilities dropped")
	if len(msg.Seccomp) > 0 {
		// Last, while still privileged enough to install it.
		if err := seccomp.Install(msg.Seccomp); err != nil {
			return err
		}
	}

	if cfg.AsPid2 {
		// The stub labels the payload it starts (selinux.go).
		return execStub(path, argv, env, usr, msg.Console, cfg.SELinuxContext)
	}
	if err := setExecLabel(cfg.SELinuxContext); err != nil {
		return err
	}
	if cfg.AmbientCaps != 0 && usr.UID != 0 {
		// The permitted set survives the switch of user, for raiseAmbient.
		if err := prctlAllThreads(unix.PR_SET_KEEPCAPS, 1); err != nil {
			return fmt.Errorf("keeping capabilities across the user switch: %w", err)
		}
	}
	if err := usr.Become(); err != nil {
		return err
	}
	if cfg.AmbientCaps != 0 {
		if err := raiseAmbient(cfg.Capabilities(), cfg.AmbientCaps, usr.UID == 0); err != nil {
			return err
		}
	}
	trace("init: exec")
	err = unix.Exec(path, argv, env)
	return execError(path, err)
}

func readJSONLine(r *bufio.Reader, v any) error {
	line, err := r.ReadBytes('\n')
	if err != nil {
		return err
	}
	return json.Unmarshal(line, v)
}

func execError(path string, err error) error {
	switch {
	case errors.Is(err, unix.EACCES):
		return fmt.Errorf("execv(%s) failed: Permission denied (is the file executable, and the tree not on a noexec mount?)", path)
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("execv(%s) failed: %v (its interpreter or dynamic loader is missing from the tree)", path, err)
	case errors.Is(err, unix.ENOEXEC):
		return fmt.Errorf("execv(%s) failed: exec format error (not a program for this machine)", path)
	}
	return fmt.Errorf("execv(%s) failed: %w", path, err)
}

// payloadEnv builds the payload's environment as systemd-nspawn does: a
// fixed base, the container identification, then -E settings.
// payloadUser is the account the payload runs as: an OCI bundle's numeric
// IDs, or -u looked up in the container's /etc/passwd through open.
func payloadUser(cfg *config.Config, open func(string) (io.ReadCloser, error)) (*proc.User, error) {
	if u := cfg.OCIUser; u != nil {
		return proc.RawUser(u.UID, u.GID, u.Groups), nil
	}
	return proc.LookupUserWith(cfg.User, open)
}

func payloadEnv(cfg *config.Config, msg *initMsg, u *proc.User) []string {
	term := "dumb"
	if msg.Console {
		term = msg.Term
		if term == "" {
			term = "vt220"
		}
	}
	env := []string{"PATH=" + proc.DefaultPath, "container=" + cfg.Service()}
	switch {
	case !u.Raw:
		env = append(env, "HOME="+u.Home, "USER="+u.Name, "LOGNAME="+u.Name, "SHELL="+u.Shell)
	case u.UID == 0: // numeric IDs (an OCI bundle): as nspawn, names only for root
		env = append(env, "HOME=/root", "USER=root", "LOGNAME=root")
	}
	env = append(env, "TERM="+term)
	if cfg.UUID != "" {
		env = append(env, "container_uuid="+cfg.UUID)
	}
	// As nspawn, always (the socket is there whether or not
	// --notify-ready= waits for it).
	env = append(env, "NOTIFY_SOCKET="+notifySocketPath)
	if len(cfg.Credentials) > 0 {
		env = append(env, "CREDENTIALS_DIRECTORY="+config.CredentialsDir)
	}
	for _, kv := range cfg.Env {
		name, _, _ := strings.Cut(kv, "=")
		env = proc.SetEnv(env, name, kv)
	}
	return env
}

// dropCapabilities removes from the bounding set every capability not in
// keep, on all threads, so the payload's execve cannot gain them.
func dropCapabilities(keep uint64) error {
	last := proc.LastCap()
	for c := 0; c <= last; c++ {
		if c < 64 && keep&(1<<uint(c)) != 0 {
			continue
		}
		if err := prctlAllThreads(unix.PR_CAPBSET_DROP, uintptr(c)); err != nil && err != unix.EINVAL {
			return fmt.Errorf("dropping capability %d from the bounding set: %w", c, err)
		}
	}
	return nil
}

// prctlAllThreads applies a thread-scoped prctl (the capability bounding
// set, no_new_privs) to the calling thread: the container's first process
// runs locked to one thread, and that thread is the one that execs the
// payload (or the stub init), so it is the one whose settings count. (Go's
// AllThreadsSyscall would stop the world once per call: milliseconds for
// the ~25 capabilities dropped.)
func prctlAllThreads(option, arg uintptr) error {
	if _, _, e := syscall.RawSyscall(unix.SYS_PRCTL, option, arg, 0); e != 0 {
		return e
	}
	return nil
}
