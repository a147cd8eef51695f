package spawn

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/netspawn/netspawn/internal/btrfs"
	"github.com/netspawn/netspawn/spawn/config"
	"github.com/netspawn/netspawn/spawn/idmap"
	"github.com/netspawn/netspawn/spawn/internal/mountpoint"

	"golang.org/x/sys/unix"
)

// placement is a detached mount the parent built, to be attached by the
// container's first process at Dest (a container path).
type placement struct {
	FD   int    `json:"fd"`
	Dest string `json:"dest"`
	Late bool   `json:"late,omitempty"` // after the API file systems and binds
	Bind int    `json:"bind,omitempty"` // 1 + the index in config.Config.Binds it stands for
	File bool   `json:"file,omitempty"` // a file, not a directory
	// Sub: only this directory of the mount is placed at Dest (a disk
	// image's /usr directory for --volatile=yes).
	Sub string `json:"sub,omitempty"`
}

// storageMsg is the storage part of initMsg.
type storageMsg struct {
	UserNS bool        `json:"userns,omitempty"`
	Shift  uint32      `json:"shift,omitempty"`
	Range  uint32      `json:"range,omitempty"`
	Mounts []placement `json:"mounts,omitempty"`
	ExeFD  int         `json:"exe_fd,omitempty"` // the binary, to be closed
	// Root is where the container's root is attached instead of the tree's
	// own path (which its user namespace's root may not be able to reach).
	Root string `json:"root,omitempty"`
}

// storageState is the parent's side. prepareStorage does what lasts for
// the whole run (the UID range, ownership, temporary upper layers, an
// ephemeral snapshot); build makes the detached mounts afresh for each
// start of the container (a reboot starts it again).
type storageState struct {
	cfg       *config.Config
	tree      string      // the tree the root comes from (a -x snapshot if one was made)
	treeStat  unix.Stat_t // of the original tree
	ownerBase uint32      // the 64K range the tree's files are in
	mapped    bool        // ownership is shifted with idmapped mounts
	chowned   bool        // ... or was shifted with chown
	ephemeral string      // -x overlay: the directory holding upper and work
	// rootOverlayTmpfs: the root is an overlay with its upper layer on a
	// tmpfs (--volatile=overlay, -x of the host's root).
	rootOverlayTmpfs bool
	overlays         []builtOverlay

	msg      storageMsg
	cgroup   string     // the container's cgroup v2 directory, "" when none
	files    []*os.File // one per msg.Mounts entry, same order (this start's)
	claim    *os.File
	exe      *os.File
	holder   *idmap.Holder
	runDir   *runDir
	image    *diskImage // -i: the attached image (image.go), owned by Run
	cleanups []func()
}

// builtOverlay is an --overlay request with its directories resolved.
type builtOverlay struct {
	lowers      []string // topmost first; "+" paths relative to the root
	lowerInRoot []bool
	upper, work string // empty for a read-only overlay
	dest        string
	readOnly    bool
	scratch     bool // a temporary upper layer
}

// prepareImage handles what must happen before the directory is checked:
// --template creates it; -x renames a machine named after its path.
func prepareImage(cfg *config.Config) error {
	if cfg.Template != "" {
		if cfg.Ephemeral {
			return errors.New("--template= and --ephemeral cannot be combined")
		}
		if err := applyTemplate(cfg.Template, cfg.Directory); err != nil {
			return err
		}
	}
	if cfg.Ephemeral && cfg.Volatile != config.VolatileNo {
		return errors.New("--ephemeral and --volatile= cannot be combined")
	}
	if cfg.Ephemeral && (cfg.Directory != "" || cfg.Image != "") {
		derived := config.CleanMachineName(filepath.Base(filepath.Clean(cfg.Directory)))
		if cfg.Image != "" {
			derived = config.CleanMachineName(strings.TrimSuffix(filepath.Base(cfg.Image), ".raw"))
		} else if filepath.Clean(cfg.Directory) == "/" {
			derived = config.HostMachineName()
		}
		if cfg.Machine == "" || cfg.Machine == derived {
			cfg.Machine = ephemeralMachineName(derived, randomHex(8))
		}
	}
	return nil
}

// ephemeralMachineName appends nspawn's random suffix to a machine name
// derived from the path, keeping it within 64 characters.
func ephemeralMachineName(name, suffix string) string {
	if max := 64 - 1 - len(suffix); len(name) > max {
		name = name[:max]
	}
	return name + "-" + suffix
}

func randomHex(n int) string {
	b := make([]byte, n)
	f, err := os.Open("/dev/urandom")
	if err == nil {
		_, _ = f.Read(b)
		f.Close()
	}
	return fmt.Sprintf("%x", b)
}

