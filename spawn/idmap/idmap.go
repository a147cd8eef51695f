// Package idmap gives containers their user-namespace IDs: the 64K ranges
// (picked per machine, remembered per tree, claimed with a lock while a
// machine runs), the holder processes that keep a mapping alive for
// idmapped mounts, and the chown of a tree (ACLs included) from one range
// to another.
package idmap

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/netspawn/netspawn/internal/atomicfile"
	"github.com/netspawn/netspawn/spawn/config"
	"github.com/netspawn/netspawn/spawn/internal/proc"
	"golang.org/x/sys/unix"
)

// Registry remembers which UID range each tree uses (trees.json) and
// which ranges running containers hold (one locked file per range under
// running/: a lock the kernel drops when its holder dies, so a crashed
// netspawn leaves no stale claim). All access happens under an exclusive
// lock on the registry directory's lock file.
type Registry struct {
	dir  string
	lock *os.File
}

func OpenRegistry(state string) (*Registry, error) {
	dir := filepath.Join(state, "userns")
	if err := os.MkdirAll(filepath.Join(dir, "running"), 0o700); err != nil {
		return nil, fmt.Errorf("creating UID range registry: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening UID range registry lock: %w", err)
	}
	if err := flockRetry(f, unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking UID range registry: %w", err)
	}
	return &Registry{dir: dir, lock: f}, nil
}

func flockRetry(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// close releases the registry lock (claims stay held by their files).
func (r *Registry) Close() {
	if r.lock != nil {
		r.lock.Close()
		r.lock = nil
	}
}

type Range struct{ Start, Size uint32 }

func claimName(start, size uint32) string { return fmt.Sprintf("%d-%d.lock", start, size) }

func parseClaimName(n string) (Range, bool) {
	s, ok := strings.CutSuffix(n, ".lock")
	if !ok {
		return Range{}, false
	}
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return Range{}, false
	}
	start, err1 := strconv.ParseUint(a, 10, 32)
	size, err2 := strconv.ParseUint(b, 10, 32)
	if err1 != nil || err2 != nil {
		return Range{}, false
	}
	return Range{uint32(start), uint32(size)}, true
}

// running lists the ranges held by live containers, removing claims whose
// holder is gone.
func (r *Registry) Running() ([]Range, error) {
	dir := filepath.Join(r.dir, "running")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading UID range claims: %w", err)
	}
	var out []Range
	for _, e := range ents {
		rg, ok := parseClaimName(e.Name())
		if !ok {
			continue
		}
		p := filepath.Join(dir, e.Name())
		f, err := os.OpenFile(p, os.O_RDWR|syscall.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err == nil {
			// Nobody holds it: its container is gone.
			_ = os.Remove(p)
			f.Close()
			continue
		}
		f.Close()
		out = append(out, rg)
	}
	return out, nil
}

// claim marks a range as used by this process until the returned file is
// closed (or the process dies).
func (r *Registry) Claim(rg Range) (*os.File, error) {
	p := filepath.Join(r.dir, "running", claimName(rg.Start, rg.Size))
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("claiming UID range %d: %w", rg.Start, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("UID range %d:%d is in use by another container", rg.Start, rg.Size)
	}
	_, _ = fmt.Fprintf(f, "%d\n", os.Getpid())
	return f, nil
}

func (r *Registry) treesFile() string { return filepath.Join(r.dir, "trees.json") }

// trees returns the remembered range start of each tree.
func (r *Registry) Trees() (map[string]uint32, error) {
	m := map[string]uint32{}
	b, err := os.ReadFile(r.treesFile())
	if errors.Is(err, os.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", r.treesFile(), err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		// A damaged registry only costs the memory of ranges: start afresh.
		return map[string]uint32{}, nil
	}
	return m, nil
}

// remember records the range a tree uses (write, fsync, rename).
func (r *Registry) Remember(tree string, start uint32) error {
	m, err := r.Trees()
	if err != nil {
		return err
	}
	if cur, ok := m[tree]; ok && cur == start {
		return nil
	}
	m[tree] = start
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(r.treesFile(), append(b, '\n'), 0o600)
}

