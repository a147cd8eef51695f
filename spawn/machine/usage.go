package machine

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/netspawn/netspawn/spawn/cgroup"
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

// ReadUsage reads a running machine's memory and CPU use and its processes
// from its cgroups.
func ReadUsage(leader int) MachineUsage {
	cu := cgroup.ReadUsage(leader)
	u := MachineUsage{MemoryBytes: cu.MemoryBytes, CPUNanos: cu.CPUNanos}
	for _, pid := range cgroup.PIDs(leader) {
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
