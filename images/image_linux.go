package images

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/netspawn/netspawn/internal/btrfs"
	"github.com/netspawn/netspawn/internal/treecopy"
	"golang.org/x/sys/unix"
)

// Image types, as machinectl names them.
const (
	TypeDirectory = "directory"
	TypeSubvolume = "subvolume"
	TypeRaw       = "raw"
)

// ErrNotFound is returned for a name no image directory holds.
var ErrNotFound = errors.New("no such image")

// Image is one machine image.
type Image struct {
	Name     string    `json:"name"`
	Path     string    `json:"path"`
	Type     string    `json:"type"`
	ReadOnly bool      `json:"read_only"`
	Usage    int64     `json:"usage"` // bytes on disk; -1 when not measured
	Created  time.Time `json:"created,omitzero"`
	Modified time.Time `json:"modified,omitzero"`
	OS       string    `json:"os,omitempty"`
	Settings string    `json:"settings,omitempty"` // NAME.nspawn beside the image
}

// Busy tells whether a running machine uses the image, and its name.
type Busy func(ctx context.Context, img *Image) (machine string, err error)

// Store is a set of image directories; the first receives new images.
type Store struct {
	Dirs []string
	// Busy, when set, guards remove and rename against running machines.
	Busy Busy
	// Progress, when set, makes progress bars for long copies.
	Progress ProgressFunc
}

// NewStore uses Dirs(os.Getenv).
func NewStore() *Store { return &Store{Dirs: Dirs(os.Getenv)} }

func (s *Store) writable() string { return s.Dirs[0] }

// inspect builds an Image for path, or returns nil for entries that are
// not images (settings files, temporaries, other files).
func inspect(dir, entry string, writable bool) *Image {
	if strings.HasPrefix(entry, ".#") {
		return nil
	}
	p := filepath.Join(dir, entry)
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return nil
	}
	img := &Image{Path: p, Usage: -1, Modified: time.Unix(st.Mtim.Unix())}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		img.Name = entry
		img.Type = TypeDirectory
		if btrfs.IsSubvolume(p) {
			img.Type = TypeSubvolume
		}
	case unix.S_IFREG:
		if !strings.HasSuffix(entry, ".raw") {
			return nil
		}
		img.Name = strings.TrimSuffix(entry, ".raw")
		img.Type = TypeRaw
	default:
		return nil
	}
	if CheckName(img.Name) != nil {
		return nil
	}
	if sec, nsec, ok := birthTime(p); ok {
		img.Created = time.Unix(sec, nsec)
	}
	img.ReadOnly = readOnly(img, &st) || (!writable && strings.HasPrefix(p, "/usr/"))
	if sp := filepath.Join(dir, img.Name+".nspawn"); fileExists(sp) {
		img.Settings = sp
	}
	return img
}

func readOnly(img *Image, st *unix.Stat_t) bool {
	switch img.Type {
	case TypeSubvolume:
		if ro, err := btrfs.ReadOnly(img.Path); err == nil && ro {
			return true
		}
	case TypeRaw:
		if st.Mode&0o222 == 0 {
			return true
		}
	}
	return immutable(img.Path)
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// List returns the images, first directory winning on equal names, sorted
// by name; hidden (dot) images only with all.
func (s *Store) List(all bool) ([]Image, error) {
	seen := map[string]bool{}
	var out []Image
	for i, d := range s.Dirs {
		entries, err := os.ReadDir(d)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading images directory: %w", err)
		}
		for _, e := range entries {
			img := inspect(d, e.Name(), i == 0)
			if img == nil || seen[img.Name] || (Hidden(img.Name) && !all) {
				continue
			}
			seen[img.Name] = true
			out = append(out, *img)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out, nil
}

// Get finds one image by name.
func (s *Store) Get(name string) (*Image, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	for i, d := range s.Dirs {
		for _, entry := range []string{name, name + ".raw"} {
			if img := inspect(d, entry, i == 0); img != nil && img.Name == name {
				return img, nil
			}
		}
	}
	return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
}

// Measure fills in Usage (disk blocks, hard links once) and OS.
func (img *Image) Measure() {
	if img.Type == TypeRaw {
		var st unix.Stat_t
		if unix.Stat(img.Path, &st) == nil {
			img.Usage = st.Blocks * 512
		}
		return
	}
	if _, usage, err := treecopy.Size(img.Path); err == nil {
		img.Usage = usage
	}
	img.OS = imageOS(img.Path)
}

// imageOS reads the os-release of a tree, following its symlinks inside
// the tree only.
func imageOS(root string) string {
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		if b, err := readInRoot(root, p); err == nil {
			return OSName(ParseOSRelease(string(b)))
		}
	}
	return ""
}

// readInRoot reads rel under root, resolving symlinks as if root were /.
func readInRoot(root, rel string) ([]byte, error) {
	cur := rel
	for range 16 {
		full := filepath.Join(root, filepath.Clean("/"+cur))
		target, err := os.Readlink(full)
		if err != nil {
			// Not a link (or missing): but a parent could be one; os-release
			// paths have real parents in every tree that matters.
			return os.ReadFile(full)
		}
		if filepath.IsAbs(target) {
			cur = target
		} else {
			cur = filepath.Join(filepath.Dir(filepath.Clean("/"+cur)), target)
		}
	}
	return nil, fmt.Errorf("too many links reading %s", rel)
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// tempPath is a hidden, never-listed name in the writable directory.
func (s *Store) tempPath(op, name string) string {
	return filepath.Join(s.writable(), fmt.Sprintf(".#%s.%s.%s", op, name, randomSuffix()))
}

// checkFree fails when name is taken in any image directory.
func (s *Store) checkFree(name string) error {
	if err := CheckNewName(name); err != nil {
		return err
	}
	if img, err := s.Get(name); err == nil {
		if img.ReadOnly {
			return fmt.Errorf("image %s already exists and is read-only: refusing to replace it", name)
		}
		return fmt.Errorf("image %s already exists (%s)", name, img.Path)
	}
	return nil
}

// checkMutable refuses read-only images.
func checkMutable(img *Image, verb string) error {
	if img.ReadOnly {
		return fmt.Errorf("image %s is read-only: cannot %s it (netspawnctl read-only %s false)", img.Name, verb, img.Name)
	}
	return nil
}

func (s *Store) checkIdle(ctx context.Context, img *Image, verb string) error {
	if s.Busy == nil {
		return nil
	}
	m, err := s.Busy(ctx, img)
	if err != nil {
		return fmt.Errorf("checking whether image %s is in use: %w", img.Name, err)
	}
	if m != "" {
		return fmt.Errorf("image %s is in use by running machine %s: cannot %s it", img.Name, m, verb)
	}
	return nil
}

// removeTemp deletes a temporary tree made by a failed operation.
func removeTemp(p string) {
	if btrfs.IsSubvolume(p) && btrfs.DeleteSubvolume(p) == nil {
		return
	}
	_ = os.RemoveAll(p)
}

// publish moves a finished temporary image to its name, refusing to
// replace anything that appeared meanwhile.
func publish(tmp, final string) error {
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, final, unix.RENAME_NOREPLACE); err != nil {
		return fmt.Errorf("moving the new image to %s: %w", final, err)
	}
	return nil
}
