package spawn

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/netspawn/netspawn/internal/cgroupfs"

	"golang.org/x/sys/unix"
)

// CgroupRoot is where the host's cgroup file systems are mounted.
var CgroupRoot = "/sys/fs/cgroup"

// machineCgroup is the container's cgroup in the host's cgroup v2 hierarchy:
// the container's first process is cloned straight into it, it becomes the
// root of the container's cgroup namespace, and a booted systemd manages
// the tree below it. Hosts with only cgroup v1 get no cgroup (and -b says
// so); hybrid hosts use their v2 hierarchy (/sys/fs/cgroup/unified).
type machineCgroup struct {
	path string // absolute path of the cgroup directory; "" when none
	dir  *os.File
	// v1 holds the machine's cgroup in each cgroup v1 controller hierarchy
	// the host mounts (hybrid hosts), for resource limits.
	v1      map[string]string
	machine string
}

// cgroup2Mount finds the host's cgroup v2 hierarchy, or "".
func cgroup2Mount() string {
	for _, p := range []string{CgroupRoot, filepath.Join(CgroupRoot, "unified")} {
		var st unix.Statfs_t
		if err := unix.Statfs(p, &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return p
		}
	}
	return ""
}

// MachineCgroupPath is the cgroup (relative to the v2 hierarchy) of a machine.
func MachineCgroupPath(machine string) string {
	return "machine.slice/machine-" + strings.ReplaceAll(machine, "/", "_") + ".scope"
}

// newMachineCgroup makes the machine's cgroup. v1 cgroups (hybrid hosts)
// are made only when limits need them now (v1Limits): moving a process into
// a v1 cgroup waits for an RCU grace period (10-20 ms on an idle machine),
// too much for every start; set-property makes them later if asked.
func newMachineCgroup(machine string, quiet bool, v1Limits map[string]map[string]string) (*machineCgroup, error) {
	root := cgroup2Mount()
	if root == "" {
		return &machineCgroup{}, nil
	}
	p := filepath.Join(root, MachineCgroupPath(machine))
	if err := os.MkdirAll(p, 0o755); err != nil {
		// A read-only or delegated-elsewhere hierarchy: run without one.
		warnf(quiet, "cannot create cgroup %s (%v); the container runs in netspawn's cgroup", p, err)
		return &machineCgroup{}, nil
	}
	if procs, err := os.ReadFile(filepath.Join(p, "cgroup.procs")); err == nil && len(strings.TrimSpace(string(procs))) > 0 {
		return nil, fmt.Errorf("a machine named %q is already running (its cgroup %s has processes); pick another name with -M", machine, p)
	}
	// A booted systemd manages the tree below: hand it the controllers its
	// parent can give (pure cgroup v2 hosts; none on hybrid hosts).
	enableControllers(root, MachineCgroupPath(machine))
	d, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("opening cgroup %s: %w", p, err)
	}
	// Tell netspawnd this machine's cgroups are in use (also between two
	// boots), so it only removes them once this netspawn is gone.
	_ = unix.Flock(int(d.Fd()), unix.LOCK_SH)
	cg := &machineCgroup{path: p, dir: d, v1: map[string]string{}}
	cg.machine = machine
	for ctrl, dir := range v1MachineDirs(machine) {
		if _, wanted := v1Limits[ctrl]; !wanted || v2HasController(p, ctrl) {
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			warnf(quiet, "cannot create %s cgroup %s (%v); its limits cannot be set", ctrl, dir, err)
			continue
		}
		cg.v1[ctrl] = dir
	}
	return cg, nil
}

// addProcess puts a process into the machine's v1 cgroups (the v2 one it is
// cloned into directly).
func (c *machineCgroup) addProcess(pid int) error {
	if c == nil {
		return nil
	}
	for ctrl, dir := range c.v1 {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("moving the container into its %s cgroup: %w", ctrl, err)
		}
	}
	return nil
}

// enableControllers turns on, down the path from the hierarchy's root, every
// controller each level has available.
func enableControllers(root, rel string) {
	cur := root
	for _, part := range strings.Split(rel, "/") {
		avail, err := os.ReadFile(filepath.Join(cur, "cgroup.controllers"))
		if err == nil && len(strings.TrimSpace(string(avail))) > 0 {
			var req []string
			for _, c := range strings.Fields(string(avail)) {
				req = append(req, "+"+c)
			}
			_ = os.WriteFile(filepath.Join(cur, "cgroup.subtree_control"), []byte(strings.Join(req, " ")), 0)
		}
		cur = filepath.Join(cur, part)
	}
}

func (c *machineCgroup) fd() int {
	if c == nil || c.dir == nil {
		return -1
	}
	return int(c.dir.Fd())
}

// containerMode says how the container sees /sys/fs/cgroup: writable for a
// booted OS, read-only for a command.
func (c *machineCgroup) containerMode(boot bool) string {
	if c == nil || c.path == "" {
		return ""
	}
	if boot {
		return "rw"
	}
	return "ro"
}

// killAll kills whatever is left in the cgroup once PID 1 is gone (nothing,
// normally: the PID namespace ends with its init). It does not use
// cgroup.kill: after that, kernels up to at least 6.18 SIGKILL the next
// process cloned into the cgroup with CLONE_INTO_CGROUP (a reboot's new init).
func (c *machineCgroup) killAll() {
	if c == nil || c.path == "" {
		return
	}
	procs, _ := os.ReadFile(filepath.Join(c.path, "cgroup.procs"))
	for _, f := range strings.Fields(string(procs)) {
		if pid, err := strconv.Atoi(f); err == nil {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// remove deletes the cgroup and the sub-cgroups a booted OS made, deepest
// first, retrying briefly while the last processes are reaped.
func (c *machineCgroup) remove() {
	if c == nil || c.path == "" {
		return
	}
	// Also the v1 cgroups set-property may have made while it ran.
	dirs := c.v1
	for ctrl, dir := range v1MachineDirs(c.machine) {
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
	c.dir.Close()
	// The container's last processes may take a while to be torn down on a
	// busy host: give them up to five seconds, then the cgroup goes.
	for i := 0; i < 500; i++ {
		if err := cgroupfs.RemoveTree(c.path); err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	warnf(false, "could not remove cgroup %s", c.path)
}