// machineHash is the stable hash of a machine name used to pick its range.
func machineHash(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte("netspawn-uid-range\x00"))
	h.Write([]byte(name))
	return h.Sum64()
}

// HostIDsInUse reads the IDs of the host's users and groups, which a
// container range must not cover.
func HostIDsInUse() []uint32 {
	var ids []uint32
	for _, f := range []string{"/etc/passwd", "/etc/group"} {
		file, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(file)
		for sc.Scan() {
			fields := strings.Split(sc.Text(), ":")
			if len(fields) < 3 {
				continue
			}
			if n, err := strconv.ParseUint(fields[2], 10, 32); err == nil {
				ids = append(ids, uint32(n))
			}
		}
		file.Close()
	}
	return ids
}

// rangeFree reports whether [start, start+size) overlaps none of the
// running ranges, host IDs, or (unless it is this tree's) other trees'.
func rangeFree(start, size uint32, running []Range, hostIDs []uint32, others []uint32) bool {
	for _, r := range running {
		if rangesOverlap(start, size, r.Start, r.Size) {
			return false
		}
	}
	for _, id := range hostIDs {
		if id != 65534 && id != 4294967295 && rangesOverlap(start, size, id, 1) {
			return false
		}
	}
	for _, o := range others {
		if rangesOverlap(start, size, o, config.UIDRangeSize) {
			return false
		}
	}
	return true
}

// PickRange chooses the range for a pick container: the tree's remembered
// range, else its owner's, when free; else the first free range starting at
// the machine name's hash. Ranges remembered for other trees are avoided
// while any other is free.
func PickRange(tree, machine string, owner uint32, ownerOK bool, running []Range, hostIDs []uint32, trees map[string]uint32) (uint32, error) {
	var others []uint32
	for t, s := range trees {
		if t != tree {
			others = append(others, s)
		}
	}
	if s, ok := trees[tree]; ok && s >= config.UIDPickMin && s < config.UIDPickMax && rangeFree(s, config.UIDRangeSize, running, hostIDs, nil) {
		return s, nil
	}
	if ownerOK && owner >= config.UIDPickMin && owner < config.UIDPickMax && rangeFree(owner, config.UIDRangeSize, running, hostIDs, nil) {
		return owner, nil
	}
	for _, avoid := range [][]uint32{others, nil} {
		for s := range rangeCandidates(machineHash(machine)) {
			if rangeFree(s, config.UIDRangeSize, running, hostIDs, avoid) {
				return s, nil
			}
		}
	}
	return 0, ErrNoFreeRange
}

// Holder keeps a user namespace with a given mapping alive, for
// idmapped mounts: a stopped child process of ours cloned into it.
type Holder struct {
	cmd *exec.Cmd
	fd  *os.File
}

// NewUserNS creates a user namespace mapping [from, from+size) onto host
// IDs [to, to+size), held by a child that waits on a pipe.
func NewUserNS(from, to, size uint32) (*Holder, error) {
	return NewUserNSIDs(from, from, to, size)
}

// NewUserNSIDs is NewUserNS with separate starts for UIDs and GIDs.
func NewUserNSIDs(uidFrom, gidFrom, to, size uint32) (*Holder, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding own executable: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("creating pipe: %w", err)
	}
	defer r.Close()
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		w.Close()
		return nil, err
	}
	defer devnull.Close()
	// The netspawn-init entry point blocks reading its setup pipe (fd 3)
	// and exits when that is closed: a process that only holds the namespace.
	cmd := exec.Command(exe)
	cmd.Args = []string{proc.InitArg0}
	cmd.Env = []string{}
	cmd.ExtraFiles = []*os.File{r, devnull}
	um := []syscall.SysProcIDMap{{ContainerID: int(uidFrom), HostID: int(to), Size: int(size)}}
	gm := []syscall.SysProcIDMap{{ContainerID: int(gidFrom), HostID: int(to), Size: int(size)}}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER, UidMappings: um, GidMappings: gm,
		GidMappingsEnableSetgroups: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("creating a user namespace for the idmapped mount: %w", err)
	}
	h := &Holder{cmd: cmd}
	h.fd, err = os.Open(fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid))
	w.Close() // the holder exits; the namespace lives on through h.fd
	_ = cmd.Wait()
	if err != nil {
		return nil, fmt.Errorf("opening the idmapping user namespace: %w", err)
	}
	return h, nil
}

