package spawn

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// UserNSMode is nspawn's --private-users= setting.
type UserNSMode string

// User namespace modes.
const (
	UserNSOff      UserNSMode = ""         // no user namespace (--private-users=no, the default)
	UserNSFixed    UserNSMode = "fixed"    // UIDBASE[:NUIDS]
	UserNSYes      UserNSMode = "yes"      // the range of the root directory's owner
	UserNSPick     UserNSMode = "pick"     // a free range, the root directory owner's if unused
	UserNSIdentity UserNSMode = "identity" // 0:65536 mapped onto itself
)

// Ownership is nspawn's --private-users-ownership= setting: how the tree's
// files are made to belong to the container's range.
type Ownership string

// Ownership modes.
const (
	OwnershipDefault Ownership = ""      // off, or auto with pick
	OwnershipOff     Ownership = "off"   // leave files alone
	OwnershipChown   Ownership = "chown" // rewrite owners (and ACLs) recursively
	OwnershipMap     Ownership = "map"   // idmapped mount of the tree
	OwnershipAuto    Ownership = "auto"  // map where supported, else chown
)

// Range of UIDs nspawn picks container ranges from (both 64K aligned).
const (
	uidPickMin   = 0x00080000 // 524288
	uidPickMax   = 0x6FFF0000 // 1878982656: last usable start is below this
	uidRangeSize = 0x10000    // 65536
)

// PrivateUsers holds the user namespace settings (-U, --private-users=,
// --private-users-ownership=).
type PrivateUsers struct {
	Mode      UserNSMode
	Shift     uint32 // first host UID/GID of the range (Mode fixed; filled in by Run otherwise)
	Range     uint32 // number of UIDs/GIDs (default 65536)
	Ownership Ownership
}

// Enabled reports whether the container gets a user namespace.
func (p PrivateUsers) Enabled() bool { return p.Mode != UserNSOff }

// ParsePrivateUsers parses a --private-users= value. An empty value (the
// flag given without one) means yes, as in nspawn.
func ParsePrivateUsers(v string) (UserNSMode, uint32, uint32, error) {
	switch strings.ToLower(v) {
	case "", "yes", "true", "on", "1", "y", "t":
		return UserNSYes, 0, uidRangeSize, nil
	case "no", "false", "off", "0", "n", "f":
		return UserNSOff, 0, 0, nil
	case "pick":
		return UserNSPick, 0, uidRangeSize, nil
	case "identity":
		return UserNSIdentity, 0, uidRangeSize, nil
	}
	base, n, hasN := strings.Cut(v, ":")
	shift, err := strconv.ParseUint(base, 10, 32)
	if err != nil {
		return "", 0, 0, fmt.Errorf("--private-users=%s: not yes, no, pick, identity or UIDBASE[:NUIDS]", v)
	}
	size := uint64(uidRangeSize)
	if hasN {
		size, err = strconv.ParseUint(n, 10, 32)
		if err != nil || size == 0 {
			return "", 0, 0, fmt.Errorf("--private-users=%s: bad number of UIDs %q", v, n)
		}
	}
	if shift+size > 1<<32-1 {
		return "", 0, 0, fmt.Errorf("--private-users=%s: range exceeds the UID space", v)
	}
	return UserNSFixed, uint32(shift), uint32(size), nil
}

// ParseOwnership parses --private-users-ownership= (and the value of the
// older --private-users-chown, where true means chown and false off).
func ParseOwnership(v string) (Ownership, error) {
	switch strings.ToLower(v) {
	case "off", "no", "false", "0":
		return OwnershipOff, nil
	case "chown", "yes", "true", "1":
		return OwnershipChown, nil
	case "map":
		return OwnershipMap, nil
	case "auto":
		return OwnershipAuto, nil
	}
	return "", fmt.Errorf("--private-users-ownership=%s: not off, chown, map or auto", v)
}

// SetPrivateUsers applies a --private-users= value to the config.
func (c *Config) SetPrivateUsers(v string) error {
	m, shift, n, err := ParsePrivateUsers(v)
	if err != nil {
		return err
	}
	c.PrivateUsers.Mode, c.PrivateUsers.Shift, c.PrivateUsers.Range = m, shift, n
	return nil
}

// SetU applies -U: pick with automatic ownership when the kernel has user
// namespaces, otherwise no user namespace.
func (c *Config) SetU() {
	if !UserNamespacesSupported() {
		c.PrivateUsers = PrivateUsers{}
		return
	}
	c.PrivateUsers = PrivateUsers{Mode: UserNSPick, Range: uidRangeSize, Ownership: OwnershipAuto}
}

// UserNamespacesSupported reports whether this kernel has user namespaces.
func UserNamespacesSupported() bool {
	_, err := os.Stat("/proc/self/ns/user")
	return err == nil
}

// effectiveOwnership resolves the default: pick implies auto, the other
// modes off.
func effectiveOwnership(p PrivateUsers) Ownership {
	if p.Ownership != OwnershipDefault {
		return p.Ownership
	}
	if p.Mode == UserNSPick {
		return OwnershipAuto
	}
	return OwnershipOff
}

// ownerRange is the 64K-aligned range a tree whose root is owned by uid/gid
// belongs to, and whether that is a consistent container range.
func ownerRange(uid, gid uint32) (uint32, bool) {
	base := uid &^ (uidRangeSize - 1)
	return base, uid == gid && uid&(uidRangeSize-1) == 0
}

// errNoFreeRange is returned when every candidate range is in use.
var errNoFreeRange = errors.New("no free 64K UID range left between 524288 and 1878982656")

// rangeCandidates yields the starts of ranges to try for machine name,
// in order: the hashed one first, then the next ones (wrapping).
func rangeCandidates(hash uint64) func(yield func(uint32) bool) {
	slots := uint64(uidPickMax-uidPickMin) / uidRangeSize
	first := hash % slots
	return func(yield func(uint32) bool) {
		for i := uint64(0); i < slots; i++ {
			s := (first + i) % slots
			if !yield(uint32(uidPickMin + s*uidRangeSize)) {
				return
			}
		}
	}
}

// rangesOverlap reports whether [a, a+na) and [b, b+nb) overlap.
func rangesOverlap(a, na, b, nb uint32) bool {
	return uint64(a) < uint64(b)+uint64(nb) && uint64(b) < uint64(a)+uint64(na)
}

// shiftID moves id from the range starting at from to the one starting at
// to; IDs outside [from, from+n) are left unchanged (ok false).
func shiftID(id, from, to, n uint32) (uint32, bool) {
	if id < from || uint64(id) >= uint64(from)+uint64(n) {
		return id, false
	}
	return to + (id - from), true
}
