package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// A machine's cgroups outlive a netspawn killed before netspawnd heard of
// the machine (a machine without networking registers in the background):
// nobody removes them. netspawnd, on hosts where systemd does not run the
// cgroups, looks for such stray scopes (StrayScopes) and removes those
// that are empty and that no netspawn holds (RemoveStray).

// Scope is a machine scope's cgroup directories: the v2 one and its copies
// in the v1 controller hierarchies (hybrid hosts).
type Scope struct {
	Unit string   // machine-NAME.scope (NAME escaped, see ScopeUnit)
	Rel  string   // the v2 directory relative to the hierarchy's root: SLICES/Unit
	V2   string   // the v2 directory, the one a netspawn locks
	V1   []string // the v1 directories with the same SLICES/Unit, below any cgroup
}

// Dirs is every directory of the scope, the v2 one first.
func (s Scope) Dirs() []string { return append([]string{s.V2}, s.V1...) }

// IsScopeUnit reports whether a cgroup directory's name is a machine
// scope's: machine-NAME.scope.
func IsScopeUnit(name string) bool {
	return len(name) > len("machine-.scope") && strings.HasPrefix(name, "machine-") && strings.HasSuffix(name, ".scope")
}

// maxV1Depth bounds the search for a machine's v1 cgroups, which netspawn
// makes below the v1 cgroup it runs in.
const maxV1Depth = 12

// StrayScopes finds the machine scopes of the v2 hierarchy (in the slices
// below its root, as netspawn makes them without systemd) of no machine in
// known (scope unit names, see ScopeUnit), each with its copies in the v1
// hierarchies of the controllers netspawn uses there: the candidates for
// RemoveStray.
func StrayScopes(known map[string]bool) ([]Scope, error) {
	root := V2Root()
	if root == "" {
		return nil, nil
	}
	mounts, err := HostMounts()
	if err != nil {
		return nil, err
	}
	var v1 []string
	for _, ctrl := range v1Controllers {
		if mp, ok := mounts[ctrl]; ok && !contains(v1, mp) {
			v1 = append(v1, mp)
		}
	}
	return findStrays(root, v1, known), nil
}

// findStrays is StrayScopes for a v2 hierarchy at v2root and v1 ones at
// v1roots: plain directory walks, so that tests can lay out a tree.
func findStrays(v2root string, v1roots []string, known map[string]bool) []Scope {
	var scopes []Scope
	var walk func(rel string, depth int)
	walk = func(rel string, depth int) {
		if depth > maxSliceDepth {
			return
		}
		ents, err := os.ReadDir(filepath.Join(v2root, rel))
		if err != nil {
			return
		}
		for _, e := range ents {
			switch n := e.Name(); {
			case !e.IsDir():
			case IsScopeUnit(n):
				if !known[n] {
					scopes = append(scopes, Scope{Unit: n, Rel: filepath.Join(rel, n), V2: filepath.Join(v2root, rel, n)})
				}
			case strings.HasSuffix(n, ".slice"):
				walk(filepath.Join(rel, n), depth+1)
			}
		}
	}
	walk("", 1)
	if len(scopes) == 0 {
		return nil
	}
	// The v1 copies, wherever the netspawn that made them ran: any
	// directory named as a scope whose path ends as the v2 one's does. The
	// insides of scopes (machines' own cgroups, other services') are not
	// searched.
	byRel := map[string]int{}
	for i, s := range scopes {
		byRel[s.Rel] = i
	}
	for _, mp := range v1roots {
		var walk1 func(dir string, depth int)
		walk1 = func(dir string, depth int) {
			if depth > maxV1Depth {
				return
			}
			ents, err := os.ReadDir(dir)
			if err != nil {
				return
			}
			for _, e := range ents {
				if !e.IsDir() {
					continue
				}
				p := filepath.Join(dir, e.Name())
				if !IsScopeUnit(e.Name()) {
					walk1(p, depth+1)
					continue
				}
				rel, _ := filepath.Rel(mp, p)
				for r, i := range byRel {
					if rel == r || strings.HasSuffix(rel, "/"+r) {
						scopes[i].V1 = append(scopes[i].V1, p)
					}
				}
			}
		}
		walk1(mp, 1)
	}
	sort.Slice(scopes, func(i, j int) bool { return scopes[i].Rel < scopes[j].Rel })
	return scopes
}

// StrayResult says what RemoveStray did.
type StrayResult int

const (
	StrayRemoved StrayResult = iota // every directory removed
	StrayHeld                       // a netspawn holds the scope: it is in use
	StrayBusy                       // processes in it (a machine without its netspawn), or made busy meanwhile
	StrayGone                       // removed by someone else meanwhile
)

func (r StrayResult) String() string {
	switch r {
	case StrayRemoved:
		return "removed"
	case StrayHeld:
		return "held by a netspawn"
	case StrayBusy:
		return "has processes"
	case StrayGone:
		return "gone"
	}
	return fmt.Sprintf("StrayResult(%d)", int(r))
}

// RemoveStray removes a scope's directories (and the sub-cgroups below
// them) when no netspawn holds it and no process is in any of them. It
// never waits for the lock a netspawn holds while its machine lives: with
// the lock taken exclusively, a netspawn making the scope right now waits
// for the removal and then makes its cgroups again (Create checks that the
// directory it locked is still the one at its path), as with
// RemoveUnlocked. The v1 copies are removed first, while the v2 lock is
// held: netspawn makes them only once it holds that lock.
func RemoveStray(s Scope) (StrayResult, error) {
	lock, err := lockNow(s.V2)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return StrayGone, nil
	case err != nil:
		return StrayHeld, fmt.Errorf("opening cgroup %s: %w", s.V2, err)
	case lock == nil:
		return StrayHeld, nil
	}
	defer lock.Close()
	// Only the directory locked: had it gone before the lock was taken,
	// the path may name a new machine's by now.
	if !sameDir(lock, s.V2) {
		return StrayGone, nil
	}
	if hasProcesses(s.Dirs()) {
		return StrayBusy, nil
	}
	// The v2 directory last: a scope left half removed is found again.
	for _, d := range append(append([]string{}, s.V1...), s.V2) {
		// Once: a cgroup that is busy now had a process moved in since
		// hasProcesses looked; the next sweep looks again.
		err := RemoveTree(d)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case errors.Is(err, unix.EBUSY):
			return StrayBusy, nil
		case err != nil:
			return StrayBusy, fmt.Errorf("removing cgroup %s: %w", d, err)
		}
	}
	return StrayRemoved, nil
}

// hasProcesses reports whether a process is in any of dirs or the
// sub-cgroups below them (their cgroup.procs).
func hasProcesses(dirs []string) bool {
	for _, d := range dirs {
		if len(pidsUnder(d)) > 0 {
			return true
		}
	}
	return false
}

// lockNow opens dir and locks it exclusively if no netspawn holds it
// (nil, nil when one does).
func lockNow(dir string) (*os.File, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		f.Close()
		return nil, nil
	}
	return f, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
