package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// PayloadOf finds a running machine's container cgroup from its leader: the
// ancestor named payload of the leader's v2 cgroup (a booted init moves
// itself below it, into init.scope), else the leader's cgroup itself.
func PayloadOf(leader int) (string, error) {
	root := V2Root()
	if root == "" {
		return "", errors.New("the host has no cgroup v2 hierarchy")
	}
	procs, err := ProcCgroups(leader)
	if err != nil {
		return "", err
	}
	p, ok := procs[""]
	if !ok {
		return "", fmt.Errorf("PID %d is in no v2 cgroup", leader)
	}
	if i := strings.Index(p+"/", "/payload/"); i >= 0 {
		p = p[:i+len("/payload")]
	}
	return filepath.Join(root, p), nil
}

// PIDs lists every process of a machine, from its container cgroup; the
// leader alone when there is none.
func PIDs(leader int) []int {
	if dir, err := PayloadOf(leader); err == nil {
		if pids := pidsUnder(dir); len(pids) > 0 {
			return pids
		}
	}
	return []int{leader}
}

// Usage is what a machine uses.
type Usage struct {
	MemoryBytes uint64 // current memory use; 0 when unknown
	CPUNanos    uint64 // CPU time used; 0 when unknown
}

// ReadUsage reads a running machine's memory and CPU use from its v2
// container cgroup or, on hybrid hosts, the leader's v1 cgroups.
func ReadUsage(leader int) Usage {
	var u Usage
	if dir, err := PayloadOf(leader); err == nil {
		u.MemoryBytes = readUint(filepath.Join(dir, "memory.current"))
		if b, err := os.ReadFile(filepath.Join(dir, "cpu.stat")); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, "usage_usec "); ok {
					n, _ := strconv.ParseUint(v, 10, 64)
					u.CPUNanos = n * 1000
				}
			}
		}
	}
	if u.MemoryBytes != 0 && u.CPUNanos != 0 {
		return u
	}
	paths, err := ProcCgroups(leader)
	if err != nil {
		return u
	}
	mounts, err := HostMounts()
	if err != nil {
		return u
	}
	if mp, ok := mounts["memory"]; ok && u.MemoryBytes == 0 {
		u.MemoryBytes = readUint(filepath.Join(mp, paths["memory"], "memory.usage_in_bytes"))
	}
	if mp, ok := mounts["cpuacct"]; ok && u.CPUNanos == 0 {
		u.CPUNanos = readUint(filepath.Join(mp, paths["cpuacct"], "cpuacct.usage"))
	}
	return u
}