// File is the user namespace, for MountIDMapped.
func (h *Holder) File() *os.File { return h.fd }

// Close releases the namespace.
func (h *Holder) Close() {
	if h != nil && h.fd != nil {
		h.fd.Close()
	}
}

// MountIDMapped turns the detached mount mfd into an idmapped one, recursively.
func MountIDMapped(mfd int, userns *os.File) error {
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns.Fd())}
	if err := unix.MountSetattr(mfd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
		return fmt.Errorf("idmapping mount: %w", err)
	}
	return nil
}

// CloneTree makes a detached recursive copy of the mounts at path.
func CloneTree(path string) (int, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return -1, fmt.Errorf("cloning mount tree of %s: %w", path, err)
	}
	return fd, nil
}

// ACL extended attributes whose entries carry UIDs and GIDs.
const (
	xattrACLAccess  = "system.posix_acl_access"
	xattrACLDefault = "system.posix_acl_default"
)

// POSIX ACL xattr layout: a 4-byte version, then 8-byte entries of tag
// (u16), perm (u16), id (u32), little endian.
const (
	aclTagUser  = 0x02
	aclTagGroup = 0x08
)

// shiftACL rewrites the user and group IDs in an ACL xattr value; it
// returns nil when nothing changed.
func shiftACL(v []byte, from, to, size uint32) []byte {
	if len(v) < 4 || (len(v)-4)%8 != 0 {
		return nil
	}
	out := append([]byte(nil), v...)
	changed := false
	for i := 4; i+8 <= len(out); i += 8 {
		tag := binary.LittleEndian.Uint16(out[i:])
		if tag != aclTagUser && tag != aclTagGroup {
			continue
		}
		id := binary.LittleEndian.Uint32(out[i+4:])
		if n, ok := ShiftID(id, from, to, size); ok && n != id {
			binary.LittleEndian.PutUint32(out[i+4:], n)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return out
}

// ChownTree shifts the ownership of every file below root (not crossing
// into other file systems) from the range at from to the range at to,
// including POSIX ACLs. The root directory is done last, so an
// interrupted run is redone next time (the root's owner says which range
// the tree is in).
func ChownTree(root string, from, to, size uint32) error {
	var rootDev uint64
	var st unix.Stat_t
	if err := unix.Lstat(root, &st); err != nil {
		return fmt.Errorf("chown of %s: %w", root, err)
	}
	rootDev = st.Dev
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if st.Dev != rootDev {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		return shiftOne(p, &st, from, to, size)
	})
	if err != nil {
		return fmt.Errorf("shifting ownership of %s: %w", root, err)
	}
	if err := shiftOne(root, &st, from, to, size); err != nil {
		return fmt.Errorf("shifting ownership of %s: %w", root, err)
	}
	return nil
}

func shiftOne(p string, st *unix.Stat_t, from, to, size uint32) error {
	uid, uok := ShiftID(st.Uid, from, to, size)
	gid, gok := ShiftID(st.Gid, from, to, size)
	if uok || gok {
		mode := st.Mode
		if err := unix.Lchown(p, int(uid), int(gid)); err != nil {
			return err
		}
		// chown clears setuid/setgid bits: restore them (not on symlinks).
		if mode&unix.S_IFMT != unix.S_IFLNK && mode&(unix.S_ISUID|unix.S_ISGID) != 0 {
			if err := unix.Chmod(p, mode&0o7777); err != nil {
				return err
			}
		}
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return nil
	}
	for _, name := range []string{xattrACLAccess, xattrACLDefault} {
		buf := make([]byte, 4096)
		n, err := unix.Lgetxattr(p, name, buf)
		if err != nil {
			continue // no ACL, or no xattr support
		}
		if nv := shiftACL(buf[:n], from, to, size); nv != nil {
			if err := unix.Lsetxattr(p, name, nv, 0); err != nil {
				return fmt.Errorf("rewriting %s of %s: %w", name, p, err)
			}
		}
	}
	return nil
}
