package spawn

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/netspawn/netspawn/spawn/config"
)

// An image in use is locked as systemd-nspawn locks it (image_path_lock):
// a lock file beside it, ".#NAME.lck" (the same file nspawn and machinectl
// take, so each sees the other's), and one in the runtime directory named
// by the tree's device and inode (the same tree reached by another path).
// A container that may write to the tree takes them exclusively; a
// read-only, ephemeral or volatile one shares them. A second writer is
// refused with nspawn's message. $SYSTEMD_NSPAWN_LOCK=0 takes none.
type imageLock struct {
	files []*os.File
}

// errImageBusy is returned when another container holds the image.
var errImageBusy = errors.New("busy")

// lockImage locks the tree at dir.
func lockImage(dir string, shared bool) (*imageLock, error) {
	if dir == "/" {
		return &imageLock{}, nil // the host's own tree: nothing to guard
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	how := unix.LOCK_EX
	if shared {
		how = unix.LOCK_SH
	}
	l := &imageLock{}
	global := filepath.Join(config.RuntimeDir(), "locks",
		"inode-"+strconv.FormatUint(st.Dev, 10)+":"+strconv.FormatUint(st.Ino, 10))
	local := filepath.Join(filepath.Dir(dir), ".#"+filepath.Base(dir)+".lck")
	paths := []string{global, local}
	if st.Mode&unix.S_IFMT == unix.S_IFBLK {
		// A block device (-i /dev/sdb) is locked by its device number
		// only, as nspawn does: no lock file beside it in /dev.
		paths = []string{filepath.Join(config.RuntimeDir(), "locks",
			"block-"+strconv.FormatUint(uint64(unix.Major(st.Rdev)), 10)+":"+strconv.FormatUint(uint64(unix.Minor(st.Rdev)), 10))}
	}
	for _, p := range paths {
		f, err := takeLock(p, how)
		if errors.Is(err, errImageBusy) && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			l.release()
			//lint:ignore ST1005 the wording is systemd-nspawn's
			return nil, fmt.Errorf("Disk image %s is currently busy: another container uses it (run it read-only, with -x, or stop the other first; SYSTEMD_NSPAWN_LOCK=0 skips the lock)", dir)
		}
		if errors.Is(err, errImageBusy) {
			l.release()
			//lint:ignore ST1005 the wording is systemd-nspawn's
			return nil, fmt.Errorf("Directory tree %s is currently busy: another container uses it (run it read-only, with -x, or stop the other first; SYSTEMD_NSPAWN_LOCK=0 skips the lock)", dir)
		}
		if err != nil {
			// A tree on read-only media or in a directory we may not write
			// to goes unguarded, as with nspawn.
			continue
		}
		l.files = append(l.files, f)
	}
	return l, nil
}

// takeLock opens (or makes) the lock file p and locks it without waiting.
// A file whose last holder removed it while we waited for it is opened
// again.
func takeLock(p string, how int) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, err
	}
	for {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_NOCTTY, 0o600)
		if err != nil {
			return nil, err
		}
		if err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, errImageBusy
			}
			return nil, err
		}
		// Still the file at p? Its previous holder may have removed it.
		var held, now unix.Stat_t
		if unix.Fstat(int(f.Fd()), &held) == nil && unix.Stat(p, &now) == nil && held.Ino == now.Ino && held.Dev == now.Dev {
			return f, nil
		}
		f.Close()
	}
}

// release drops the locks; the last holder removes the files.
func (l *imageLock) release() {
	if l == nil {
		return
	}
	for _, f := range l.files {
		// Only a holder that can have the lock to itself removes the file.
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			os.Remove(f.Name())
		}
		f.Close()
	}
	l.files = nil
}
