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

	"golang.org/x/sys/unix"
)

// Storage holds the root file system and user namespace options. It is
// embedded in Config, so its fields read as cfg.Ephemeral and so on.
type Storage struct {
	PrivateUsers PrivateUsers   `json:"private_users,omitempty"` // -U, --private-users=, --private-users-ownership=
	Ephemeral    bool           `json:"ephemeral,omitempty"`     // -x
	Template     string         `json:"template,omitempty"`      // --template=
	Volatile     VolatileMode   `json:"volatile,omitempty"`      // --volatile=
	Overlays     []OverlayMount `json:"overlays,omitempty"`      // --overlay=, --overlay-ro=
	Inaccessible []string       `json:"inaccessible,omitempty"`  // --inaccessible=
}

// placement is a detached mount the parent built, to be attached by the
// container's first process at Dest (a container path).
type placement struct {
	FD   int    `json:"fd"`
	Dest string `json:"dest"`
	Late bool   `json:"late,omitempty"` // after the API file systems and binds
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

// storageState is the parent's side: the detached mounts to hand over and
// what to undo when the container is gone.
type storageState struct {
	msg      storageMsg
	files    []*os.File // one per msg.Mounts entry, same order
	claim    *os.File
	lowers   []*os.File // detached idmapped layers, held while mounting
	mapped   bool       // the root's ownership is already mapped
	exe      *os.File
	holder   *userNSHolder
	runDir   *runDir
	cleanups []func()
}

// prepareImage handles what must happen before the directory is checked:
// --template creates it; -x renames a machine named after its path.
func prepareImage(cfg *Config) error {
	if cfg.Template != "" {
		if cfg.Ephemeral {
			return errors.New("--template= and --ephemeral cannot be combined")
		}
		if err := applyTemplate(cfg.Template, cfg.Directory); err != nil {
			return err
		}
	}
	if cfg.Ephemeral && cfg.Volatile != VolatileNo {
		return errors.New("--ephemeral and --volatile= cannot be combined")
	}
	if cfg.Ephemeral && cfg.Directory != "" && (cfg.Machine == "" || cfg.Machine == filepath.Base(filepath.Clean(cfg.Directory))) {
		name := cfg.Machine
		if name == "" {
			name = filepath.Base(filepath.Clean(cfg.Directory))
		}
		cfg.Machine = ephemeralMachineName(name, randomHex(8))
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

// prepareStorage builds the container's root file system and user
// namespace settings in the parent, after the directory was checked.
func prepareStorage(cfg *Config) (_ *storageState, err error) {
	s := &storageState{}
	defer func() {
		if err != nil {
			s.cleanup()
		}
	}()
	pu := cfg.PrivateUsers
	needsWork := pu.Enabled() || cfg.Ephemeral || cfg.Volatile != VolatileNo || len(cfg.Overlays) > 0
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

	tree := cfg.Directory
	var tst unix.Stat_t
	if err := unix.Stat(tree, &tst); err != nil {
		return nil, fmt.Errorf("directory %s: %w", tree, err)
	}
	ownerBase, ownerOK := ownerRange(tst.Uid, tst.Gid)

	// The user namespace range.
	if pu.Enabled() {
		if err := s.pickUserNS(cfg, tree, ownerBase, ownerOK); err != nil {
			return nil, err
		}
	}

	// The root mount, if it is not a plain bind of the tree.
	rootFD := -1
	rootPath := tree // where the root's content is reachable from the parent
	addRoot := func(fd int, dest string) {
		s.add(fd, dest, false)
		if dest == "/" {
			rootFD = fd
			rootPath = fmt.Sprintf("/proc/self/fd/%d", fd)
		}
	}
	switch {
	case cfg.Ephemeral:
		if isBtrfsSubvolume(tree) {
			snap, err := s.snapshotEphemeral(tree)
			if err != nil {
				return nil, err
			}
			cfg.Directory, tree, rootPath = snap, snap, snap
			break
		}
		d, err := s.runDir.mkdir("ephemeral")
		if err != nil {
			return nil, err
		}
		lower, err := s.idmappedLower(cfg, tree, ownerBase)
		if err != nil {
			return nil, fmt.Errorf("--ephemeral: %w", err)
		}
		if err := s.makeUpper(filepath.Join(d, "upper"), &tst, cfg); err != nil {
			return nil, err
		}
		fd, err := mountOverlay([]string{lower}, filepath.Join(d, "upper"), filepath.Join(d, "work"), false)
		if err != nil {
			return nil, fmt.Errorf("--ephemeral: %w", err)
		}
		addRoot(fd, "/")
	case cfg.Volatile == VolatileYes:
		fd, err := mountTmpfs("mode=0755")
		if err != nil {
			return nil, fmt.Errorf("--volatile=yes: %w", err)
		}
		addRoot(fd, "/")
		if err := populateVolatileRoot(rootPath, tree); err != nil {
			return nil, err
		}
		usr, err := cloneTree(filepath.Join(tree, "usr"))
		if err != nil {
			return nil, fmt.Errorf("--volatile=yes: %w", err)
		}
		if err := setMountAttr(usr, unix.MOUNT_ATTR_RDONLY); err != nil {
			unix.Close(usr)
			return nil, fmt.Errorf("--volatile=yes: making /usr read-only: %w", err)
		}
		s.add(usr, "/usr", false)
	case cfg.Volatile == VolatileState:
		fd, err := mountTmpfs("mode=0755")
		if err != nil {
			return nil, fmt.Errorf("--volatile=state: %w", err)
		}
		s.add(fd, "/var", false)
		cfg.ReadOnly = true
	case cfg.Volatile == VolatileOverlay:
		tfd, err := mountTmpfs("mode=0755")
		if err != nil {
			return nil, fmt.Errorf("--volatile=overlay: %w", err)
		}
		base := fmt.Sprintf("/proc/self/fd/%d", tfd)
		lower, err := s.idmappedLower(cfg, tree, ownerBase)
		if err != nil {
			unix.Close(tfd)
			return nil, fmt.Errorf("--volatile=overlay: %w", err)
		}
		if err := s.makeUpper(base+"/upper", &tst, cfg); err != nil {
			unix.Close(tfd)
			return nil, err
		}
		fd, err := mountOverlay([]string{lower}, base+"/upper", base+"/work", false)
		unix.Close(tfd)
		if err != nil {
			return nil, fmt.Errorf("--volatile=overlay: %w", err)
		}
		addRoot(fd, "/")
	}

	if pu.Enabled() {
		if err := s.shiftOwnership(cfg, tree, rootPath, rootFD, ownerBase); err != nil {
			return nil, err
		}
	}

	for _, o := range cfg.Overlays {
		if err := s.addOverlay(o, rootPath); err != nil {
			return nil, err
		}
	}
	if pu.Enabled() {
		if len(s.msg.Mounts) == 0 || s.msg.Mounts[0].Dest != "/" {
			fd, err := cloneTree(tree)
			if err != nil {
				return nil, err
			}
			s.files = append([]*os.File{os.NewFile(uintptr(fd), "mount:/")}, s.files...)
			s.msg.Mounts = append([]placement{{Dest: "/"}}, s.msg.Mounts...)
		}
		s.msg.Root = filepath.Join(s.runDir.path, "root")
		if err := os.Mkdir(s.msg.Root, 0o755); err != nil {
			return nil, fmt.Errorf("creating the container's mount point: %w", err)
		}
	}
	return s, nil
}

// containerRoot is the path the container's first process builds the
// container's file system at.
func containerRoot(msg *initMsg) string {
	if msg.Storage != nil && msg.Storage.Root != "" {
		return msg.Storage.Root
	}
	return msg.Config.Directory
}

func (s *storageState) add(fd int, dest string, late bool) {
	s.files = append(s.files, os.NewFile(uintptr(fd), "mount:"+dest))
	s.msg.Mounts = append(s.msg.Mounts, placement{Dest: dest, Late: late})
}

// pickUserNS decides the container's UID range and claims it.
func (s *storageState) pickUserNS(cfg *Config, tree string, ownerBase uint32, ownerOK bool) error {
	pu := &cfg.PrivateUsers
	if pu.Range == 0 {
		pu.Range = uidRangeSize
	}
	reg, err := openRangeRegistry(stateDir())
	if err != nil {
		return err
	}
	defer reg.close()
	running, err := reg.running()
	if err != nil {
		return err
	}
	switch pu.Mode {
	case UserNSIdentity:
		pu.Shift = 0
	case UserNSYes:
		if !ownerOK {
			return fmt.Errorf("--private-users=yes: the owner of %s is not the start of a 64K UID range (use pick or UIDBASE)", tree)
		}
		pu.Shift = ownerBase
	case UserNSPick:
		trees, err := reg.trees()
		if err != nil {
			return err
		}
		pu.Shift, err = pickRange(tree, cfg.Machine, ownerBase, ownerOK, running, hostIDsInUse(), trees)
		if err != nil {
			return err
		}
		if err := reg.remember(tree, pu.Shift); err != nil {
			return err
		}
	}
	if pu.Mode != UserNSIdentity {
		if s.claim, err = reg.claim(uidRange{pu.Shift, pu.Range}); err != nil {
			return err
		}
	}
	s.msg.UserNS, s.msg.Shift, s.msg.Range = true, pu.Shift, pu.Range
	return nil
}

// shiftOwnership makes the tree's files belong to the container's range,
// with chown or an idmapped root mount.
func (s *storageState) shiftOwnership(cfg *Config, tree, rootPath string, rootFD int, ownerBase uint32) error {
	pu := cfg.PrivateUsers
	own := effectiveOwnership(pu)
	if own == OwnershipOff || ownerBase == pu.Shift || s.mapped {
		return nil
	}
	if own == OwnershipMap || own == OwnershipAuto {
		err := s.idmapRoot(cfg, tree, rootFD, ownerBase)
		if err == nil {
			return nil
		}
		if own == OwnershipMap {
			return fmt.Errorf("--private-users-ownership=map: %w", err)
		}
		slog.Debug("idmapped mount not possible, shifting ownership with chown", "err", err)
	}
	if pu.Range != uidRangeSize {
		return fmt.Errorf("--private-users-ownership=chown needs a 65536-UID range")
	}
	if !cfg.Quiet {
		fmt.Fprintf(os.Stderr, "Shifting ownership of %s from UID %d to %d.\n", tree, ownerBase, pu.Shift)
	}
	if err := chownTree(rootPath, ownerBase, pu.Shift, pu.Range); err != nil {
		return err
	}
	// Volatile/ephemeral roots built here are separate mounts: /usr too.
	for i, m := range s.msg.Mounts {
		if m.Dest == "/usr" || m.Dest == "/var" {
			p := fmt.Sprintf("/proc/self/fd/%d", s.files[i].Fd())
			if err := chownTree(p, ownerBase, pu.Shift, pu.Range); err != nil {
				return err
			}
		}
	}
	return nil
}

// makeUpper creates the upper layer of an overlay over the whole tree with
// the tree root's mode and owner (as the container sees it when the lower
// layer is idmapped): the overlay's root directory takes them from it.
func (s *storageState) makeUpper(upper string, tree *unix.Stat_t, cfg *Config) error {
	if err := os.Mkdir(upper, 0o755); err != nil {
		return fmt.Errorf("creating upper layer: %w", err)
	}
	uid, gid := tree.Uid, tree.Gid
	if s.mapped {
		base, _ := ownerRange(tree.Uid, tree.Gid)
		uid, _ = shiftID(tree.Uid, base, cfg.PrivateUsers.Shift, cfg.PrivateUsers.Range)
		gid, _ = shiftID(tree.Gid, base, cfg.PrivateUsers.Shift, cfg.PrivateUsers.Range)
	}
	if err := os.Lchown(upper, int(uid), int(gid)); err != nil {
		return fmt.Errorf("creating upper layer: %w", err)
	}
	if err := os.Chmod(upper, os.FileMode(tree.Mode&0o777)); err != nil {
		return fmt.Errorf("creating upper layer: %w", err)
	}
	return nil
}

// idmappedLower returns the path to use as the lower layer of an overlay
// over tree: with a user namespace that maps ownership, an idmapped
// detached copy of the tree (overlayfs itself cannot be idmapped, its
// layers can); the tree itself otherwise. The overlay's root is then
// marked as already mapped.
func (s *storageState) idmappedLower(cfg *Config, tree string, ownerBase uint32) (string, error) {
	pu := cfg.PrivateUsers
	own := effectiveOwnership(pu)
	if !pu.Enabled() || ownerBase == pu.Shift || (own != OwnershipMap && own != OwnershipAuto) {
		return tree, nil
	}
	h, err := newUserNS(ownerBase, pu.Shift, pu.Range)
	if err != nil {
		return "", err
	}
	s.holder = h
	fd, err := cloneTree(tree)
	if err != nil {
		return "", err
	}
	s.lowers = append(s.lowers, os.NewFile(uintptr(fd), "lower"))
	if err := idmapMount(fd, h.fd); err != nil {
		if own == OwnershipMap {
			return "", fmt.Errorf("--private-users-ownership=map: %w", err)
		}
		return tree, nil
	}
	s.mapped = true
	return fmt.Sprintf("/proc/self/fd/%d", fd), nil
}

// idmapRoot maps the tree's range onto the container's with an idmapped
// mount of the root (and of the other mounts built from the tree).
func (s *storageState) idmapRoot(cfg *Config, tree string, rootFD int, ownerBase uint32) error {
	pu := cfg.PrivateUsers
	if s.holder == nil {
		h, err := newUserNS(ownerBase, pu.Shift, pu.Range)
		if err != nil {
			return err
		}
		s.holder = h
	}
	if rootFD < 0 {
		fd, err := cloneTree(tree)
		if err != nil {
			return err
		}
		// Placed first: the root comes before any mount below it.
		s.files = append([]*os.File{os.NewFile(uintptr(fd), "mount:/")}, s.files...)
		s.msg.Mounts = append([]placement{{Dest: "/"}}, s.msg.Mounts...)
	}
	for i, m := range s.msg.Mounts {
		if m.Late {
			continue
		}
		if err := idmapMount(int(s.files[i].Fd()), s.holder.fd); err != nil {
			return fmt.Errorf("%s: %w", m.Dest, err)
		}
	}
	return nil
}

// addOverlay builds one --overlay/--overlay-ro mount.
func (s *storageState) addOverlay(o OverlayMount, rootPath string) error {
	flag := "--overlay"
	if o.ReadOnly {
		flag = "--overlay-ro"
	}
	resolve := func(p OverlayPath) string {
		if p.InRoot {
			return filepath.Join(rootPath, p.Path)
		}
		return p.Path
	}
	var lowers []string // top first
	for i := len(o.Lower) - 1; i >= 0; i-- {
		lowers = append(lowers, resolve(o.Lower[i]))
	}
	var upper, work string
	switch {
	case o.Upper.Path == "":
		d, err := s.runDir.mkdir("overlay")
		if err != nil {
			return err
		}
		upper, work = filepath.Join(d, "upper"), filepath.Join(d, "work")
	default:
		upper = resolve(o.Upper)
		if err := os.MkdirAll(upper, 0o755); err != nil {
			return fmt.Errorf("%s: creating upper directory: %w", flag, err)
		}
		if !o.ReadOnly {
			w, err := os.MkdirTemp(filepath.Dir(upper), ".#"+filepath.Base(upper)+".netspawn-work-")
			if err != nil {
				return fmt.Errorf("%s: creating work directory next to %s: %w", flag, upper, err)
			}
			s.cleanups = append(s.cleanups, func() { _ = os.RemoveAll(w) })
			s.runDir.note(w)
			work = w
		}
	}
	if o.ReadOnly {
		// No upper layer: what was given as upper is the topmost lower one.
		if o.Upper.Path != "" {
			lowers = append([]string{upper}, lowers...)
		}
		upper, work = "", ""
	}
	var fd int
	var err error
	if len(lowers) == 1 && upper == "" {
		// overlayfs needs two layers without an upper one: one read-only
		// layer is a read-only bind.
		fd, err = cloneTree(lowers[0])
		if err == nil {
			if err = setMountAttr(fd, unix.MOUNT_ATTR_RDONLY); err != nil {
				unix.Close(fd)
			}
		}
	} else {
		fd, err = mountOverlay(lowers, upper, work, o.ReadOnly)
	}
	if err != nil {
		return fmt.Errorf("%s=...:%s: %w", flag, o.Dest, err)
	}
	s.add(fd, o.Dest, true)
	return nil
}

// apply hands the detached mounts and the user namespace to the container
// process about to be started.
func (s *storageState) apply(cmd *exec.Cmd, msg *initMsg) {
	if s == nil || (len(s.files) == 0 && !s.msg.UserNS) {
		return
	}
	for i, f := range s.files {
		s.msg.Mounts[i].FD = 3 + len(cmd.ExtraFiles)
		cmd.ExtraFiles = append(cmd.ExtraFiles, f)
	}
	msg.Storage = &s.msg
	if s.msg.UserNS {
		m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(s.msg.Shift), Size: int(s.msg.Range)}}
		// Go writes the maps before the child execs, and the child becomes
		// UID 0 of the namespace (its host UID 0 is not mapped there), so
		// the re-executed netspawn starts as the namespace's root with its
		// capabilities.
		cmd.SysProcAttr.Cloneflags |= unix.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings = m
		cmd.SysProcAttr.GidMappings = m
		cmd.SysProcAttr.GidMappingsEnableSetgroups = true
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0, Groups: []uint32{}}
		// As that user the binary's directory may be out of reach (a 0700
		// build directory): execute it through an inherited descriptor.
		if exe, err := os.Open(cmd.Path); err == nil {
			s.exe = exe
			s.msg.ExeFD = 3 + len(cmd.ExtraFiles)
			cmd.ExtraFiles = append(cmd.ExtraFiles, exe)
			cmd.Path = fmt.Sprintf("/proc/self/fd/%d", s.msg.ExeFD)
		}
	}
}

