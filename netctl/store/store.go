// Package store writes and reads small JSON state files crash-safely: the
// new content goes to a temporary file in the same directory, is fsynced,
// renamed over the old file, and the directory is fsynced, so a reader sees
// either the old or the new state, never a torn one.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/netspawn/netspawn/internal/atomicfile"
	"golang.org/x/sys/unix"
)

// WriteJSON atomically replaces path with the JSON encoding of v (mode
// 0600), durably (see WriteFile).
func WriteJSON(path string, v any) error {
	return writeJSON(path, v, true)
}

// WriteJSONNoSync is WriteJSON without the fsyncs: the replacement is still
// atomic and survives a crash of the process (the page cache keeps it), but
// not necessarily a power loss. For runtime state on tmpfs, and for state
// whose durability is batched with Syncfs.
func WriteJSONNoSync(path string, v any) error {
	return writeJSON(path, v, false)
}

func writeJSON(path string, v any, sync bool) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return writeFile(path, append(data, '\n'), sync)
}

// WriteFile atomically and durably replaces path with data (mode 0600): a
// temporary file is written and fsynced, renamed over path, and the
// directory fsynced.
func WriteFile(path string, data []byte) error { return writeFile(path, data, true) }

// Syncfs flushes the filesystem holding dir (one call makes every earlier
// WriteJSONNoSync in it durable).
func Syncfs(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("syncfs %s: %w", dir, err)
	}
	return nil
}

func writeFile(path string, data []byte, sync bool) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	if sync {
		return atomicfile.WriteFile(path, data, 0o600)
	}
	return atomicfile.WriteFileNoSync(path, data, 0o600)
}

// ReadJSON decodes path into v. A missing file is not an error: it returns
// false and leaves v untouched.
func ReadJSON(path string, v any) (bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("decode %s: %w", path, err)
	}
	return true, nil
}
