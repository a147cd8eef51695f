package config

import (
	"fmt"
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
	UIDPickMin   = 0x00080000 // 524288
	UIDPickMax   = 0x6FFF0000 // 1878982656: last usable start is below this
	UIDRangeSize = 0x10000    // 65536
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
	if b, err := ParseBool(v); err == nil || v == "" {
		if b || v == "" {
			return UserNSYes, 0, UIDRangeSize, nil
		}
		return UserNSOff, 0, 0, nil
	}
	switch strings.ToLower(v) {
	case "pick":
		return UserNSPick, 0, UIDRangeSize, nil
	case "identity":
		return UserNSIdentity, 0, UIDRangeSize, nil
	}
	base, n, hasN := strings.Cut(v, ":")
	shift, err := strconv.ParseUint(base, 10, 32)
	if err != nil {
		return "", 0, 0, fmt.Errorf("--private-users=%s: not yes, no, pick, identity or UIDBASE[:NUIDS]", v)
	}
	size := uint64(UIDRangeSize)
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
	if b, err := ParseBool(v); err == nil {
		if b {
			return OwnershipChown, nil
		}
		return OwnershipOff, nil
	}
	switch strings.ToLower(v) {
	case "off":
		return OwnershipOff, nil
	case "chown":
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
	c.PrivateUsers = PrivateUsers{Mode: UserNSPick, Range: UIDRangeSize, Ownership: OwnershipAuto}
}

// EffectiveOwnership resolves the default: pick implies auto, the other
// modes off.
func (p PrivateUsers) EffectiveOwnership() Ownership {
	if p.Ownership != OwnershipDefault {
		return p.Ownership
	}
	if p.Mode == UserNSPick {
		return OwnershipAuto
	}
	return OwnershipOff
}
