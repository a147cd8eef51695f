package netctl

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/netspawn/netspawn/internal/cgroupfs"

	"golang.org/x/sys/unix"
)

// machineCgroups finds the cgroup directories netspawn made for a machine,
// from its leader's /proc/PID/cgroup: in each hierarchy, the ancestor named
// machine-NAME.scope. The controller removes them once the leader is gone,
// so a netspawn that was killed leaves no empty cgroups behind.
func machineCgroups(pid int, name string) []string {
	pc, err := os.Open("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return nil
	}
	defer pc.Close()
	mi, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer mi.Close()
	return scopeDirs(pc, mi, "machine-"+name+".scope")
}

// scopeDirs is machineCgroups' pure part.
func scopeDirs(procCgroup, mountinfo io.Reader, scope string) []string {
	mounts := map[string]string{} // controller list ("" for v2) -> mount point
	sc := bufio.NewScanner(mountinfo)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 {
			continue
		}
		switch qf[0] {
		case "cgroup2":
			if _, ok := mounts[""]; !ok {
				mounts[""] = pf[4]
			}
		case "cgroup":
			for _, opt := range strings.Split(qf[2], ",") {
				if opt != "rw" && opt != "ro" {
					mounts[opt] = pf[4]
				}
			}
		}
	}
	var dirs []string
	sc = bufio.NewScanner(procCgroup)
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), ":", 3)
		if len(f) != 3 {
			continue
		}
		ctrl := f[1]
		if i := strings.IndexByte(ctrl, ','); i >= 0 {
			ctrl = ctrl[:i]
		}
		mp, ok := mounts[ctrl]
		if !ok {
			continue
		}
		i := strings.Index(f[2]+"/", "/"+scope+"/")
		if i < 0 {
			continue
		}
		dirs = append(dirs, filepath.Join(mp, f[2][:i+1+len(scope)]))
	}
	return dirs
}

// removeCgroups removes cgroup directories (and sub-cgroups a booted OS
// made), deepest first, once their netspawn is gone: a running netspawn
// holds a shared flock on its machine's v2 cgroup directory (it may be
// between two boots of the container), so the set is left alone while that
// lock is held. Busy cgroups are left alone too.
func removeCgroups(dirs []string) {
	for _, d := range dirs {
		f, err := os.Open(d)
		if err != nil {
			continue
		}
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		f.Close()
		if err != nil {
			return // held by its netspawn
		}
	}
	for _, d := range dirs {
		_ = cgroupfs.RemoveTree(d)
	}
}
