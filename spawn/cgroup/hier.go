// Package cgroup is netspawn's one reader and writer of cgroups: a
// machine's cgroup (made directly, or as a transient systemd scope where
// systemd is PID 1), its limits, its usage and processes, and the removal
// of what a killed netspawn left. It works on pure cgroup v2 hosts and on
// hybrid ones (v1 controllers with the v2 hierarchy at
// /sys/fs/cgroup/unified).
//
// A machine's cgroups, as systemd-nspawn lays them out on the unified
// hierarchy:
//
//	machine.slice/machine-NAME.scope/            the machine (a systemd unit where systemd runs)
//	machine.slice/machine-NAME.scope/payload/    the container: its cgroup namespace's root
//	machine.slice/machine-NAME.scope/supervisor/ netspawn itself, where systemd made the scope
//
// NAME is escaped as systemd escapes unit names ("web-1" is "web\x2d1").
package cgroup

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Root is where the host's cgroup file systems are mounted.
var Root = "/sys/fs/cgroup"

// V2Root finds the host's cgroup v2 hierarchy, or "" when there is none:
// Root itself on pure v2 hosts, Root/unified on hybrid ones.
func V2Root() string {
	for _, p := range []string{Root, filepath.Join(Root, "unified")} {
		var st unix.Statfs_t
		if err := unix.Statfs(p, &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return p
		}
	}
	return ""
}

// UnitEscape escapes a string for a systemd unit name (unit_name_escape):
// letters, digits, ':', '_' and '.' stay (but a leading '.'), '/' becomes
// '-', everything else \xNN.
func UnitEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '/':
			b.WriteByte('-')
		case c == '.' && i == 0, !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ':' || c == '_' || c == '.'):
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// ScopeUnit is the systemd unit name of a machine, as machined names it.
func ScopeUnit(machine string) string { return "machine-" + UnitEscape(machine) + ".scope" }

// DefaultSlice is the slice machines go in unless -S names another.
const DefaultSlice = "machine.slice"

// SlicePath is the cgroup path of a slice unit relative to the hierarchy's
// root, as systemd nests slices by their '-'-separated prefixes:
// "a-b-c.slice" is "a.slice/a-b.slice/a-b-c.slice"; "-.slice" (the root
// slice) is "".
func SlicePath(slice string) string {
	prefix := strings.TrimSuffix(slice, ".slice")
	if prefix == "-" || prefix == "" {
		return ""
	}
	parts := strings.Split(prefix, "-")
	out := make([]string, len(parts))
	for i := range parts {
		out[i] = strings.Join(parts[:i+1], "-") + ".slice"
	}
	return strings.Join(out, "/")
}

// ScopePath is a machine's cgroup in the default slice, relative to the v2
// hierarchy's root.
func ScopePath(machine string) string { return ScopePathIn("", machine) }

// ScopePathIn is a machine's cgroup in slice ("": DefaultSlice), relative
// to a hierarchy's root.
func ScopePathIn(slice, machine string) string {
	if slice == "" {
		slice = DefaultSlice
	}
	return path.Join(SlicePath(slice), ScopeUnit(machine))
}

// PayloadPath is the container's own cgroup, relative to the v2 root.
func PayloadPath(machine string) string { return ScopePath(machine) + "/payload" }

// PayloadDir is the absolute v2 directory of a machine's container, or ""
// without a v2 hierarchy.
func PayloadDir(machine string) string {
	root := V2Root()
	if root == "" {
		return ""
	}
	return filepath.Join(root, PayloadPath(machine))
}

// Procs maps each hierarchy of a /proc/PID/cgroup file to the process's
// path in it: controller name for v1 ("cpu", "memory", "name=systemd"),
// "" for v2.
type Procs map[string]string

// ParseProcCgroup parses a /proc/PID/cgroup file.
func ParseProcCgroup(r io.Reader) Procs {
	m := Procs{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[1] == "" {
			m[""] = f[2]
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			m[c] = f[2]
		}
	}
	return m
}

// ProcCgroups reads the cgroups of process pid (0: this process).
func ProcCgroups(pid int) (Procs, error) {
	p := "/proc/self/cgroup"
	if pid > 0 {
		p = "/proc/" + strconv.Itoa(pid) + "/cgroup"
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseProcCgroup(f), nil
}

// Mounts maps each cgroup hierarchy the host mounts to its mount point:
// every v1 controller (and name=) option, "" for the v2 hierarchy.
type Mounts map[string]string

// mountsFrom picks the cgroup mounts out of mountinfo entries (the first
// mount of each hierarchy wins).
func mountsFrom(infos []*mountinfo.Info) Mounts {
	m := Mounts{}
	for _, mi := range infos {
		switch mi.FSType {
		case "cgroup2":
			if _, ok := m[""]; !ok {
				m[""] = mi.Mountpoint
			}
		case "cgroup":
			for _, opt := range strings.Split(mi.VFSOptions, ",") {
				if opt == "rw" || opt == "ro" {
					continue
				}
				if _, ok := m[opt]; !ok {
					m[opt] = mi.Mountpoint
				}
			}
		}
	}
	return m
}

// HostMounts reads this process's mount table for cgroup hierarchies.
func HostMounts() (Mounts, error) {
	infos, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		return nil, fmt.Errorf("reading the mount table: %w", err)
	}
	return mountsFrom(infos), nil
}

// v1Controllers are the cgroup v1 controllers a machine gets a cgroup in
// on hybrid hosts (where the host mounts them), so its limits can be set.
var v1Controllers = []string{"memory", "cpu", "pids"}

// v1Dirs returns, for each v1 controller the host mounts, the directory of
// the machine's cgroup: below the cgroup process pid (0: this one) is in,
// so the container stays within the limits its caller has.
func v1Dirs(pid int, slice, machine string) map[string]string {
	own, err := ProcCgroups(pid)
	if err != nil {
		return nil
	}
	mounts, err := HostMounts()
	if err != nil {
		return nil
	}
	dirs := map[string]string{}
	for _, ctrl := range v1Controllers {
		if mp, ok := mounts[ctrl]; ok {
			dirs[ctrl] = filepath.Join(mp, own[ctrl], ScopePathIn(slice, machine))
		}
	}
	return dirs
}

// HasController reports whether a v2 cgroup directory has a controller.
func HasController(dir, ctrl string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	return err == nil && strings.Contains(" "+strings.TrimSpace(string(b))+" ", " "+ctrl+" ")
}

// writeFile writes an existing cgroup interface file (never creating one:
// cgroupfs answers EACCES to that, which would hide a missing controller).
func writeFile(p, value string) error {
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// enableAll turns on in dir's children every controller dir has.
func enableAll(dir string) error {
	avail, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil || len(strings.TrimSpace(string(avail))) == 0 {
		return err
	}
	var req []string
	for _, c := range strings.Fields(string(avail)) {
		req = append(req, "+"+c)
	}
	return writeFile(filepath.Join(dir, "cgroup.subtree_control"), strings.Join(req, " "))
}