// cleanup releases everything once the container is gone: the temporary
// upper layers, an ephemeral snapshot, the UID range claim.
func (s *storageState) cleanup() {
	if s == nil {
		return
	}
	for _, f := range s.files {
		f.Close()
	}
	s.files = nil
	for _, f := range s.lowers {
		f.Close()
	}
	s.lowers = nil
	if s.exe != nil {
		s.exe.Close()
	}
	for i := len(s.cleanups) - 1; i >= 0; i-- {
		s.cleanups[i]()
	}
	s.cleanups = nil
	s.holder.close()
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

// mountTmpfs creates a detached tmpfs mount.
func mountTmpfs(opts string) (int, error) {
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
	return fsCreateMount(fsfd, 0)
}

// mountOverlay creates a detached overlayfs mount; lowers are topmost
// first. Without upper the overlay is read-only.
func mountOverlay(lowers []string, upper, work string, readOnly bool) (int, error) {
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

// populateVolatileRoot prepares a --volatile=yes tmpfs root: /usr as a
// mount point and the tree's top-level symlinks into /usr (bin -> usr/bin
// and the like), so a merged-/usr OS finds its programs.
func populateVolatileRoot(root, tree string) error {
	if err := os.Mkdir(filepath.Join(root, "usr"), 0o755); err != nil {
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
			if m.Late {
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
	return nil
}

func placeMount(root string, m placement) error {
	unix.CloseOnExec(m.FD)
	dst := inRoot(root, m.Dest)
	if m.Dest != "/" {
		if err := mkdirAll(dst, 0o755); err != nil {
			return err
		}
	}
	if err := unix.MoveMount(m.FD, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attaching the mount for %s: %w", m.Dest, err)
	}
	unix.Close(m.FD)
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
func mountSysfs(dst string) error {
	err := unix.Mount("sysfs", dst, "sysfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC|unix.MS_RDONLY, "")
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("mounting sysfs on %s: %w", dst, err)
	}
	if err := mount("/sys", dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	return makeReadOnly(dst, true)
}
