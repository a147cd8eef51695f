package spawn

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/netspawn/netspawn/spawn/config"
)

// journalSetup is what --link-journal= needs to know of the world: the
// container's machine ID, the host's, where the host keeps journals, and
// who owns the tree's root (the owner of directories made in the tree).
type journalSetup struct {
	mode     string // config.LinkJournal*
	try      bool
	id       string // the container's machine ID (32 hex digits)
	hostID   string // the host's ("" when it has none)
	hostDir  string // the host's journal directory (/var/log/journal)
	tree     string // the container's tree on the host
	readOnly bool   // the tree may not be written to (--read-only)
	uid, gid int    // owner of the directories made in the tree
	warn     func(format string, args ...any)
}

// journalMachineID is the machine ID the container's journal is kept
// under, as nspawn's setup_machine_id picks it: the tree's /etc/machine-id
// when it holds one, else the UUID given to the container (which a booted
// systemd takes as its machine ID when /etc/machine-id is empty).
func journalMachineID(tree, uuid string) string {
	if b, err := os.ReadFile(filepath.Join(tree, "etc/machine-id")); err == nil {
		if id := normalizeID(strings.TrimSpace(string(b))); id != "" {
			return id
		}
	}
	return normalizeID(uuid)
}

// linkJournal prepares --link-journal= before the container starts, as
// nspawn's setup_journal: in guest mode a symbolic link on the host from
// HOSTDIR/ID to the tree's /var/log/journal/ID; in host mode (and in auto
// mode when HOSTDIR/ID is a directory) a directory on the host that is
// bound at /var/log/journal/ID inside. It returns that host directory, or
// "" when nothing is to be bound. The try- modes and auto give up without
// an error where the host cannot take the link.
func linkJournal(js journalSetup) (bind string, err error) {
	if js.mode == config.LinkJournalNo || js.id == "" {
		return "", nil
	}
	try := js.try || js.mode == config.LinkJournalAuto
	if js.hostID != "" && js.hostID == js.id {
		if try {
			js.warn("host and machine ids are equal (%s): refusing to link journals", js.id)
			return "", nil
		}
		return "", fmt.Errorf("host and machine ids are equal (%s): refusing to link journals (give the container its own /etc/machine-id, or use --link-journal=no)", js.id)
	}
	if err := mkdirTree(js, "var/log/journal"); err != nil {
		switch {
		case errors.Is(err, unix.EROFS) && try:
			return "", nil
		case errors.Is(err, errNotDirInTree) && try:
			js.warn("not linking the journal: %v", err)
			return "", nil
		}
		return "", err
	}
	p := filepath.Join(js.hostDir, js.id)
	q := filepath.Join(js.tree, "var/log/journal", js.id)
	for _, m := range []string{p, q} {
		if mounted, _ := mountinfo.Mounted(m); mounted {
			if try {
				return "", nil
			}
			return "", fmt.Errorf("%s: already a mount point, refusing to use for journal", m)
		}
	}

	target, err := os.Readlink(p)
	switch {
	case err == nil:
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(p), target)
		}
		if (js.mode == config.LinkJournalGuest || js.mode == config.LinkJournalAuto) && filepath.Clean(target) == q {
			if err := mkdirTree(js, "var/log/journal/"+js.id); err != nil {
				js.warn("creating %s: %v", q, err)
			}
			return "", nil
		}
		if err := os.Remove(p); err != nil {
			return "", fmt.Errorf("removing the symbolic link %s: %w", p, err)
		}
	case errors.Is(err, unix.EINVAL): // there, and not a symbolic link
		if js.mode == config.LinkJournalGuest {
			if err := unix.Rmdir(p); errors.Is(err, unix.ENOTDIR) {
				return "", fmt.Errorf("%s already exists and is neither a symlink nor a directory: remove it, or use --link-journal=no", p)
			} else if err != nil {
				return "", fmt.Errorf("removing %s to link the guest's journal there: %w", p, err)
			}
		}
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("readlink %s: %w", p, err)
	}

	switch js.mode {
	case config.LinkJournalGuest:
		if err := os.Symlink(q, p); err != nil {
			if try {
				return "", nil
			}
			return "", fmt.Errorf("linking %s to %s: %w (the host needs %s: create it, or use --link-journal=try-guest)", p, q, err, js.hostDir)
		}
		if err := mkdirTree(js, "var/log/journal/"+js.id); err != nil {
			js.warn("creating %s: %v", q, err)
		}
		return "", nil
	case config.LinkJournalHost:
		// Not the parents: a host without a persistent journal keeps it so.
		if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			if try {
				return "", nil
			}
			return "", fmt.Errorf("creating %s: %w (the host needs %s: create it, or use --link-journal=try-host)", p, err, js.hostDir)
		}
	default: // auto: only when the host has the directory
		if _, err := os.Stat(p); err != nil {
			return "", nil
		}
	}
	if !dirEmpty(q) {
		js.warn("%s is not empty, proceeding anyway", q)
	}
	if err := mkdirTree(js, "var/log/journal/"+js.id); err != nil {
		return "", fmt.Errorf("creating %s: %w", q, err)
	}
	return p, nil
}

