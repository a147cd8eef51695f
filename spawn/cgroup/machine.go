package cgroup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Options say how to make a machine's cgroup.
type Options struct {
	Machine string
	// Slice is the slice unit the machine's scope goes in (-S; "":
	// DefaultSlice).
	Slice string
	// V1 are the v1 controllers whose cgroups are made now, on hybrid
	// hosts (limits need them). Moving a process into a v1 cgroup waits for
	// an RCU grace period (10-20 ms), too much for every start; SetLimits
	// makes them later if asked.
	V1 []string
	// KeepUnit keeps the machine in the systemd unit netspawn runs in (as
	// systemd-nspawn --keep-unit does), which must be delegated.
	KeepUnit bool
	// Warn reports what does not stop the machine from running.
	Warn func(format string, args ...any)
}

// Machine is a machine's cgroup.
type Machine struct {
	Name    string
	Slice   string // the slice unit the scope is in ("": DefaultSlice)
	Scope   string // absolute v2 directory of the machine; "" when the host has none
	Payload string // absolute v2 directory of the container (Scope/payload)
	// Unit is the systemd unit the machine is (systemd removes its cgroup
	// once it is empty); "" when netspawn made the cgroup itself.
	Unit string
	// V1 holds the machine's cgroup in each v1 controller hierarchy made
	// (hybrid hosts).
	V1   map[string]string
	lock *os.File // the scope, flocked shared while netspawn lives
	dir  *os.File // the payload, for CLONE_INTO_CGROUP
}

// ErrRunning means a machine of that name already has a cgroup with
// processes.
var ErrRunning = errors.New("already running")

// Create makes a machine's cgroup: a transient systemd scope where systemd
// is PID 1 (netspawn moves into its supervisor cgroup, the container goes
// into payload), else the same directories made directly. Without a v2
// hierarchy the machine has none and the container runs in netspawn's.
func Create(ctx context.Context, o Options) (*Machine, error) {
	warn := o.Warn
	if warn == nil {
		warn = func(string, ...any) {}
	}
	m := &Machine{Name: o.Machine, Slice: o.Slice, V1: map[string]string{}}
	root := V2Root()
	if root == "" {
		return m, nil
	}
	var err error
	switch {
	case SystemdRunning() && o.KeepUnit:
		m.Scope, m.Unit, err = keptUnit(ctx, root)
		if err != nil {
			warn("--keep-unit: %v; the machine gets a scope of its own", err)
			m.Scope, m.Unit, err = systemdScope(ctx, root, o.Slice, o.Machine)
		}
	case SystemdRunning():
		m.Scope, m.Unit, err = systemdScope(ctx, root, o.Slice, o.Machine)
	}
	switch {
	case errors.Is(err, ErrRunning):
		return nil, fmt.Errorf("a machine named %q is already running (systemd has its unit %s); pick another name with -M", o.Machine, ScopeUnit(o.Machine))
	case err != nil:
		warn("%v; netspawn makes the machine's cgroup itself", err)
		m.Scope, m.Unit = "", ""
	}
	// netspawnd may be removing the cgroups of an earlier machine of this
	// name as they are made again here; it holds their locks while it does,
	// so once this netspawn has its own lock, the directories it locked
	// either are the ones at the paths or are gone: then make them again.
	for attempt := 1; ; attempt++ {
		made, err := m.make(root, warn)
		switch {
		case errors.Is(err, os.ErrNotExist) && attempt < 5:
			continue // removed under our feet before we held it
		case err != nil || made != m:
			return made, err
		}
		if m.locked() {
			break
		}
		m.lock.Close()
		if attempt == 5 {
			return nil, fmt.Errorf("cgroup %s was removed while it was being made, five times over (is something removing machine cgroups?)", m.Scope)
		}
	}
	if m.dir, err = os.Open(m.Payload); err != nil {
		m.lock.Close()
		return nil, fmt.Errorf("opening cgroup %s: %w", m.Payload, err)
	}
	m.makeV1(o.V1, warn)
	return m, nil
}

// make creates the scope (unless systemd made it) and the payload cgroup
// and takes the scope's shared lock. It returns m, or another Machine
// without cgroups where none can be made (the container runs in
// netspawn's), or an error.
func (m *Machine) make(root string, warn func(string, ...any)) (*Machine, error) {
	machine := m.Name
	if m.Unit == "" {
		m.Scope = filepath.Join(root, ScopePathIn(m.Slice, machine))
		if err := os.MkdirAll(m.Scope, 0o755); err != nil {
			// A read-only or delegated-elsewhere hierarchy: run without one.
			warn("cannot create cgroup %s (%v); the container runs in netspawn's cgroup", m.Scope, err)
			return &Machine{Name: machine, Slice: m.Slice}, nil
		}
		// Controllers down the path, for limits and for a booted systemd.
		cur := root
		for _, part := range strings.Split(ScopePathIn(m.Slice, machine), "/") {
			_ = enableAll(cur)
			cur = filepath.Join(cur, part)
		}
	} else if err := m.supervise(); err != nil {
		return nil, err
	}
	m.Payload = filepath.Join(m.Scope, "payload")
	if err := os.MkdirAll(m.Payload, 0o755); err != nil {
		return nil, fmt.Errorf("creating cgroup %s: %w", m.Payload, err)
	}
	if procs, err := os.ReadFile(filepath.Join(m.Payload, "cgroup.procs")); err == nil && len(strings.TrimSpace(string(procs))) > 0 {
		return nil, fmt.Errorf("a machine named %q is already running (its cgroup %s has processes); pick another name with -M", machine, m.Payload)
	}
	// The container's root (a booted systemd) manages the tree below.
	if err := enableAll(m.Scope); err != nil {
		warn("enabling controllers in %s: %v", m.Scope, err)
	}
	var err error
	if m.lock, err = os.Open(m.Scope); err != nil {
		return nil, fmt.Errorf("opening cgroup %s: %w", m.Scope, err)
	}
	// Tells netspawnd the machine's cgroups are in use, also between two
	// boots: it removes leftovers only once this netspawn is gone.
	_ = unix.Flock(int(m.lock.Fd()), unix.LOCK_SH)
	return m, nil
}

