// Package proc holds what a process in a container is made of: the account
// it runs as (from the container's own /etc/passwd and /etc/group), how its
// program is found, its environment, its capability limit and the signals
// it handles. The runtime's init and netspawnctl's shell share it.
package proc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// User is the account the payload runs as, looked up in the container's
// own /etc/passwd and /etc/group.
type User struct {
	Name   string
	UID    int
	GID    int
	Home   string
	Shell  string
	Groups []int
	// Raw is set for an account given by numbers (RawUser): the payload
	// then gets no SHELL, and HOME, USER and LOGNAME only as root.
	Raw bool
}

// RawUser is an account given by numbers, as an OCI bundle's process.user:
// nothing is looked up, groups is the whole supplementary group list. Its
// home is /root for root, else "/" (only the start directory).
func RawUser(uid, gid uint32, groups []uint32) *User {
	u := &User{UID: int(uid), GID: int(gid), Raw: true, Home: "/", Groups: []int{}}
	for _, g := range groups {
		u.Groups = append(u.Groups, int(g))
	}
	if uid == 0 {
		u.Name, u.Home = "root", "/root"
	} else {
		u.Name = strconv.FormatUint(uint64(uid), 10)
	}
	return u
}

// Groups32 returns the supplementary groups as setgroups(2) takes them.
func (u *User) Groups32() []uint32 {
	g := make([]uint32, len(u.Groups))
	for i, v := range u.Groups {
		g[i] = uint32(v)
	}
	return g
}

// Become switches this process to the user (all threads).
func (u *User) Become() error {
	if err := syscall.Setgroups(u.Groups); err != nil {
		return fmt.Errorf("setting supplementary groups of %s: %w", u.Name, err)
	}
	if u.UID == 0 && u.GID == 0 {
		return nil
	}
	if err := syscall.Setgid(u.GID); err != nil {
		return fmt.Errorf("setting group ID %d of %s: %w", u.GID, u.Name, err)
	}
	if err := syscall.Setuid(u.UID); err != nil {
		return fmt.Errorf("setting user ID %d of %s: %w", u.UID, u.Name, err)
	}
	return nil
}

// LookupUser finds name (a user name or a numeric UID; empty means root) in
// the current root's /etc/passwd and collects its groups from /etc/group.
func LookupUser(name string) (*User, error) {
	return LookupUserWith(name, func(p string) (io.ReadCloser, error) { return os.Open(p) })
}

// LookupUserWith is LookupUser reading /etc/passwd and /etc/group through
// open (which must answer os.ErrNotExist, wrapped or not, for a missing
// file): e.g. from a container's tree seen from the host.
func LookupUserWith(name string, open func(string) (io.ReadCloser, error)) (*User, error) {
	if name == "" {
		name = "root"
	}
	pw, err := open("/etc/passwd")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading /etc/passwd in the container: %w", err)
	}
	var u *User
	if err == nil {
		u, err = findPasswd(pw, name)
		pw.Close()
		if err != nil {
			return nil, err
		}
	}
	if u == nil {
		switch id, err := strconv.Atoi(name); {
		case name == "root":
			u = &User{Name: "root", Home: "/root", Shell: "/bin/sh"}
		case err == nil && id >= 0:
			u = &User{Name: name, UID: id, GID: id, Home: "/", Shell: "/bin/sh"}
		default:
			return nil, fmt.Errorf("user %q not found in the container's /etc/passwd", name)
		}
	}
	if gr, err := open("/etc/group"); err == nil {
		u.Groups = findGroups(gr, u.Name, u.GID)
		gr.Close()
	}
	return u, nil
}

// findPasswd returns the passwd entry matching a name or a numeric UID, or
// nil when there is none.
func findPasswd(r io.Reader, name string) (*User, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 7 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if f[0] != name && f[2] != name {
			continue
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("malformed /etc/passwd entry for %q in the container", f[0])
		}
		return &User{Name: f[0], UID: uid, GID: gid, Home: f[5], Shell: f[6]}, nil
	}
	return nil, sc.Err()
}

// findGroups lists the primary group and every group naming user as a member.
func findGroups(r io.Reader, name string, primary int) []int {
	groups := []int{primary}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 4 {
			continue
		}
		gid, err := strconv.Atoi(f[2])
		if err != nil || gid == primary {
			continue
		}
		for _, m := range strings.Split(f[3], ",") {
			if m == name {
				groups = append(groups, gid)
				break
			}
		}
	}
	return groups
}
