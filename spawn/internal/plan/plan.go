// Package plan describes the system calls that build a container's file
// system view as data: a list of steps. The container's first process runs
// the list one of two ways: the re-executed netspawn runs it with Go (see
// spawn's runSteps), and the fast path's raw clone child (spawn/forkexec)
// runs it with raw system calls before its execve, without a Go runtime of
// its own. Both take the same list from the same builder, so the set of
// mounts cannot drift between them.
//
// This package is pure: it holds the steps and how a failed step is told
// to the user; it makes no system calls.
package plan

import (
	"fmt"
	"io/fs"
	"syscall"
)

// Kind is what a step does.
type Kind uint32

// The kinds of steps. The first group builds the file system view and is
// run by both executors; the second only by the raw child, for the rest of
// the container's set-up up to execve.
const (
	// Mount mounts Src on Path (type FSType, flags Flags, data Data).
	Mount Kind = iota + 1
	// ReadOnly makes the mount at Path read-only (recursively with
	// Recursive). Set and Clr, when non-zero, are mount_setattr(2)
	// attributes instead.
	ReadOnly
	// Mkdir makes directory Path (mode Mode), and its missing parents; an
	// existing directory is fine. (The raw child makes Path only: the
	// builders make parents first.)
	Mkdir
	// MkdirNew makes directory Path, which must not exist.
	MkdirNew
	// MkFile makes an empty file at Path to bind onto; an existing node
	// of any kind is left alone.
	MkFile
	// Mknod makes the character device Dev at Path (mode Mode); where the
	// kernel refuses, it binds Src (the host's node) on an empty file.
	// Mode may carry another file type (S_IFBLK, S_IFIFO). With Src empty
	// a refusal is an error. With Chown the node then gets the permission
	// bits of Mode exactly (whatever the umask) and the owner UID:GID
	// (either math.MaxUint32: unchanged).
	Mknod
	// Symlink makes Path a symbolic link to Src.
	Symlink
	// WriteFile writes Data to a new (or truncated) file Path, mode Mode.
	WriteFile
	// Sysfs mounts a sysfs on Path, read-only unless Writable; where the
	// kernel refuses a new one (EPERM: a user namespace without a network
	// namespace of its own), it binds the host's /sys instead.
	Sysfs
	// BindSocket enters directory Path, removes any Data there, binds the
	// AF_UNIX socket on descriptor Arg to the name Data, sets its mode to
	// Mode and closes Arg (the container's notification socket: the
	// parent keeps the receiving end).
	BindSocket

	// Gate waits until the parent writes a byte on descriptor Arg (EOF:
	// the parent is gone, and the child exits quietly).
	Gate
	// Sethostname sets the host name to Data.
	Sethostname
	// PivotRoot makes Path the root, detaches the old one and enters /.
	PivotRoot
	// FindExec resolves the payload (Data, as given) among Paths: with one
	// path (a name with a slash) it must exist and not be a directory;
	// otherwise the first regular file with an execute bit wins.
	FindExec
	// Chdir enters Path; with Fallback, "/" when Path is not a directory.
	Chdir
	// CapDrop drops capability Arg from the bounding set (EINVAL: the
	// kernel does not know it, fine).
	CapDrop
	// NoNewPrivs sets no_new_privs.
	NoNewPrivs
	// Umask sets the file mode creation mask to Mode.
	Umask
	// Seccomp installs the filter the parent left in the shared page.
	Seccomp
	// Creds sets the supplementary groups Groups, then (unless both are 0)
	// the group ID GID and user ID UID.
	Creds
	// Exec executes the program FindExec chose, with Argv and Env.
	Exec
	// Setrlimit sets resource limit Arg to Rlim (soft, hard).
	Setrlimit
	// Setns joins the namespace on descriptor Arg, of type Flags
	// (CLONE_NEWNET: the network namespace netspawn made and attached
	// before the clone).
	Setns
)

// Step is one system call (or a short fixed sequence of them).
type Step struct {
	Kind      Kind
	Path      string
	Src       string
	FSType    string
	Data      string
	Flags     uintptr // mount flags
	Recursive bool
	Set, Clr  uint64 // mount attributes (ReadOnly)
	Mode      uint32
	Dev       uint64
	Writable  bool
	Fallback  bool
	Arg       uintptr
	Paths     []string
	Argv, Env []string
	UID, GID  uint32
	Groups    []uint32
	Rlim      [2]uint64 // Setrlimit: soft and hard limit
	// Chown: see Mknod.
	Chown bool
	// IfExists skips the step unless Path exists.
	IfExists bool
	// IgnoreErr makes a failure of the step not a failure of the plan.
	IgnoreErr bool
	// AfterOK skips the step when the step before it failed (and was
	// ignored).
	AfterOK bool
	// Context, when set, prefixes the step's error ("--tmpfs=/x").
	Context string
}