// locked reports whether the scope directory this netspawn holds the lock
// of is still the one at its path (netspawnd did not remove it first).
func (m *Machine) locked() bool {
	if !sameDir(m.lock, m.Scope) {
		return false
	}
	_, err := os.Stat(m.Payload)
	return err == nil
}

// supervise moves netspawn out of the scope's root into supervisor/: on the
// unified hierarchy only leaves hold processes once controllers are
// enabled for the children.
func (m *Machine) supervise() error {
	sup := filepath.Join(m.Scope, "supervisor")
	if err := os.MkdirAll(sup, 0o755); err != nil {
		return fmt.Errorf("creating cgroup %s: %w", sup, err)
	}
	if err := writeFile(filepath.Join(sup, "cgroup.procs"), strconv.Itoa(os.Getpid())); err != nil {
		return fmt.Errorf("moving netspawn into %s: %w", sup, err)
	}
	return nil
}

func (m *Machine) makeV1(ctrls []string, warn func(string, ...any)) {
	want := map[string]bool{}
	for _, c := range ctrls {
		want[c] = true
	}
	for ctrl, dir := range v1Dirs(0, m.Slice, m.Name) {
		if !want[ctrl] || HasController(m.Payload, ctrl) {
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			warn("cannot create %s cgroup %s (%v); its limits cannot be set", ctrl, dir, err)
			continue
		}
		m.V1[ctrl] = dir
	}
}

// FD is the payload cgroup's directory, to clone the container into; -1
// without one.
func (m *Machine) FD() int {
	if m == nil || m.dir == nil {
		return -1
	}
	return int(m.dir.Fd())
}

// AddProcess puts a process into the machine's v1 cgroups (it is cloned
// into the v2 one directly).
func (m *Machine) AddProcess(pid int) error {
	if m == nil {
		return nil
	}
	for ctrl, dir := range m.V1 {
		if err := writeFile(filepath.Join(dir, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("moving the container into its %s cgroup: %w", ctrl, err)
		}
	}
	return nil
}

// KillAll kills whatever is left in the container's cgroup once its PID 1 is
// gone (nothing, normally: the PID namespace ends with its init). It does
// not use cgroup.kill: after that, kernels up to at least 6.18 SIGKILL the
// next process cloned into the cgroup with CLONE_INTO_CGROUP (a reboot's
// new init).
func (m *Machine) KillAll() {
	if m == nil || m.Payload == "" {
		return
	}
	for _, pid := range pidsUnder(m.Payload) {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
}

// Remove deletes the machine's cgroups once the container is gone: the
// payload and the sub-cgroups a booted OS made, deepest first, retrying
// while the last processes are reaped; the scope too when netspawn made it
// (systemd removes its own scope when netspawn, in it, exits).
func (m *Machine) Remove(warn func(string, ...any)) {
	if m == nil || m.Scope == "" {
		return
	}
	dirs := m.V1
	for ctrl, dir := range v1Dirs(0, m.Slice, m.Name) {
		if _, ok := dirs[ctrl]; !ok {
			if _, err := os.Stat(dir); err == nil {
				dirs[ctrl] = dir
			}
		}
	}
	for _, dir := range dirs {
		for i := 0; i < 50 && unix.Rmdir(dir) == unix.EBUSY; i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}
	m.dir.Close()
	target := m.Scope
	if m.Unit != "" {
		target = m.Payload
	}
	// The container's last processes may take a while to be torn down on a
	// busy host: give them up to five seconds.
	for i := 0; i < 500; i++ {
		if err := RemoveTree(target); err == nil || errors.Is(err, os.ErrNotExist) {
			m.lock.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	m.lock.Close()
	if warn != nil {
		warn("could not remove cgroup %s", target)
	}
}

// RemoveTree removes a cgroup directory and the sub-cgroups below it,
// deepest first (cgroup directories go with rmdir, never by deleting their
// interface files).
func RemoveTree(p string) error {
	entries, err := os.ReadDir(p)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := RemoveTree(filepath.Join(p, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	return unix.Rmdir(p)
}

// pidsUnder lists the processes of a cgroup and its sub-cgroups.
func pidsUnder(dir string) []int {
	var pids []int
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
			return nil
		}
		b, _ := os.ReadFile(p)
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				pids = append(pids, n)
			}
		}
		return nil
	})
	return pids
}