// prepareStorage prepares the container's root file system and user
// namespace in the parent, after the directory was checked.
func prepareStorage(cfg *config.Config, img *diskImage) (_ *storageState, err error) {
	s := &storageState{cfg: cfg, tree: cfg.Directory, image: img}
	defer func() {
		if err != nil {
			s.cleanup()
		}
	}()
	pu := cfg.PrivateUsers
	for _, b := range cfg.Binds {
		if b.IDMap != "" && !pu.Enabled() {
			return nil, fmt.Errorf("--bind=%s:%s:%s needs a user namespace (-U or --private-users=)", b.Source, b.Dest, b.IDMap)
		}
	}
	needsWork := pu.Enabled() || cfg.Ephemeral || cfg.Volatile != config.VolatileNo || len(cfg.Overlays) > 0 || img != nil
	if !needsWork {
		return s, nil
	}
	if pu.Enabled() && cfg.Network.NamespacePath != "" {
		return nil, errors.New("--network-namespace-path= cannot be combined with --private-users (the namespace belongs to the host's user namespace)")
	}
	reapStaleRunDirs()
	if s.runDir, err = newRunDir(); err != nil {
		return nil, err
	}
	if err := unix.Stat(s.tree, &s.treeStat); err != nil {
		return nil, fmt.Errorf("directory %s: %w", s.tree, err)
	}
	var ownerOK bool
	s.ownerBase, ownerOK = idmap.OwnerRange(s.treeStat.Uid, s.treeStat.Gid)
	if pu.Enabled() {
		// The tree is remembered by its source: an image's root has no path.
		if err := s.pickUserNS(cfg, cfg.Source(), s.ownerBase, ownerOK); err != nil {
			return nil, err
		}
		if err := s.chooseOwnership(); err != nil {
			return nil, err
		}
	}
	if pu.Enabled() || s.tree == "/" || img != nil {
		// The root is attached elsewhere: the user namespace's root may
		// not reach the tree's path, the host's root cannot be pivoted
		// into where it is, and an image's tree has no path.
		s.msg.Root = filepath.Join(s.runDir.path, "root")
		if err := os.Mkdir(s.msg.Root, 0o755); err != nil {
			return nil, fmt.Errorf("creating the container's mount point: %w", err)
		}
	}

	if cfg.Ephemeral && s.tree == "/" {
		// overlayfs refuses an upper layer inside its lower one: keep the
		// changes in memory, as --volatile=overlay does.
		s.rootOverlayTmpfs = true
	} else if cfg.Ephemeral {
		if img == nil && btrfs.IsSubvolume(s.tree) {
			snap, err := s.snapshotEphemeral(s.tree)
			if err != nil {
				return nil, err
			}
			cfg.Directory, s.tree = snap, snap
		} else {
			if s.ephemeral, err = s.runDir.mkdir("ephemeral"); err != nil {
				return nil, err
			}
			if err := s.makeUpper(filepath.Join(s.ephemeral, "upper")); err != nil {
				return nil, err
			}
		}
	}
	if cfg.Volatile == config.VolatileState {
		cfg.ReadOnly = true
	}
	if cfg.Volatile == config.VolatileYes {
		if err := checkVolatileYesTree(s.tree, img != nil && !img.hasUsr()); err != nil {
			return nil, err
		}
	}
	if cfg.Volatile == config.VolatileOverlay {
		s.rootOverlayTmpfs = true
	}

	pu = cfg.PrivateUsers // with the range picked
	if pu.Enabled() && !s.mapped && pu.EffectiveOwnership() != config.OwnershipOff && s.ownerBase != pu.Shift {
		if err := s.chownRoot(); err != nil {
			return nil, err
		}
	}

	for _, o := range cfg.Overlays {
		if err := s.prepareOverlay(o); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// storageRoot is the path the container's first process builds the
// container's file system at.
func storageRoot(msg *initMsg) string {
	if msg.Storage != nil && msg.Storage.Root != "" {
		return msg.Storage.Root
	}
	return msg.Config.Directory
}

// pickUserNS decides the container's UID range and claims it.
func (s *storageState) pickUserNS(cfg *config.Config, tree string, ownerBase uint32, ownerOK bool) error {
	pu := &cfg.PrivateUsers
	if pu.Range == 0 {
		pu.Range = config.UIDRangeSize
	}
	reg, err := idmap.OpenRegistry(config.StateDir())
	if err != nil {
		return err
	}
	defer reg.Close()
	running, err := reg.Running()
	if err != nil {
		return err
	}
	switch pu.Mode {
	case config.UserNSIdentity:
		pu.Shift = 0
	case config.UserNSYes:
		if !ownerOK {
			return fmt.Errorf("--private-users=yes: the owner of %s is not the start of a 64K UID range (use pick or UIDBASE)", tree)
		}
		pu.Shift = ownerBase
	case config.UserNSPick:
		trees, err := reg.Trees()
		if err != nil {
			return err
		}
		pu.Shift, err = idmap.PickRange(tree, cfg.Machine, ownerBase, ownerOK, running, idmap.HostIDsInUse(), trees)
		if err != nil {
			return err
		}
		if err := reg.Remember(tree, pu.Shift); err != nil {
			return err
		}
	}
	if pu.Mode != config.UserNSIdentity {
		if s.claim, err = reg.Claim(idmap.Range{Start: pu.Shift, Size: pu.Range}); err != nil {
			if pu.Mode == config.UserNSPick {
				return err
			}
			// An explicit range is used as asked, as nspawn does.
			warnf(cfg.Quiet, "%v: its files and processes are not isolated from that container's", err)
		}
	}
	s.msg.UserNS, s.msg.Shift, s.msg.Range = true, pu.Shift, pu.Range
	return nil
}

// chooseOwnership decides between idmapped mounts and chown: map and auto
// use idmapped mounts when the tree's file system takes them.
func (s *storageState) chooseOwnership() error {
	pu := s.cfg.PrivateUsers
	own := pu.EffectiveOwnership()
	if s.ownerBase == pu.Shift || (own != config.OwnershipMap && own != config.OwnershipAuto) {
		return nil
	}
	h, err := idmap.NewUserNS(s.ownerBase, pu.Shift, pu.Range)
	if err == nil {
		s.holder = h
		var fd int
		if s.image != nil {
			fd, err = s.image.parts[0].mount(s.cfg.ReadOnly || s.cfg.Ephemeral || s.cfg.Volatile != config.VolatileNo)
		} else {
			fd, err = idmap.CloneTree(s.tree)
		}
		if err == nil {
			err = idmap.MountIDMapped(fd, h.File())
			unix.Close(fd)
		}
	}
	if err == nil {
		s.mapped = true
		return nil
	}
	if own == config.OwnershipMap {
		return fmt.Errorf("--private-users-ownership=map: %w", err)
	}
	slog.Debug("idmapped mounts not possible, shifting ownership with chown", "err", err)
	return nil
}

// chownRoot shifts the files of the root to the container's range: the
// tree itself (or its -x snapshot), or for an -x overlay its upper layer,
// through the overlay (copying everything up).
func (s *storageState) chownRoot() error {
	pu := s.cfg.PrivateUsers
	if pu.Range != config.UIDRangeSize {
		return fmt.Errorf("--private-users-ownership=chown needs a 65536-UID range")
	}
	if s.tree == "/" {
		return errors.New("refusing to change the ownership of the host's root directory: use --private-users-ownership=map (or off)")
	}
	if !s.cfg.Quiet {
		fmt.Fprintf(os.Stderr, "Shifting ownership of %s from UID %d to %d.\n", s.tree, s.ownerBase, pu.Shift)
	}
	s.chowned = true
	if s.ephemeral == "" {
		return idmap.ChownTree(s.tree, s.ownerBase, pu.Shift, pu.Range)
	}
	fd, err := s.overlayRoot()
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return idmap.ChownTree(fmt.Sprintf("/proc/self/fd/%d", fd), s.ownerBase, pu.Shift, pu.Range)
}

// makeUpper creates the upper layer of an overlay over the whole tree with
// the tree root's mode and owner as the container sees them: the
// overlay's root directory takes them from it.
func (s *storageState) makeUpper(upper string) error {
	if err := os.Mkdir(upper, 0o755); err != nil {
		return fmt.Errorf("creating upper layer: %w", err)
	}
	uid, gid := s.treeStat.Uid, s.treeStat.Gid
	if pu := s.cfg.PrivateUsers; s.mapped {
		uid, _ = idmap.ShiftID(uid, s.ownerBase, pu.Shift, pu.Range)
		gid, _ = idmap.ShiftID(gid, s.ownerBase, pu.Shift, pu.Range)
	}
	if err := os.Lchown(upper, int(uid), int(gid)); err != nil {
		return fmt.Errorf("creating upper layer: %w", err)
	}
	if err := os.Chmod(upper, os.FileMode(s.treeStat.Mode&0o777)); err != nil {
		return fmt.Errorf("creating upper layer: %w", err)
	}
	return nil
}

// treeMount returns a detached copy of dir (in the tree), idmapped when
// ownership is mapped.
func (s *storageState) treeMount(dir string) (int, error) {
	fd, err := idmap.CloneTree(dir)
	if err != nil {
		return -1, err
	}
	if s.mapped {
		if err := idmap.MountIDMapped(fd, s.holder.File()); err != nil {
			unix.Close(fd)
			return -1, err
		}
	}
	return fd, nil
}

// lowerLayer is the tree as an overlay's lower layer: the tree itself, or
// with mapped ownership an idmapped copy (overlayfs itself cannot be
// idmapped; its layers can). The returned closer releases the copy once
// the overlay holds it.
func (s *storageState) lowerLayer() (string, func(), error) {
	if !s.mapped {
		return s.tree, func() {}, nil
	}
	var fd int
	var err error
	if s.image != nil && !s.image.hasRoot() {
		// The empty tmpfs standing for the missing root partition.
		return s.tree, func() {}, nil
	}
	if s.image != nil {
		fd, err = s.imageMount(s.image.parts[0], true)
	} else {
		fd, err = s.treeMount(s.tree)
	}
	if err != nil {
		return "", nil, err
	}
	return fmt.Sprintf("/proc/self/fd/%d", fd), func() { unix.Close(fd) }, nil
}

// overlayRoot mounts the -x overlay (detached).
func (s *storageState) overlayRoot() (int, error) {
	lower, done, err := s.lowerLayer()
	if err != nil {
		return -1, fmt.Errorf("--ephemeral: %w", err)
	}
	defer done()
	fd, err := mountOverlayScratch([]string{lower}, filepath.Join(s.ephemeral, "upper"), filepath.Join(s.ephemeral, "work"))
	if err != nil {
		return -1, fmt.Errorf("--ephemeral: %w", err)
	}
	return fd, nil
}

// volatileTmpfs makes a tmpfs for --volatile owned by the container's root.
func (s *storageState) volatileTmpfs(flag string) (int, error) {
	fd, err := mountTmpfs("mode=0755", s.cfg.SELinuxAPIFSContext)
	if err != nil {
		return -1, fmt.Errorf("%s: %w", flag, err)
	}
	if pu := s.cfg.PrivateUsers; pu.Enabled() {
		if err := unix.Fchownat(fd, "", int(pu.Shift), int(pu.Shift), unix.AT_EMPTY_PATH); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("%s: %w", flag, err)
		}
	}
	return fd, nil
}

// build makes this start's detached mounts: the root (unless it is a
// plain bind of the tree), mounts below it, and the --overlay mounts.
func (s *storageState) build() (err error) {
	s.closeFiles()
	s.msg.Mounts = nil
	defer func() {
		if err != nil {
			s.closeFiles()
		}
	}()
	cfg := s.cfg
	rootPath := s.tree // where the root's content is reachable from here
	addRoot := func(fd int) {
		s.add(fd, "/", false)
		rootPath = fmt.Sprintf("/proc/self/fd/%d", fd)
	}
	switch {
	case s.ephemeral != "":
		fd, err := s.overlayRoot()
		if err != nil {
			return err
		}
		addRoot(fd)
	case cfg.Volatile == config.VolatileYes:
		fd, err := s.volatileTmpfs("--volatile=yes")
		if err != nil {
			return err
		}
		addRoot(fd)
		owner := 0
		if pu := cfg.PrivateUsers; pu.Enabled() {
			owner = int(pu.Shift)
		}
		if err := populateVolatileRoot(rootPath, s.tree, owner); err != nil {
			return err
		}
		if s.image != nil {
			// placeImage below places the image's /usr.
			break
		}
		usr, err := s.treeMount(filepath.Join(s.tree, "usr"))
		if err != nil {
			return fmt.Errorf("--volatile=yes: %w", err)
		}
		s.add(usr, "/usr", false)
		if err := setMountAttr(usr, unix.MOUNT_ATTR_RDONLY); err != nil {
			return fmt.Errorf("--volatile=yes: making /usr read-only: %w", err)
		}
	case s.rootOverlayTmpfs:
		tfd, err := s.volatileTmpfs("--volatile=overlay")
		if err != nil {
			return err
		}
		defer unix.Close(tfd)
		base := fmt.Sprintf("/proc/self/fd/%d", tfd)
		if err := s.makeUpper(base + "/upper"); err != nil {
			return err
		}
		lower, done, err := s.lowerLayer()
		if err != nil {
			return fmt.Errorf("--volatile=overlay: %w", err)
		}
		defer done()
		fd, err := mountOverlayScratch([]string{lower}, base+"/upper", base+"/work")
		if err != nil {
			return fmt.Errorf("--volatile=overlay: %w", err)
		}
		addRoot(fd)
	case s.image != nil && !s.image.hasRoot():
		// As nspawn, an empty tmpfs for the root of an image with a /usr
		// partition and no root partition; placeImage below mounts /usr
		// and the rest.
		fd, err := s.volatileTmpfs("disk image without a root partition")
		if err != nil {
			return err
		}
		addRoot(fd)
	case s.image != nil:
		// placeImage below mounts the image's root afresh.
	case s.msg.Root != "":
		// The container's root may not reach the tree's path: hand it over.
		fd, err := s.treeMount(s.tree)
		if err != nil {
			return err
		}
		addRoot(fd)
		if cfg.Volatile == config.VolatileState && s.tree == "/" {
			// The host's file systems below / stay read-only too.
			if err := setMountAttr(fd, unix.MOUNT_ATTR_RDONLY); err != nil {
				return fmt.Errorf("--volatile=state: %w", err)
			}
		}
	}
	if s.image != nil {
		// The root's own mount, unless an overlay or tmpfs stands for it.
		if err := s.placeImage(s.ephemeral == "" && !s.rootOverlayTmpfs && cfg.Volatile != config.VolatileYes); err != nil {
			return err
		}
	}
	if cfg.Volatile == config.VolatileState {
		fd, err := s.volatileTmpfs("--volatile=state")
		if err != nil {
			return err
		}
		s.add(fd, "/var", false)
	}
	for _, o := range s.overlays {
		if err := s.buildOverlay(o, rootPath); err != nil {
			return err
		}
	}
	if s.msg.UserNS {
		for i, b := range cfg.Binds {
			if b.Source != "" && !b.SourceInRoot {
				if err := s.buildBind(i, b); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// buildBind makes a --bind from the host as a detached mount: the
// container's root in its user namespace may not be able to reach the
// source's path.
func (s *storageState) buildBind(i int, b config.BindMount) error {
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC)
	if b.Recursive {
		flags |= unix.AT_RECURSIVE
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, b.Source, flags)
	if err != nil {
		return fmt.Errorf("bind mount source %s: %w", b.Source, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return fmt.Errorf("bind mount source %s: %w", b.Source, err)
	}
	s.add(fd, b.Dest, true)
	m := &s.msg.Mounts[len(s.msg.Mounts)-1]
	m.Bind, m.File = i+1, st.Mode&unix.S_IFMT != unix.S_IFDIR
	if b.IDMap != "" {
		if err := s.idmapBind(fd, b, &st); err != nil {
			return err
		}
	}
	if b.ReadOnly {
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		rflags := uint(unix.AT_EMPTY_PATH)
		if b.Recursive {
			rflags |= unix.AT_RECURSIVE
		}
		if err := unix.MountSetattr(fd, "", rflags, &attr); err != nil {
			return fmt.Errorf("making the bind of %s read-only: %w", b.Source, err)
		}
	}
	return nil
}

func (s *storageState) add(fd int, dest string, late bool) {
	s.files = append(s.files, os.NewFile(uintptr(fd), "mount:"+dest))
	s.msg.Mounts = append(s.msg.Mounts, placement{Dest: dest, Late: late})
}

func (s *storageState) closeFiles() {
	for _, f := range s.files {
		f.Close()
	}
	s.files = nil
}

// prepareOverlay resolves one --overlay/--overlay-ro request and creates
// its temporary directories.
func (s *storageState) prepareOverlay(o config.OverlayMount) error {
	flag := "--overlay"
	if o.ReadOnly {
		flag = "--overlay-ro"
	}
	b := builtOverlay{dest: o.Dest, readOnly: o.ReadOnly}
	for i := len(o.Lower) - 1; i >= 0; i-- {
		b.lowers = append(b.lowers, o.Lower[i].Path)
		b.lowerInRoot = append(b.lowerInRoot, o.Lower[i].InRoot)
	}
	var upper string
	switch {
	case o.Upper.Path == "":
		if !o.ReadOnly {
			d, err := s.runDir.mkdir("overlay")
			if err != nil {
				return err
			}
			b.upper, b.work = filepath.Join(d, "upper"), filepath.Join(d, "work")
			b.scratch = true
		}
	case o.Upper.InRoot:
		upper = filepath.Join(s.tree, o.Upper.Path)
	default:
		upper = o.Upper.Path
	}
	if upper != "" && o.ReadOnly {
		// No upper layer: what was given as upper is the topmost lower one.
		b.lowers = append([]string{upper}, b.lowers...)
		b.lowerInRoot = append([]bool{false}, b.lowerInRoot...)
	} else if upper != "" {
		if err := os.MkdirAll(upper, 0o755); err != nil {
			return fmt.Errorf("%s: creating upper directory: %w", flag, err)
		}
		w, err := os.MkdirTemp(filepath.Dir(upper), ".#"+filepath.Base(upper)+".netspawn-work-")
		if err != nil {
			return fmt.Errorf("%s: creating work directory next to %s: %w", flag, upper, err)
		}
		s.cleanups = append(s.cleanups, func() { _ = os.RemoveAll(w) })
		s.runDir.note(w)
		b.upper, b.work = upper, w
	}
	s.overlays = append(s.overlays, b)
	return nil
}

// buildOverlay mounts one --overlay (detached); "+" lower paths are
// looked up in the root being built.
func (s *storageState) buildOverlay(b builtOverlay, rootPath string) error {
	flag := "--overlay"
	if b.readOnly {
		flag = "--overlay-ro"
	}
	lowers := make([]string, len(b.lowers))
	for i, l := range b.lowers {
		lowers[i] = l
		if b.lowerInRoot[i] {
			lowers[i] = filepath.Join(rootPath, l)
		}
	}
	var fd int
	var err error
	if len(lowers) == 1 && b.upper == "" {
		// overlayfs needs two layers without an upper one: one read-only
		// layer is a read-only bind.
		if fd, err = idmap.CloneTree(lowers[0]); err == nil {
			if err = setMountAttr(fd, unix.MOUNT_ATTR_RDONLY); err != nil {
				unix.Close(fd)
			}
		}
	} else {
		fd, err = mountOverlayOpts(lowers, b.upper, b.work, b.readOnly, b.scratch)
	}
	if err != nil {
		return fmt.Errorf("%s=...:%s: %w", flag, b.dest, err)
	}
	s.add(fd, b.dest, true)
	return nil
}

// apply builds this start's mounts and hands them and the user namespace
// to the container process about to be started.
func (s *storageState) apply(cmd *exec.Cmd, msg *initMsg) error {
	if s == nil || s.runDir == nil {
		return nil
	}
	if err := s.build(); err != nil {
		return err
	}
	for i, f := range s.files {
		s.msg.Mounts[i].FD = 3 + len(cmd.ExtraFiles)
		cmd.ExtraFiles = append(cmd.ExtraFiles, f)
	}
	m := s.msg
	msg.Storage = &m
	if s.msg.UserNS {
		// Temporary --bind=:DEST directories and the console (a pty of the
		// host's) belong to the container's root.
		for _, d := range msg.TempBinds {
			_ = os.Lchown(d, int(s.msg.Shift), int(s.msg.Shift))
		}
		if msg.ConsolePath != "" {
			if err := os.Chown(msg.ConsolePath, int(s.msg.Shift), int(s.msg.Shift)); err != nil {
				slog.Debug("giving the console to the container's root", "err", err)
			}
		}
		// --bind-user= cuts the bound users' host IDs into the range.
		uidMap := userNSMaps(s.msg.Shift, s.msg.Range, msg.BindUsers, false)
		gidMap := userNSMaps(s.msg.Shift, s.msg.Range, msg.BindUsers, true)
		// Go writes the maps before the child execs, and the child becomes
		// UID 0 of the namespace (its host UID 0 is not mapped there), so
		// the re-executed netspawn starts as the namespace's root with its
		// capabilities.
		cmd.SysProcAttr.Cloneflags |= unix.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings = uidMap
		cmd.SysProcAttr.GidMappings = gidMap
		cmd.SysProcAttr.GidMappingsEnableSetgroups = true
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0, Groups: []uint32{}}
		if s.cfg.Boot {
			s.delegateCgroup()
		}
		// As that user the binary's directory may be out of reach (a 0700
		// build directory): execute it through an inherited descriptor.
		if s.exe == nil {
			s.exe, _ = os.Open(cmd.Path)
		}
		if s.exe != nil {
			msg.Storage.ExeFD = 3 + len(cmd.ExtraFiles)
			cmd.ExtraFiles = append(cmd.ExtraFiles, s.exe)
			cmd.Path = fmt.Sprintf("/proc/self/fd/%d", msg.Storage.ExeFD)
		}
	}
	return nil
}

// delegateCgroup gives the container's root its cgroup (as a booted
// systemd needs to manage the tree below it), as nspawn does for user
// namespaced containers.
func (s *storageState) delegateCgroup() {
	dir := s.cgroup
	if dir == "" {
		return
	}
	uid := int(s.msg.Shift)
	for _, f := range []string{"", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"} {
		if err := os.Lchown(filepath.Join(dir, f), uid, uid); err != nil && !errors.Is(err, os.ErrNotExist) {
			slog.Debug("delegating cgroup", "path", filepath.Join(dir, f), "err", err)
		}
	}
}

// cleanup releases everything once the container is gone: the temporary
// upper layers, an ephemeral snapshot, the UID range claim.
func (s *storageState) cleanup() {
	if s == nil {
		return
	}
	s.closeFiles()
	if s.exe != nil {
		s.exe.Close()
		s.exe = nil
	}
	for i := len(s.cleanups) - 1; i >= 0; i-- {
		s.cleanups[i]()
	}
	s.cleanups = nil
	s.holder.Close()
	s.holder = nil
	if s.claim != nil {
		_ = os.Remove(s.claim.Name())
		s.claim.Close()
		s.claim = nil
	}
	if s.runDir != nil {
		s.runDir.remove()
		s.runDir = nil
	}
}

// mountTmpfs creates a detached tmpfs mount; label, when set, is its
// SELinux context= (-L, given whole: it may hold commas).
func mountTmpfs(opts, label string) (int, error) {
	fsfd, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("fsopen tmpfs: %w", err)
	}
	defer unix.Close(fsfd)
	for _, o := range strings.Split(opts, ",") {
		k, v, _ := strings.Cut(o, "=")
		if err := unix.FsconfigSetString(fsfd, k, v); err != nil {
			return -1, fmt.Errorf("tmpfs option %s: %w", o, fsError(fsfd, err))
		}
	}
	if label != "" {
		if err := unix.FsconfigSetString(fsfd, "context", label); err != nil {
			return -1, fmt.Errorf("tmpfs option context=%s: %w", label, fsError(fsfd, err))
		}
	}
	return fsCreateMount(fsfd, 0)
}

// mountOverlayScratch is mountOverlayOpts for an upper layer thrown away
// afterwards (-x, --volatile=overlay, an empty --overlay upper): overlayfs's
// "volatile" option skips syncing the upper file system, which otherwise
// costs an fsync of the whole file system /var/tmp is on at unmount.
func mountOverlayScratch(lowers []string, upper, work string) (int, error) {
	return mountOverlayOpts(lowers, upper, work, false, true)
}

// mountOverlayOpts creates a detached overlayfs mount; lowers are topmost
// first. Without upper the overlay is read-only.
func mountOverlayOpts(lowers []string, upper, work string, readOnly, scratch bool) (int, error) {
	if upper != "" {
		for _, d := range []string{upper, work} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return -1, fmt.Errorf("creating %s: %w", d, err)
			}
		}
	}
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("fsopen overlay: %w", err)
	}
	defer unix.Close(fsfd)
	for _, l := range lowers {
		if err := unix.FsconfigSetString(fsfd, "lowerdir+", l); err != nil {
			return -1, fmt.Errorf("overlay lower layer %s: %w", l, fsError(fsfd, err))
		}
	}
	if upper != "" {
		if err := unix.FsconfigSetString(fsfd, "upperdir", upper); err != nil {
			return -1, fmt.Errorf("overlay upper layer %s: %w", upper, fsError(fsfd, err))
		}
		if err := unix.FsconfigSetString(fsfd, "workdir", work); err != nil {
			return -1, fmt.Errorf("overlay work directory %s: %w", work, fsError(fsfd, err))
		}
		if scratch {
			if err := unix.FsconfigSetFlag(fsfd, "volatile"); err != nil {
				slog.Debug("overlayfs without the volatile option", "err", fsError(fsfd, err))
			}
		}
	}
	attr := 0
	if readOnly {
		attr = unix.MOUNT_ATTR_RDONLY
	}
	return fsCreateMount(fsfd, attr)
}

