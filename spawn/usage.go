package spawn

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// MachineUsage is what a machine uses, from its cgroups.
type MachineUsage struct {
	MemoryBytes uint64 // current memory use; 0 when unknown
	CPUNanos    uint64 // CPU time used; 0 when unknown
	Processes   []Process
}

// Process is one process of a machine, for a tree view.
type Process struct {
	PID, PPID int
	Command   string
}

// ReadUsage reads a running machine's memory and CPU use and its processes from
// its cgroup v2 directory and, on hybrid hosts, the leader's v1 cgroups.
func ReadUsage(machine string, leader int) MachineUsage {
	var u MachineUsage
	if root := cgroup2Mount(); root != "" {
		dir := filepath.Join(root, MachineCgroupPath(machine))
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
	if u.MemoryBytes == 0 || u.CPUNanos == 0 {
		if paths, mounts, err := v1Cgroups(strconv.Itoa(leader)); err == nil {
			if mp, ok := mounts["memory"]; ok && u.MemoryBytes == 0 {
				u.MemoryBytes = readUint(filepath.Join(mp, paths["memory"], "memory.usage_in_bytes"))
			}
			if mp, ok := mounts["cpuacct"]; ok && u.CPUNanos == 0 {
				u.CPUNanos = readUint(filepath.Join(mp, paths["cpuacct"], "cpuacct.usage"))
			}
		}
	}
	for _, pid := range MachinePIDs(machine, leader) {
		p := Process{PID: pid}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			if i := strings.LastIndexByte(string(b), ')'); i > 0 {
				f := strings.Fields(string(b)[i+1:])
				if len(f) > 1 {
					p.PPID, _ = strconv.Atoi(f[1])
				}
			}
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil {
			p.Command = strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
		}
		u.Processes = append(u.Processes, p)
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

// ProcessTree renders processes as an indented tree, children under their
// parents, each level ordered by PID.
func ProcessTree(ps []Process) []string {
	byPID := map[int]bool{}
	kids := map[int][]Process{}
	for _, p := range ps {
		byPID[p.PID] = true
	}
	var roots []Process
	for _, p := range ps {
		if byPID[p.PPID] {
			kids[p.PPID] = append(kids[p.PPID], p)
		} else {
			roots = append(roots, p)
		}
	}
	var out []string
	var walk func(p Process, prefix string, last bool, top bool)
	walk = func(p Process, prefix string, last bool, top bool) {
		branch, next := "├─", prefix+"│ "
		if last {
			branch, next = "└─", prefix+"  "
		}
		if top {
			branch, next = "", prefix
		}
		out = append(out, fmt.Sprintf("%s%s%d %s", prefix, branch, p.PID, p.Command))
		c := kids[p.PID]
		sort.Slice(c, func(i, j int) bool { return c[i].PID < c[j].PID })
		for i, k := range c {
			walk(k, next, i == len(c)-1, false)
		}
	}
	sort.Slice(roots, func(i, j int) bool { return roots[i].PID < roots[j].PID })
	for _, r := range roots {
		walk(r, "", true, true)
	}
	return out
}
