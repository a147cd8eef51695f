// Package mountpoint makes the directories and empty files that mounts are
// placed on, in the container's tree or in a running machine.
package mountpoint

import (
	"fmt"
	"os"
	"path/filepath"
)

// Dir creates directory p and its parents.
func Dir(p string, mode os.FileMode) error {
	if err := os.MkdirAll(p, mode); err != nil {
		return fmt.Errorf("creating mount point %s: %w", p, err)
	}
	return nil
}

// File creates an empty file to bind a file onto, and its parents; an
// existing node of any kind is left as it is.
func File(p string) error {
	if _, err := os.Lstat(p); err == nil {
		return nil
	}
	if err := Dir(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("creating mount point %s: %w", p, err)
	}
	return f.Close()
}