func fsCreateMount(fsfd, attr int) (int, error) {
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return -1, fmt.Errorf("creating file system: %w", fsError(fsfd, err))
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, attr)
	if err != nil {
		return -1, fmt.Errorf("fsmount: %w", fsError(fsfd, err))
	}
	return mfd, nil
}

// fsError adds the kernel's messages from a file system context to err.
func fsError(fsfd int, err error) error {
	var msgs []string
	buf := make([]byte, 4096)
	for {
		n, rerr := unix.Read(fsfd, buf)
		if rerr != nil || n <= 0 {
			break
		}
		msgs = append(msgs, string(bytes.TrimSpace(buf[:n])))
	}
	if len(msgs) == 0 {
		return err
	}
	return fmt.Errorf("%w (%s)", err, strings.Join(msgs, "; "))
}

func setMountAttr(mfd int, set uint64) error {
	return unix.MountSetattr(mfd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: set})
}

// checkVolatileYesTree refuses a tree --volatile=yes cannot run, as
// nspawn does: one whose /bin is not a symbolic link (into /usr: /usr is
// all of the tree that is kept) or absent. usrDir: the tree's /usr is used
// (a disk image without a /usr partition), so it must be a directory.
func checkVolatileYesTree(tree string, usrDir bool) error {
	fi, err := os.Lstat(filepath.Join(tree, "bin"))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("--volatile=yes: %w", err)
	case fi.IsDir():
		return errors.New("--volatile=yes needs an OS tree with a merged /usr (/bin, /sbin, /lib a symbolic link into /usr): its /bin is a directory")
	case fi.Mode()&os.ModeSymlink == 0:
		return errors.New("--volatile=yes needs /bin to be a symbolic link into /usr (merged /usr) or absent: it is neither a directory nor a link")
	}
	if !usrDir {
		return nil
	}
	if fi, err := os.Lstat(filepath.Join(tree, "usr")); err != nil || !fi.IsDir() {
		return errors.New("--volatile=yes: the image's /usr is not a directory (and it has no /usr partition)")
	}
	return nil
}

