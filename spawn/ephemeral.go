package spawn

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/netspawn/netspawn/internal/btrfs"
	"github.com/netspawn/netspawn/internal/treecopy"
	"golang.org/x/sys/unix"
)

// tmpBase is where a run keeps its temporary upper layers. Each run has a
// directory there holding a lock for as long as netspawn runs; a directory
// whose lock nobody holds belongs to a netspawn that was killed, and the
// next run removes it (with what its "extra" file lists: work directories
// and snapshots made outside it).
func tmpBase() string {
	if d := os.Getenv("NETSPAWN_TMPDIR"); d != "" {
		return d
	}
	return "/var/tmp/netspawn"
}

type runDir struct {
	path string
	lock *os.File
}

func newRunDir() (*runDir, error) {
	base := tmpBase()
	// Reachable (not listable) for a container's root in a user namespace.
	if err := os.MkdirAll(base, 0o711); err != nil {
		return nil, fmt.Errorf("creating %s: %w", base, err)
	}
	p, err := os.MkdirTemp(base, "run-")
	if err != nil {
		return nil, fmt.Errorf("creating a temporary directory in %s: %w", base, err)
	}
	if err := os.Chmod(p, 0o711); err != nil {
		os.RemoveAll(p)
		return nil, fmt.Errorf("creating a temporary directory in %s: %w", base, err)
	}
	f, err := os.OpenFile(filepath.Join(p, ".lock"), os.O_CREATE|os.O_RDWR|syscall.O_CLOEXEC, 0o600)
	if err == nil {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	}
	if err != nil {
		os.RemoveAll(p)
		return nil, fmt.Errorf("locking %s: %w", p, err)
	}
	return &runDir{path: p, lock: f}, nil
}

// mkdir makes a fresh subdirectory.
func (r *runDir) mkdir(prefix string) (string, error) {
	d, err := os.MkdirTemp(r.path, prefix+"-")
	if err != nil {
		return "", fmt.Errorf("creating temporary directory: %w", err)
	}
	return d, nil
}

// note records a path outside the run directory that a reaper must remove
// if this run cannot ("subvol:" prefix: a btrfs snapshot).
func (r *runDir) note(p string) {
	f, err := os.OpenFile(filepath.Join(r.path, "extra"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return
	}
	fmt.Fprintln(f, p)
	f.Sync()
	f.Close()
}

func (r *runDir) remove() {
	removeRunDir(r.path)
	r.lock.Close()
}

func removeRunDir(p string) {
	if b, err := os.ReadFile(filepath.Join(p, "extra")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			switch {
			case line == "":
			case strings.HasPrefix(line, "subvol:"):
				_ = btrfs.DeleteSubvolume(strings.TrimPrefix(line, "subvol:"))
			default:
				_ = os.RemoveAll(line)
			}
		}
	}
	_ = os.RemoveAll(p)
}

// reapStaleRunDirs removes what killed netspawns left behind.
func reapStaleRunDirs() {
	base := tmpBase()
	ents, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "run-") {
			continue
		}
		p := filepath.Join(base, e.Name())
		f, err := os.OpenFile(filepath.Join(p, ".lock"), os.O_RDWR|syscall.O_CLOEXEC, 0)
		if err != nil {
			// Being created right now, or broken: leave it unless it has no lock file at all.
			if errors.Is(err, os.ErrNotExist) {
				if st, serr := os.Stat(p); serr == nil && st.ModTime().Unix() < nowUnix()-3600 {
					removeRunDir(p)
				}
			}
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			removeRunDir(p)
		}
		f.Close()
	}
}

func nowUnix() int64 {
	var tv unix.Timeval
	_ = unix.Gettimeofday(&tv)
	return tv.Sec
}

// snapshotName is where -x puts the snapshot of dir: next to it, as
// .#machine.BASENAME<16 hex digits>, as nspawn names it.
func snapshotName(dir, random string) string {
	return filepath.Join(filepath.Dir(dir), ".#machine."+filepath.Base(dir)+random)
}

// snapshotEphemeral snapshots the subvolume tree for a -x run; the
// snapshot is deleted on exit (or by the next run's reaper).
func (s *storageState) snapshotEphemeral(tree string) (string, error) {
	snap := snapshotName(tree, randomHex(8))
	s.runDir.note("subvol:" + snap)
	if err := btrfs.Snapshot(tree, snap); err != nil {
		return "", fmt.Errorf("--ephemeral: %w", err)
	}
	s.cleanups = append(s.cleanups, func() { _ = btrfs.DeleteSubvolume(snap) })
	return snap, nil
}

// --- --template ----------------------------------------------------------

// applyTemplate creates dir from template if dir does not exist yet: a
// btrfs snapshot where both are on btrfs, a (reflink where possible) copy
// otherwise. The copy is made under a temporary name and renamed into
// place, so a failure leaves no half-made tree.
func applyTemplate(template, dir string) error {
	if dir == "" {
		return errors.New("--template= needs -D DIRECTORY")
	}
	if _, err := os.Lstat(dir); err == nil {
		return nil // exists: the template is not used
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("directory %s: %w", dir, err)
	}
	st, err := os.Stat(template)
	if err != nil {
		return fmt.Errorf("--template=%s: %w", template, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("--template=%s is not a directory", template)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(dir), err)
	}
	if btrfs.IsSubvolume(template) {
		if err := btrfs.Snapshot(template, dir); err == nil {
			return nil
		}
		// Different file systems: copy instead.
	}
	tmp := filepath.Join(filepath.Dir(dir), ".#"+filepath.Base(dir)+".netspawn-template-"+randomHex(4))
	if err := treecopy.Copy(context.Background(), template, tmp, nil); err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("--template: copying %s to %s: %w", template, dir, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("--template: %w", err)
	}
	return nil
}
