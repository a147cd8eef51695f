package spawn

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/netspawn/netspawn/spawn/config"
)

// The container UIDs --bind-user= gives host users, as nspawn's
// MAP_UID_MIN/MAP_UID_MAX: a range systemd reserves for this.
const (
	bindUserUIDMin = 60514
	bindUserUIDMax = 60577
	nobodyUID      = 65534
)

// boundUser is one --bind-user=: the host user, the container UID (and
// GID) it gets, and the user records written to /run/host/userdb.
type boundUser struct {
	Name     string `json:"name"`
	UID      uint32 `json:"uid"` // in the container; the GID is the same
	HostUID  uint32 `json:"host_uid"`
	HostGID  uint32 `json:"host_gid"`
	Home     string `json:"home"` // on the host
	UserJSON string `json:"user_json"`
	// PrivJSON is the user record's privileged part (the hashed
	// password), "" when there is none.
	PrivJSON  string `json:"priv_json,omitempty"`
	GroupJSON string `json:"group_json"`
}

// hostAccount is what the host's user database says of a user.
type hostAccount struct {
	name      string
	uid, gid  uint32
	home      string
	groupName string
	hashed    string // from /etc/shadow, "" when none
}

// bindUserPlan maps each host account to a free container UID, as nspawn's
// bind_user_prepare: refusing root, nobody, IDs inside the container's
// range, users without a private group of their own name, and names or
// IDs the container's /etc/passwd and /etc/group already hold (ctPasswd
// and ctGroup, nil when the tree has none).
func bindUserPlan(accts []hostAccount, shift, size uint32, ctPasswd, ctGroup []byte) ([]boundUser, error) {
	users := parseDB(ctPasswd)
	groups := parseDB(ctGroup)
	next := uint32(bindUserUIDMin)
	var out []boundUser
	for _, a := range accts {
		if a.uid == 0 || a.name == "root" {
			return nil, errors.New("--bind-user=root: mapping the 'root' user is not supported")
		}
		if a.uid == nobodyUID || a.name == "nobody" {
			return nil, fmt.Errorf("--bind-user=%s: mapping the 'nobody' user is not supported", a.name)
		}
		if a.uid >= shift && a.uid-shift < size {
			return nil, fmt.Errorf("--bind-user=%s: UID %d of user '%s' to map is already in the container's UID range %d-%d, refusing", a.name, a.uid, a.name, shift, shift+size-1)
		}
		if a.gid >= shift && a.gid-shift < size {
			return nil, fmt.Errorf("--bind-user=%s: GID %d of group '%s' to map is already in the container's GID range %d-%d, refusing", a.name, a.gid, a.groupName, shift, shift+size-1)
		}
		if a.groupName != a.name {
			return nil, fmt.Errorf("--bind-user=%s: the user's group is '%s': mapping users without a private group of their own name is not supported", a.name, a.groupName)
		}
		for ; ; next++ {
			if next > bindUserUIDMax || next >= size {
				return nil, fmt.Errorf("--bind-user=%s: no free UID in the range %d-%d in the container, cannot map the user", a.name, bindUserUIDMin, bindUserUIDMax)
			}
			if !users.hasID(next) && !groups.hasID(next) {
				break
			}
		}
		if users.hasName(a.name) {
			return nil, fmt.Errorf("--bind-user=%s: the user '%s' already exists in the container", a.name, a.name)
		}
		if groups.hasName(a.name) {
			return nil, fmt.Errorf("--bind-user=%s: the group '%s' already exists in the container", a.name, a.name)
		}
		b, err := userRecords(a, next)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
		next++
	}
	return out, nil
}

// userRecords builds the JSON user and group records (systemd's User/Group
// Record format) nspawn writes for a bound user.
func userRecords(a hostAccount, uid uint32) (boundUser, error) {
	type userRec struct {
		UserName      string `json:"userName"`
		UID           uint32 `json:"uid"`
		GID           uint32 `json:"gid"`
		HomeDirectory string `json:"homeDirectory"`
		Service       string `json:"service"`
	}
	type groupRec struct {
		GroupName string `json:"groupName"`
		GID       uint32 `json:"gid"`
		Service   string `json:"service"`
	}
	const service = "io.systemd.NSpawn"
	b := boundUser{Name: a.name, UID: uid, HostUID: a.uid, HostGID: a.gid, Home: a.home}
	u, err := json.Marshal(userRec{a.name, uid, uid, "/run/host/home/" + a.name, service})
	if err != nil {
		return b, err
	}
	g, err := json.Marshal(groupRec{a.name, uid, service})
	if err != nil {
		return b, err
	}
	b.UserJSON, b.GroupJSON = string(u)+"\n", string(g)+"\n"
	if a.hashed != "" {
		p, err := json.Marshal(map[string]any{"privileged": map[string]any{"hashedPassword": []string{a.hashed}}})
		if err != nil {
			return b, err
		}
		b.PrivJSON = string(p) + "\n"
	}
	return b, nil
}

// idDB is the names and IDs of a passwd or group file.
type idDB struct {
	names map[string]bool
	ids   map[uint32]bool
}

func parseDB(data []byte) idDB {
	db := idDB{names: map[string]bool{}, ids: map[uint32]bool{}}
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 3 || f[0] == "" || strings.HasPrefix(f[0], "#") {
			continue
		}
		db.names[f[0]] = true
		if id, err := strconv.ParseUint(f[2], 10, 32); err == nil {
			db.ids[uint32(id)] = true
		}
	}
	return db
}

func (db idDB) hasName(n string) bool { return db.names[n] }
func (db idDB) hasID(id uint32) bool  { return db.ids[id] }