// populateVolatileRoot prepares a --volatile=yes tmpfs root: /usr as a
// mount point and the tree's top-level symlinks into /usr (bin -> usr/bin
// and the like), so a merged-/usr OS finds its programs; owner (the
// container's root) owns them.
func populateVolatileRoot(root, tree string, owner int) error {
	if err := os.Mkdir(filepath.Join(root, "usr"), 0o755); err != nil {
		return fmt.Errorf("--volatile=yes: creating /usr: %w", err)
	}
	if err := os.Lchown(filepath.Join(root, "usr"), owner, owner); err != nil {
		return fmt.Errorf("--volatile=yes: creating /usr: %w", err)
	}
	ents, err := os.ReadDir(tree)
	if err != nil {
		return fmt.Errorf("--volatile=yes: reading %s: %w", tree, err)
	}
	for _, e := range ents {
		if e.Type()&os.ModeSymlink == 0 {
			continue
		}
		target, err := os.Readlink(filepath.Join(tree, e.Name()))
		if err != nil || !strings.HasPrefix(strings.TrimPrefix(target, "/"), "usr/") {
			continue
		}
		if err := os.Symlink(target, filepath.Join(root, e.Name())); err != nil {
			return fmt.Errorf("--volatile=yes: linking /%s: %w", e.Name(), err)
		}
		if err := os.Lchown(filepath.Join(root, e.Name()), owner, owner); err != nil {
			return fmt.Errorf("--volatile=yes: linking /%s: %w", e.Name(), err)
		}
	}
	return nil
}

