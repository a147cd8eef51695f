// Package naming computes the host-side link names and the stable MAC
// addresses systemd-nspawn uses, so that netspawn's links look the same as
// nspawn's to existing networkd configuration and to users.
package naming

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/dchest/siphash"
)

// MaxIfNameLen is the longest interface name the kernel accepts (IFNAMSIZ-1).
const MaxIfNameLen = 15

// Key is a 128-bit siphash key, written as nspawn writes its SD_ID128 constants.
type Key [16]byte

// Hash keys of systemd-nspawn (src/nspawn/nspawn-network.c, src/basic/netif-util.c).
var (
	HostKey           = mustKey("1a376fc746ec450bada3d53106605db1")
	ContainerKey      = mustKey("c3c4f919b557b21ce6cf1427039ceea2")
	VethExtraHostKey  = mustKey("48c7f6b7ea9d4c9eb728d4de91d5bf66")
	VethExtraContKey  = mustKey("af501761cef94d35840d2b2054bece59")
	MACVLANKey        = mustKey("00136dbc66834481bb0cf9511f24a66f")
	shortenIfNameKey  = mustKey("e190a404a8ef4b518cccc33a9f11fca2")
	urlSafeBase64Char = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)

func mustKey(s string) Key {
	var k Key
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 16 {
		panic("naming: bad built-in key " + s)
	}
	copy(k[:], b)
	return k
}

func sum(key Key, data []byte) uint64 {
	return siphash.Hash(binary.LittleEndian.Uint64(key[:8]), binary.LittleEndian.Uint64(key[8:]), data)
}

// ShortenIfName returns name unchanged when it fits in an interface name.
// Otherwise, like nspawn with naming scheme v245 and later, it keeps the
// first 11 bytes and appends four characters of URL-safe base64 taken from
// the low 24 bits of siphash24(name) under nspawn's fixed key. The second
// result reports whether the name was shortened (the full name then belongs
// in an altname).
func ShortenIfName(name string) (string, bool) {
	if len(name) <= MaxIfNameLen {
		return name, false
	}
	h := sum(shortenIfNameKey, []byte(name))
	var b strings.Builder
	b.WriteString(name[:MaxIfNameLen-4])
	for _, shift := range []uint{18, 12, 6, 0} {
		b.WriteByte(urlSafeBase64Char[(h>>shift)&63])
	}
	return b.String(), true
}

// Prefixes of host-side link names.
const (
	PrefixVeth   = "ve-" // --network-veth
	PrefixBridge = "vb-" // --network-bridge / --network-zone
	PrefixZone   = "vz-" // zone bridge (never shortened)
)

// HostLink is a host-side link name and, when it had to be shortened, the
// full name to set as an altname.
type HostLink struct {
	Name    string
	AltName string // empty when Name is the full name
}

// HostLinkName returns the host-side name for machine with the given prefix
// (PrefixVeth or PrefixBridge).
func HostLinkName(prefix, machine string) HostLink {
	full := prefix + machine
	short, cut := ShortenIfName(full)
	if !cut {
		return HostLink{Name: full}
	}
	return HostLink{Name: short, AltName: full}
}

// ZoneBridgeName returns vz-ZONE, or an error when it does not fit: nspawn
// refuses such zones rather than hashing them.
func ZoneBridgeName(zone string) (string, error) {
	n := PrefixZone + zone
	if err := ValidIfName(n); err != nil {
		return "", fmt.Errorf("zone %q: %w", zone, err)
	}
	return n, nil
}

// ValidIfName checks what the kernel accepts as an interface name.
func ValidIfName(n string) error {
	switch {
	case n == "" || n == "." || n == "..":
		return fmt.Errorf("invalid interface name %q", n)
	case len(n) > MaxIfNameLen:
		return fmt.Errorf("interface name %q is longer than %d bytes", n, MaxIfNameLen)
	case strings.ContainsAny(n, "/: \t\n\x00"):
		return fmt.Errorf("interface name %q contains a forbidden character", n)
	}
	return nil
}

// MachineID is the host's 128-bit machine id (/etc/machine-id).
type MachineID [16]byte

// ParseMachineID parses the 32 hex digits of /etc/machine-id.
func ParseMachineID(s string) (MachineID, error) {
	var id MachineID
	s = strings.TrimSpace(s)
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 16 {
		return id, fmt.Errorf("invalid machine id %q", s)
	}
	copy(id[:], b)
	return id, nil
}

// ReadMachineID reads /etc/machine-id (path may be overridden for tests).
func ReadMachineID(path string) (MachineID, error) {
	if path == "" {
		path = "/etc/machine-id"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return MachineID{}, fmt.Errorf("read machine id: %w", err)
	}
	id, err := ParseMachineID(string(b))
	if err != nil {
		return id, fmt.Errorf("%s: %w", path, err)
	}
	return id, nil
}

// MAC returns nspawn's predictable MAC for machine: siphash24 under key of
// machine-id || name (|| little-endian idx when idx > 0), the first six bytes
// of the little-endian hash with the multicast bit cleared and the locally
// administered bit set.
func MAC(id MachineID, machine string, key Key, idx uint64) net.HardwareAddr {
	data := make([]byte, 0, len(id)+len(machine)+8)
	data = append(data, id[:]...)
	data = append(data, machine...)
	if idx > 0 {
		data = binary.LittleEndian.AppendUint64(data, idx)
	}
	var out [8]byte
	binary.LittleEndian.PutUint64(out[:], sum(key, data))
	mac := net.HardwareAddr(out[:6:6])
	mac[0] &^= 0x01
	mac[0] |= 0x02
	return mac
}

// VethMACs returns the host-side and container-side MACs of the main veth.
func VethMACs(id MachineID, machine string) (host, container net.HardwareAddr) {
	return MAC(id, machine, HostKey, 0), MAC(id, machine, ContainerKey, 0)
}

// VethExtraMACs returns the MACs of the idx-th (from 0) --network-veth-extra pair.
func VethExtraMACs(id MachineID, machine string, idx int) (host, container net.HardwareAddr) {
	return MAC(id, machine, VethExtraHostKey, uint64(idx)), MAC(id, machine, VethExtraContKey, uint64(idx))
}