// userNSMaps is the container's UID (or GID) map with the bound users cut
// in, as nspawn's make_uid_map_string: the range shift..shift+size-1, except
// each bound user's container ID, which maps to the host's ID.
func userNSMaps(shift, size uint32, users []boundUser, gid bool) []syscall.SysProcIDMap {
	us := append([]boundUser(nil), users...)
	sort.Slice(us, func(i, j int) bool { return us[i].UID < us[j].UID })
	var m []syscall.SysProcIDMap
	prev := uint32(0)
	for _, u := range us {
		host := u.HostUID
		if gid {
			host = u.HostGID
		}
		if u.UID > prev {
			m = append(m, syscall.SysProcIDMap{ContainerID: int(prev), HostID: int(shift + prev), Size: int(u.UID - prev)})
		}
		m = append(m, syscall.SysProcIDMap{ContainerID: int(u.UID), HostID: int(host), Size: 1})
		prev = u.UID + 1
	}
	if size > prev {
		m = append(m, syscall.SysProcIDMap{ContainerID: int(prev), HostID: int(shift + prev), Size: int(size - prev)})
	}
	return m
}

// lookupHostAccount reads a user from the host's user database (NSS), its
// primary group, and its hashed password from /etc/shadow.
func lookupHostAccount(name string) (hostAccount, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return hostAccount{}, fmt.Errorf("--bind-user=%s: failed to resolve user '%s' on the host: %w", name, name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return hostAccount{}, fmt.Errorf("--bind-user=%s: the host's user database has no numeric UID and GID for it", name)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		return hostAccount{}, fmt.Errorf("--bind-user=%s: failed to resolve the group of user '%s' (GID %s) on the host: %w", name, name, u.Gid, err)
	}
	a := hostAccount{name: u.Username, uid: uint32(uid), gid: uint32(gid), home: u.HomeDir, groupName: g.Name}
	if b, err := os.ReadFile("/etc/shadow"); err == nil {
		a.hashed = shadowHash(b, name)
	}
	return a, nil
}

// shadowHash is the hashed password of name in an /etc/shadow: a crypt(3)
// hash ("$..."), else "" (none, locked, or not a hash).
func shadowHash(shadow []byte, name string) string {
	for _, l := range strings.Split(string(shadow), "\n") {
		f := strings.Split(l, ":")
		if len(f) >= 2 && f[0] == name && strings.HasPrefix(f[1], "$") {
			return f[1]
		}
	}
	return ""
}

// readInTree reads a file of the container's tree, its symbolic links
// resolved inside the tree; nil when the file does not exist.
func readInTree(root, p string) ([]byte, error) {
	dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dir)
	fd, err := unix.Openat2(dir, strings.TrimPrefix(p, "/"), &unix.OpenHow{
		Flags: unix.O_RDONLY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT})
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s of the container: %w", p, err)
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	return io.ReadAll(f)
}

// setupBindUsers resolves --bind-user= (after the user namespace's range
// is picked) and adds the binds of the users' home directories to
// /run/host/home/NAME.
func setupBindUsers(cfg *config.Config) ([]boundUser, error) {
	if len(cfg.BindUsers) == 0 {
		return nil, nil
	}
	pu := cfg.PrivateUsers
	if !pu.Enabled() {
		return nil, errors.New("--bind-user= requires --private-users (add -U or --private-users=pick)")
	}
	var accts []hostAccount
	for _, n := range cfg.BindUsers {
		a, err := lookupHostAccount(n)
		if err != nil {
			return nil, err
		}
		accts = append(accts, a)
	}
	passwd, err := readInTree(cfg.Directory, "/etc/passwd")
	if err != nil {
		return nil, err
	}
	group, err := readInTree(cfg.Directory, "/etc/group")
	if err != nil {
		return nil, err
	}
	users, err := bindUserPlan(accts, pu.Shift, pu.Range, passwd, group)
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		if st, err := os.Stat(u.Home); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("--bind-user=%s: home directory %s of the user is not a directory on the host", u.Name, u.Home)
		}
		cfg.Binds = append(cfg.Binds, config.BindMount{Source: u.Home, Dest: "/run/host/home/" + u.Name, Recursive: true})
	}
	return users, nil
}

// writeUserDB writes the bound users' records to the container's
// /run/host/userdb (NAME.user, NAME.group, NAME.user-privileged, each with
// a UID.user / GID.group link), where nss-systemd inside finds them, and
// makes /run/host/home. Run in the container's first process, as its root.
func writeUserDB(root string, users []boundUser) error {
	if len(users) == 0 {
		return nil
	}
	for _, d := range []string{"/run/host", "/run/host/home", "/run/host/userdb"} {
		if err := os.Mkdir(inRoot(root, d), 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("--bind-user=: creating %s: %w", d, err)
		}
	}
	dir := inRoot(root, "/run/host/userdb")
	write := func(name string, id uint32, suffix, data string, mode os.FileMode) error {
		f := name + suffix
		if err := os.Symlink(f, filepath.Join(dir, strconv.FormatUint(uint64(id), 10)+suffix)); err != nil {
			return fmt.Errorf("--bind-user=%s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte(data), mode); err != nil {
			return fmt.Errorf("--bind-user=%s: %w", name, err)
		}
		return nil
	}
	for _, u := range users {
		if err := write(u.Name, u.UID, ".group", u.GroupJSON, 0o644); err != nil {
			return err
		}
		if u.PrivJSON != "" {
			if err := write(u.Name, u.UID, ".user-privileged", u.PrivJSON, 0o600); err != nil {
				return err
			}
		}
		if err := write(u.Name, u.UID, ".user", u.UserJSON, 0o644); err != nil {
			return err
		}
	}
	return nil
}