// mkdirTree makes the directories of rel (relative to the tree) that are
// missing, mode 0755, owned by the tree's owner. It follows no symbolic
// link: a link on the way could lead out of the tree.
func mkdirTree(js journalSetup, rel string) error {
	fd, err := unix.Open(js.tree, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", js.tree, err)
	}
	at := js.tree
	for _, name := range strings.Split(rel, "/") {
		at = filepath.Join(at, name)
		next, err := unix.Openat(fd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		switch {
		case errors.Is(err, unix.ENOENT):
			next, err = mkdirAt(js, fd, name)
		case errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.ELOOP):
			err = errNotDirInTree
		}
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("%s: %w", at, err)
		}
		fd = next
	}
	unix.Close(fd)
	return nil
}

// errNotDirInTree is a path component in the tree that is a symbolic link
// or not a directory: netspawn does not follow links of the tree from the
// host, where they could lead out of it.
var errNotDirInTree = errors.New("not a directory (a symbolic link in the tree is not followed)")

// mkdirAt makes directory name in dir (mode 0755, owned by the tree's
// owner) and opens it.
func mkdirAt(js journalSetup, dir int, name string) (int, error) {
	if js.readOnly {
		return -1, fmt.Errorf("cannot create it in a read-only container: %w", unix.EROFS)
	}
	if err := unix.Mkdirat(dir, name, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, err
	}
	fd, err := unix.Openat(dir, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, errNotDirInTree
	}
	if err := unix.Fchownat(fd, "", js.uid, js.gid, unix.AT_EMPTY_PATH); err != nil && !errors.Is(err, unix.EPERM) {
		unix.Close(fd)
		return -1, fmt.Errorf("giving it to the container: %w", err)
	}
	return fd, nil
}

// dirEmpty reports whether p is an empty directory or missing.
func dirEmpty(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return true
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	return errors.Is(err, io.EOF)
}

// hostMachineID is the host's /etc/machine-id ("" when it has none).
func hostMachineID() string {
	b, err := os.ReadFile("/etc/machine-id")
	if err != nil {
		return ""
	}
	return normalizeID(strings.TrimSpace(string(b)))
}

// setupJournal links the container's journal (--link-journal=) and adds
// the bind of a host directory it needs to cfg.Binds. -x and --volatile
// containers keep no journal across runs, so nothing is linked for them.
func setupJournal(cfg *config.Config) error {
	if cfg.LinkJournal == config.LinkJournalNo || cfg.Ephemeral || cfg.Volatile != config.VolatileNo {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Stat(cfg.Directory, &st); err != nil {
		return fmt.Errorf("directory %s: %w", cfg.Directory, err)
	}
	bind, err := linkJournal(journalSetup{
		mode: cfg.LinkJournal, try: cfg.LinkJournalTry,
		id:       journalMachineID(cfg.Directory, cfg.UUID),
		hostID:   hostMachineID(),
		hostDir:  config.HostJournalDir(),
		tree:     cfg.Directory,
		readOnly: cfg.ReadOnly,
		uid:      int(st.Uid), gid: int(st.Gid),
		warn: func(format string, args ...any) { warnf(cfg.Quiet, format, args...) },
	})
	if err != nil || bind == "" {
		return err
	}
	id := filepath.Base(bind)
	cfg.Binds = append(cfg.Binds, config.BindMount{Source: bind, Dest: "/var/log/journal/" + id})
	return nil
}
