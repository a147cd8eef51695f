// Package cgroupfs holds the small cgroup file-system operations both the
// container runtime (spawn) and the controller (netctl) need.
package cgroupfs

import (
	"errors"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// RemoveTree removes a cgroup directory and the sub-cgroups below it,
// deepest first (cgroup directories are removed with rmdir, never by
// deleting their interface files).
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
