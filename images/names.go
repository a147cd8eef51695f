// Package images manages machine images the way machinectl does: directory
// trees, btrfs subvolumes and raw disk files kept in an images directory
// (/var/lib/machines, or $NETSPAWN_IMAGES_DIR). It lists, inspects, clones,
// renames, removes, marks read-only, imports, exports and downloads them.
//
// Pure logic (names, tar path safety, compression detection, progress
// formatting, checksum lists) is kept apart from the file-system work so it
// can be tested without root.
package images

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/netspawn/netspawn/spawn/config"
)

// Dirs returns the image directories: $NETSPAWN_IMAGES_DIR alone when set
// (as netspawn -M does), else machinectl's. New images go into the first.
func Dirs(getenv func(string) string) []string { return config.ImageDirs(getenv) }

// CheckNewName validates the name of an image about to be created: a
// valid machine name (hostname rules), so that netspawn -M NAME can run it.
func CheckNewName(name string) error {
	if err := config.CheckMachineName(name); err != nil {
		var ne *config.NameError
		if errors.As(err, &ne) {
			ne.Kind = "image name"
		}
		return err
	}
	return nil
}

// CheckName validates the name of an existing image: a valid machine name,
// optionally hidden behind a leading dot (download caches, .host is not an
// image).
func CheckName(name string) error {
	if name == ".host" {
		return fmt.Errorf("%q is the host, not an image", name)
	}
	if !config.ValidMachineName(strings.TrimPrefix(name, ".")) {
		return fmt.Errorf("invalid image name %q", name)
	}
	return nil
}

// Hidden reports whether an image name is hidden (shown with --all only).
func Hidden(name string) bool { return strings.HasPrefix(name, ".") }

// imageSuffixes are stripped from a file or URL name to make an image name.
var imageSuffixes = []string{".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.zst", ".tzst", ".tar.zstd", ".tar", ".raw", ".gz", ".xz", ".zst"}

// NameFromPath derives an image name from a file name, directory or URL
// path ("/x/debian-12.tar.xz" -> "debian-12"), as import-tar and pull-tar do
// when no name is given. The result still has to pass CheckNewName.
func NameFromPath(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	base := path.Base(strings.TrimRight(p, "/"))
	for _, s := range imageSuffixes {
		if strings.HasSuffix(base, s) && len(base) > len(s) {
			base = strings.TrimSuffix(base, s)
			break
		}
	}
	// Underscores (common in file names) are not allowed in machine names.
	return strings.ReplaceAll(base, "_", "-")
}