// --- In the container's first process ---------------------------------

// attachRoot makes root the container's root mount: the detached mount
// the parent built, or a bind of the tree. Mounts the parent built for
// directories below the root (/usr, /var) follow.
func attachRoot(root string, msg *initMsg) error {
	st := msg.Storage
	if st != nil && st.ExeFD > 0 {
		unix.Close(st.ExeFD)
	}
	if st == nil || len(st.Mounts) == 0 || st.Mounts[0].Dest != "/" || st.Mounts[0].Late {
		if err := mount(root, root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return err
		}
	}
	if st == nil {
		return nil
	}
	for _, m := range st.Mounts {
		if !m.Late {
			if err := placeMount(root, m); err != nil {
				return err
			}
		}
	}
	return nil
}

// attachLate places the --overlay mounts and masks the --inaccessible
// paths, after every other mount.
func attachLate(root string, msg *initMsg) error {
	if st := msg.Storage; st != nil {
		for _, m := range st.Mounts {
			if m.Late && m.Bind == 0 {
				if err := placeMount(root, m); err != nil {
					return err
				}
			}
		}
	}
	for _, p := range msg.Config.Inaccessible {
		if err := makeInaccessible(root, p); err != nil {
			return err
		}
	}
	// An OCI bundle's maskedPaths: a path the container lacks needs no mask.
	for _, p := range msg.Config.MaskedPaths {
		if _, err := os.Lstat(inRoot(root, p)); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := makeInaccessible(root, p); err != nil {
			return fmt.Errorf("OCI bundle linux.maskedPaths: %w", err)
		}
	}
	return nil
}