// Report is what the raw child writes on its status pipe when a step
// fails: the step's index, the error number and, for Exec, the index in
// the FindExec step's Paths of the program it tried.
type Report struct {
	Step  uint32
	Errno uint32
	Aux   uint32
}

// Aux values of a FindExec failure.
const (
	AuxNotFound = 0 // no candidate (Errno: the stat's error for a single path)
	AuxIsDir    = 1 // the single candidate is a directory
)

// Err tells a failed step as the Go executor would, given the error number
// (errno) and, for FindExec and Exec, the report's Aux.
func (s *Step) Err(errno syscall.Errno, aux uint32) error {
	err := s.err(errno, aux)
	if s.Context != "" {
		return fmt.Errorf("%s: %w", s.Context, err)
	}
	return err
}

func (s *Step) err(errno syscall.Errno, aux uint32) error {
	switch s.Kind {
	case Mount:
		return MountErr(s.Src, s.Path, s.FSType, s.Flags, errno)
	case ReadOnly:
		return fmt.Errorf("making %s read-only: %w", s.Path, errno)
	case Mkdir, MkFile:
		return fmt.Errorf("creating mount point %s: %w", s.Path, errno)
	case MkdirNew, Symlink, WriteFile:
		return fmt.Errorf("creating %s: %w", s.Path, errno)
	case Mknod:
		return fmt.Errorf("creating device node %s: %w", s.Path, errno)
	case Sysfs:
		return fmt.Errorf("mounting sysfs on %s: %w", s.Path, errno)
	case BindSocket:
		return fmt.Errorf("binding the notification socket %s/%s: %w", s.Path, s.Data, errno)
	case Gate:
		return fmt.Errorf("waiting for the parent: %w", errno)
	case Sethostname:
		return fmt.Errorf("setting hostname %q: %w", s.Data, errno)
	case PivotRoot:
		return fmt.Errorf("pivot_root into %s: %w", s.Path, errno)
	case FindExec:
		if len(s.Paths) == 1 && s.Paths[0] == s.Data {
			if aux == AuxIsDir {
				return fmt.Errorf("command %s in the container is a directory", s.Data)
			}
			return fmt.Errorf("command %s not found in the container: %w", s.Data, &fs.PathError{Op: "stat", Path: s.Data, Err: errno})
		}
		return fmt.Errorf("command %q not found in the container (searched PATH=%s)", s.Data, s.Src)
	case Chdir:
		return fmt.Errorf("changing to working directory %s in the container: %w", s.Path, errno)
	case CapDrop:
		return fmt.Errorf("dropping capability %d from the bounding set: %w", s.Arg, errno)
	case NoNewPrivs:
		return fmt.Errorf("setting no_new_privs: %w", errno)
	case Umask:
		return fmt.Errorf("setting the umask: %w", errno)
	case Seccomp:
		if errno == syscall.EACCES {
			return fmt.Errorf("installing seccomp filter: %w (needs CAP_SYS_ADMIN or no_new_privs: install it before capabilities leave the effective set)", errno)
		}
		return fmt.Errorf("installing seccomp filter: %w", errno)
	case Creds:
		return fmt.Errorf("setting the payload's user and groups (uid %d, gid %d): %w", s.UID, s.GID, errno)
	case Exec:
		return fmt.Errorf("execv failed: %w", errno)
	case Setrlimit:
		return fmt.Errorf("failed to apply resource limit %d: %w", s.Arg, errno)
	case Setns:
		return fmt.Errorf("joining the container's network namespace: %w", errno)
	}
	return fmt.Errorf("container set-up step %d: %w", s.Kind, errno)
}

// MountErr is the error of a failed mount(2), as netspawn words it.
func MountErr(src, dst, fstype string, flags uintptr, err error) error {
	what := fstype
	if flags&msBind != 0 {
		what = "bind mount of " + src
	}
	return fmt.Errorf("mounting %s on %s: %w", what, dst, err)
}

const msBind = 0x1000 // MS_BIND