func readUint(p string) uint64 {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// Apply writes limits into a machine's cgroups: v2Files into its v2
// container cgroup, v1Files (controller -> file -> value) into its v1
// cgroups. Settings whose controller the host lacks are named in the
// error, after the others were applied.
func Apply(v2dir string, v1dirs map[string]string, v2Files map[string]string, v1Files map[string]map[string]string) error {
	if v2dir != "" {
		for _, f := range sortedKeys(v2Files) {
			if err := writeFile(filepath.Join(v2dir, f), v2Files[f]); err != nil {
				if errors.Is(err, os.ErrNotExist) {
					continue // not enabled in v2 here: maybe in v1
				}
				return fmt.Errorf("setting %s=%s: %w", f, v2Files[f], err)
			}
		}
	}
	var missing []string
	for _, ctrl := range sortedKeys(v1Files) {
		files := v1Files[ctrl]
		dir, ok := v1dirs[ctrl]
		if !ok {
			if v2dir == "" || !HasController(v2dir, ctrl) {
				missing = append(missing, ctrl)
			}
			continue
		}
		for _, f := range sortedKeys(files) {
			if err := writeFile(filepath.Join(dir, f), files[f]); err != nil {
				return fmt.Errorf("setting %s=%s in %s: %w", f, files[f], dir, err)
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("this host has no %s controller for the machine's cgroup: those limits are not applied", strings.Join(missing, ", "))
	}
	return nil
}

// ApplyTo writes limits into a machine's own cgroups (see Apply).
func (m *Machine) ApplyTo(v2Files map[string]string, v1Files map[string]map[string]string) error {
	if m == nil {
		return nil
	}
	return Apply(m.Payload, m.V1, v2Files, v1Files)
}

// SetLimits applies limits to a running machine: its v2 container cgroup
// and, on hybrid hosts, v1 cgroups of its own, made (and the machine's
// processes moved in) the first time a v1 limit is set.
func SetLimits(machine string, leader int, v2Files map[string]string, v1Files map[string]map[string]string) error {
	v2dir, err := PayloadOf(leader)
	if err != nil {
		v2dir = ""
	} else if _, err := os.Stat(v2dir); err != nil {
		v2dir = ""
	}
	paths, err := ProcCgroups(leader)
	if err != nil {
		return fmt.Errorf("machine %s: %w", machine, err)
	}
	mounts, err := HostMounts()
	if err != nil {
		return err
	}
	v1 := map[string]string{}
	scope := ScopePath(machine)
	for ctrl := range v1Files {
		mp, ok := mounts[ctrl]
		if !ok || (v2dir != "" && HasController(v2dir, ctrl)) {
			continue
		}
		cur := paths[ctrl]
		if strings.HasSuffix(cur, "/"+ScopeUnit(machine)) { // in its own, whatever its slice
			v1[ctrl] = filepath.Join(mp, cur)
			continue
		}
		// Not in a v1 cgroup of its own yet: make one below the one it is in
		// (its netspawn's) and move every process of the machine there.
		dir := filepath.Join(mp, cur, scope)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("creating %s cgroup %s: %w", ctrl, dir, err)
		}
		for pass := 0; pass < 2; pass++ { // twice: catch what forked meanwhile
			for _, pid := range PIDs(leader) {
				_ = writeFile(filepath.Join(dir, "cgroup.procs"), strconv.Itoa(pid))
			}
		}
		v1[ctrl] = dir
	}
	return Apply(v2dir, v1, v2Files, v1Files)
}

// Populated reports whether a machine's cgroup has processes, in
// machine.slice or in the slice it was started in (-S).
func Populated(machine string) bool {
	root := V2Root()
	if root == "" {
		return false
	}
	return populatedIn(root, machine)
}

// maxSliceDepth bounds the search for a machine's scope below the root:
// slices nest by their name's '-'-separated parts.
const maxSliceDepth = 6

// populatedIn is Populated for the hierarchy at root: the default slice
// first, then any slice directory (a *.slice) down to maxSliceDepth.
func populatedIn(root, machine string) bool {
	populated := func(dir string) bool {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
		return err == nil && strings.Contains(string(b), "populated 1")
	}
	if populated(filepath.Join(root, ScopePath(machine))) {
		return true
	}
	scope := ScopeUnit(machine)
	var walk func(dir string, depth int) bool
	walk = func(dir string, depth int) bool {
		if depth > maxSliceDepth {
			return false
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			return false
		}
		for _, e := range ents {
			if !e.IsDir() {
				continue
			}
			switch n := e.Name(); {
			case n == scope:
				if populated(filepath.Join(dir, n)) {
					return true
				}
			case strings.HasSuffix(n, ".slice"):
				if walk(filepath.Join(dir, n), depth+1) {
					return true
				}
			}
		}
		return false
	}
	return walk(root, 1)
}

// Leftovers finds the cgroup directories netspawn made for a machine, from
// its leader's /proc/PID/cgroup: in each hierarchy, the ancestor named as
// the machine's scope.
func Leftovers(leader int, machine string) []string {
	procs, err := ProcCgroups(leader)
	if err != nil {
		return nil
	}
	mounts, err := HostMounts()
	if err != nil {
		return nil
	}
	return scopeDirs(procs, mounts, ScopeUnit(machine))
}

// scopeDirs is Leftovers' pure part.
func scopeDirs(procs Procs, mounts Mounts, scope string) []string {
	var dirs []string
	for _, h := range sortedKeys(procs) {
		mp, ok := mounts[h]
		if !ok {
			continue
		}
		p := procs[h]
		i := strings.Index(p+"/", "/"+scope+"/")
		if i < 0 {
			continue
		}
		dirs = append(dirs, filepath.Join(mp, p[:i+1+len(scope)]))
	}
	return dirs
}

// RemoveUnlocked removes a dead machine's cgroup directories (and the
// sub-cgroups a booted OS made), deepest first. A running netspawn holds
// a shared flock on its machine's v2 scope (it may be between two boots of
// the container), so the set is left alone while that lock is held; a
// cgroup still busy after five seconds is left alone too. The exclusive locks are held while the
// directories go, so a netspawn starting a machine of the same name waits
// for the removal to end, then finds its new directories (Create checks
// that what it locked is still there).
// A lock still held after wait is a live netspawn's; a killed netspawn's
// may outlive it by a moment (its descriptors go after its container's
// leader), so netspawnd, which calls this when it sees the leader die,
// gives it a few seconds.
func RemoveUnlocked(dirs []string, wait time.Duration) {
	var held []*os.File
	defer func() {
		for _, f := range held {
			f.Close()
		}
	}()
	for _, d := range dirs {
		f, err := os.Open(d)
		if err != nil {
			continue // gone already; one made again from now on is not ours
		}
		held = append(held, f)
		deadline := time.Now().Add(wait)
		for unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
			if time.Now().After(deadline) {
				return // held by its netspawn
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, f := range held {
		// Only the directory locked: had it gone before the lock was
		// taken, the path may name a new machine's by now. A machine's
		// last processes may still be exiting when its leader's death is
		// seen (the cgroup stays populated until they are released): up
		// to five seconds for them, as netspawn gives its own.
		for i := 0; i < 500 && sameDir(f, f.Name()); i++ {
			if err := RemoveTree(f.Name()); !errors.Is(err, unix.EBUSY) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// sameDir reports whether path still names the directory open as f.
func sameDir(f *os.File, path string) bool {
	var held, now unix.Stat_t
	if unix.Fstat(int(f.Fd()), &held) != nil || unix.Stat(path, &now) != nil {
		return false
	}
	return held.Dev == now.Dev && held.Ino == now.Ino
}

func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for f := range m {
		k = append(k, f)
	}
	sort.Strings(k)
	return k
}