// idmapBind maps the IDs of a --bind source for the container: "idmap"
// shows the host's IDs 0..N-1 as the same IDs inside, "rootidmap" shows the
// source directory's owner as the container's root (and nothing else).
func (s *storageState) idmapBind(fd int, b config.BindMount, st *unix.Stat_t) error {
	uid, gid, size := uint32(0), uint32(0), s.msg.Range
	if b.IDMap == "rootidmap" {
		uid, gid, size = st.Uid, st.Gid, 1
	}
	h, err := idmap.NewUserNSIDs(uid, gid, s.msg.Shift, size)
	if err != nil {
		return fmt.Errorf("--bind=%s:%s:%s: %w", b.Source, b.Dest, b.IDMap, err)
	}
	defer h.Close()
	flags := uint(unix.AT_EMPTY_PATH)
	if b.Recursive {
		flags |= unix.AT_RECURSIVE
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(h.File().Fd())}
	if err := unix.MountSetattr(fd, "", flags, &attr); err != nil {
		return fmt.Errorf("--bind=%s:%s:%s: idmapping: %w", b.Source, b.Dest, b.IDMap, err)
	}
	return nil
}

// placeBind attaches the bind the parent made for Config.Binds[i], if it
// made one.
func placeBind(root string, msg *initMsg, i int) (bool, error) {
	if msg.Storage == nil {
		return false, nil
	}
	for _, m := range msg.Storage.Mounts {
		if m.Bind == i+1 {
			return true, placeMount(root, m)
		}
	}
	return false, nil
}

