package machine

import (
	"runtime"

	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// idMap is a process's user or group ID map (/proc/PID/uid_map): ranges of
// IDs inside its user namespace and where they are outside.
type idMap []struct{ inside, outside, count uint32 }

// parseIDMap parses the text of a uid_map or gid_map.
func parseIDMap(text string) (idMap, error) {
	var m idMap
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("ID map line %q: want three numbers", line)
		}
		var v [3]uint32
		for i, s := range f {
			n, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("ID map line %q: %w", line, err)
			}
			v[i] = uint32(n)
		}
		m = append(m, struct{ inside, outside, count uint32 }{v[0], v[1], v[2]})
	}
	return m, nil
}

// readIDMap reads process pid's uid_map ("uid") or gid_map ("gid").
func readIDMap(pid int, kind string) (idMap, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/" + kind + "_map")
	if err != nil {
		return nil, err
	}
	return parseIDMap(string(b))
}

// toHost maps an ID of the namespace to the host's; ok is false when the
// namespace has no such ID.
func (m idMap) toHost(id uint32) (uint32, bool) {
	for _, r := range m {
		if id >= r.inside && id-r.inside < r.count {
			return r.outside + (id - r.inside), true
		}
	}
	return 0, false
}

// toInside maps a host ID into the namespace; ok is false when it is not
// mapped there.
func (m idMap) toInside(id uint32) (uint32, bool) {
	for _, r := range m {
		if id >= r.outside && id-r.outside < r.count {
			return r.inside + (id - r.outside), true
		}
	}
	return 0, false
}

// identity reports whether the map is the initial namespace's (every ID is
// itself).
func (m idMap) identity() bool {
	return len(m) == 1 && m[0].inside == 0 && m[0].outside == 0 && m[0].count == ^uint32(0)
}

// machineIDs is how a machine's IDs sit on the host: identity for a
// machine in the host's user namespace.
type machineIDs struct {
	uids, gids idMap // nil: the host's own
}

// overflowID is the kernel's default overflowuid and overflowgid: what an
// unmapped ID reads as.
const overflowID = 65534

// readMachineIDs reads the ID maps of a machine's leader.
func readMachineIDs(leader int) (machineIDs, error) {
	uids, err := readIDMap(leader, "uid")
	if err != nil {
		return machineIDs{}, fmt.Errorf("reading the UID map of machine leader %d: %w", leader, err)
	}
	gids, err := readIDMap(leader, "gid")
	if err != nil {
		return machineIDs{}, fmt.Errorf("reading the GID map of machine leader %d: %w", leader, err)
	}
	if uids.identity() && gids.identity() {
		return machineIDs{}, nil
	}
	return machineIDs{uids: uids, gids: gids}, nil
}

func (m machineIDs) shifted() bool { return m.uids != nil }

// in maps the owner of a host file to the host IDs of the same owner in
// the machine; IDs the machine has not got become its root.
func (m machineIDs) in(uid, gid uint32) (int, int) {
	if !m.shifted() {
		return int(uid), int(gid)
	}
	u, ok := m.uids.toHost(uid)
	if !ok {
		u, _ = m.uids.toHost(0)
	}
	g, ok := m.gids.toHost(gid)
	if !ok {
		g, _ = m.gids.toHost(0)
	}
	return int(u), int(g)
}

// out maps the host IDs of a machine's file to the same owner on the host;
// IDs outside the machine's range become nobody.
func (m machineIDs) out(uid, gid uint32) (int, int) {
	if !m.shifted() {
		return int(uid), int(gid)
	}
	u, ok := m.uids.toInside(uid)
	if !ok {
		u = overflowID
	}
	g, ok := m.gids.toInside(gid)
	if !ok {
		g = overflowID
	}
	return int(u), int(g)
}

// asRoot runs f with the file system identity of the machine's root (see
// threadAsRoot) on a thread of its own; without a shift f just runs.
func (m machineIDs) asRoot(f func() error) error {
	if !m.shifted() {
		return f()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread's identity dies with it
		if err := m.threadAsRoot(); err != nil {
			errc <- err
			return
		}
		errc <- f()
	}()
	return <-errc
}

// threadAsRoot gives the calling thread, which must be locked and never be
// unlocked, the file system identity of the machine's root: files it
// creates in the machine are its root's even on an idmapped root (where the
// host's root, unmapped there, may create nothing: EOVERFLOW). The thread
// keeps every capability it had (changing the fsuid from 0 drops the file
// capabilities from the effective set; they are raised again from the
// permitted set), so it still reads any host file and chowns.
func (m machineIDs) threadAsRoot() error {
	if !m.shifted() {
		return nil
	}
	uid, _ := m.uids.toHost(0)
	gid, _ := m.gids.toHost(0)
	// setfsuid and setfsgid change the calling thread only.
	unix.Setfsgid(int(gid))
	unix.Setfsuid(int(uid))
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var caps [2]unix.CapUserData
	if err := unix.Capget(&hdr, &caps[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	caps[0].Effective, caps[1].Effective = caps[0].Permitted, caps[1].Permitted
	if err := unix.Capset(&hdr, &caps[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}