func placeMount(root string, m placement) error {
	unix.CloseOnExec(m.FD)
	dst := inRoot(root, m.Dest)
	switch {
	case m.File:
		if err := mountpoint.File(dst); err != nil {
			return err
		}
	case m.Dest != "/":
		if err := mountpoint.Dir(dst, 0o755); err != nil {
			return err
		}
	}
	if m.Sub != "" {
		return placeSubdir(dst, m)
	}
	if err := unix.MoveMount(m.FD, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attaching the mount for %s: %w", m.Dest, err)
	}
	unix.Close(m.FD)
	return nil
}

// placeSubdir places only the directory m.Sub of the mount m.FD at dst.
// Cloning a directory of a detached mount (open_tree) needs a recent
// kernel; one of the caller's mount namespace, any kernel clones. So the
// whole mount is attached at dst for a moment, in the container's mount
// namespace (nothing propagates to the host's), its directory cloned, the
// mount detached and the clone attached in its place. The clone keeps
// the mount's attributes (read-only, idmapped).
func placeSubdir(dst string, m placement) error {
	if err := unix.MoveMount(m.FD, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attaching the mount for %s: %w", m.Dest, err)
	}
	unix.Close(m.FD)
	sub, err := unix.OpenTree(unix.AT_FDCWD, filepath.Join(dst, filepath.Clean("/"+m.Sub)),
		unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE|unix.AT_SYMLINK_NOFOLLOW)
	if uerr := unix.Unmount(dst, unix.MNT_DETACH); uerr != nil && err == nil {
		unix.Close(sub)
		return fmt.Errorf("detaching the mount for %s: %w", m.Dest, uerr)
	}
	if err != nil {
		return fmt.Errorf("cloning %s of the mount for %s: %w", m.Sub, m.Dest, err)
	}
	defer unix.Close(sub)
	if err := unix.MoveMount(sub, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attaching %s of the mount for %s: %w", m.Sub, m.Dest, err)
	}
	return nil
}

// makeInaccessible masks a path with an empty, read-only node: an empty
// tmpfs for a directory, an empty mode-0000 file otherwise.
func makeInaccessible(root, p string) error {
	dst := inRoot(root, p)
	fi, err := os.Lstat(dst)
	if err != nil {
		return fmt.Errorf("--inaccessible=%s: %w", p, err)
	}
	if fi.IsDir() {
		if err := mount("tmpfs", dst, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=000,nr_inodes=2"); err != nil {
			return fmt.Errorf("--inaccessible=%s: %w", p, err)
		}
		return nil
	}
	node := inRoot(root, "/run/netspawn/inaccessible/reg")
	if _, err := os.Lstat(node); err != nil {
		if err := os.MkdirAll(filepath.Dir(node), 0o755); err != nil {
			return fmt.Errorf("--inaccessible=%s: %w", p, err)
		}
		if err := os.WriteFile(node, nil, 0); err != nil {
			return fmt.Errorf("--inaccessible=%s: %w", p, err)
		}
	}
	if err := mount(node, dst, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("--inaccessible=%s: %w", p, err)
	}
	if err := makeReadOnly(dst, false); err != nil {
		return fmt.Errorf("--inaccessible=%s: %w", p, err)
	}
	return nil
}

// mountSysfs mounts /sys read-only. Inside a user namespace without a
// network namespace of its own the kernel refuses a new sysfs: bind the
// host's read-only instead.
func mountSysfs(dst string, writable bool) error {
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RDONLY)
	if writable {
		flags &^= unix.MS_RDONLY
	}
	err := unix.Mount("sysfs", dst, "sysfs", flags, "")
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("mounting sysfs on %s: %w", dst, err)
	}
	if err := mount("/sys", dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	if writable {
		return nil
	}
	return makeReadOnly(dst, true)
}
