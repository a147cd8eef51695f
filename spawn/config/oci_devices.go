package config

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Device numbers as Linux has them: 12-bit majors, 20-bit minors
// (systemd's DEVICE_MAJOR_VALID and DEVICE_MINOR_VALID).
const (
	ociMaxMajor = 1<<12 - 1
	ociMaxMinor = 1<<20 - 1
)

func ociMajor(field string, v any) (uint32, error) {
	n, err := ociUnsigned(field, v)
	if err != nil {
		return 0, err
	}
	if n > ociMaxMajor {
		return 0, ociErr(field, "device major %d is out of range 0..%d", n, ociMaxMajor)
	}
	return uint32(n), nil
}

func ociMinor(field string, v any) (uint32, error) {
	n, err := ociUnsigned(field, v)
	if err != nil {
		return 0, err
	}
	if n > ociMaxMinor {
		return 0, ociErr(field, "device minor %d is out of range 0..%d", n, ociMaxMinor)
	}
	return uint32(n), nil
}

// cgroupDevices checks linux.resources.devices as systemd-nspawn 252 reads
// it. nspawn turns allow entries into DeviceAllow= on top of its closed
// device policy; deny entries it ignores (its list starts empty), warning
// unless the entry is the catch-all {"allow": false, "access": "rwm"}
// that runtimes write first.
//
// netspawn's policy is nspawn's (spawn/devpolicy): allow entries add to
// it; entries nspawn refuses are refused.
func (b *OCIBundle) cgroupDevices(field string, v any) error {
	return ociObjects(field, v, []string{"allow", "type", "major", "minor", "access"}, func(f string, m map[string]any) error {
		allow, err := ociNeed(m, f, "allow", ociBool)
		if err != nil {
			return err
		}
		typ := ""
		if x, ok := m["type"]; ok {
			if typ, err = ociString(f+".type", x); err != nil {
				return err
			}
			if typ != "c" && typ != "b" {
				return ociErr(f+".type", "device type %q is not supported (as systemd-nspawn: only \"c\" and \"b\")", typ)
			}
		}
		_, hasMajor := m["major"]
		_, hasMinor := m["minor"]
		var major, minor uint32
		if err := ociMay(m, f, "major", ociMajor, &major); err != nil {
			return err
		}
		if err := ociMay(m, f, "minor", ociMinor, &minor); err != nil {
			return err
		}
		access := ""
		if x, ok := m["access"]; ok {
			if access, err = ociString(f+".access", x); err != nil {
				return err
			}
			for _, c := range access {
				if c != 'r' && c != 'w' && c != 'm' {
					return ociErr(f+".access", "unknown device access character %q (known: r, w, m)", c)
				}
			}
		}
		all := strings.Contains(access, "r") && strings.Contains(access, "w") && strings.Contains(access, "m")
		if !allow {
			if !all || typ != "" || hasMajor || hasMinor {
				b.warn(f, "deny entries other than the catch-all one are not supported, ignoring (as systemd-nspawn)")
			}
			return nil
		}
		switch {
		case access == "":
			b.warn(f, "an allow entry with no access has no effect, ignoring (as systemd-nspawn)")
			return nil
		case hasMinor && !hasMajor:
			return ociErr(f, "an allow entry with a minor but no major is not supported (as systemd-nspawn)")
		case hasMajor && typ == "":
			return ociErr(f, "an allow entry with a major but no device type is not supported (as systemd-nspawn)")
		case typ == "" && !all:
			return ociErr(f, "an allow entry with no device type must allow all access (\"rwm\"): narrower ones are not supported (as systemd-nspawn)")
		case typ == "":
			return nil // allows everything: no device rules, as nspawn
		}
		rule := DeviceAllow{Type: typ[0], Major: -1, Minor: -1, Access: access}
		if hasMajor {
			rule.Major = int64(major)
		}
		if hasMinor {
			rule.Minor = int64(minor)
		}
		b.DeviceAllow = append(b.DeviceAllow, rule)
		return nil
	})
}

// DeviceAllow lets the container use devices of Type ('c' or 'b'), Major
// and Minor (-1: any) with Access ("rwm" letters), as systemd's
// DeviceAllow=.
type DeviceAllow struct {
	Type         byte
	Major, Minor int64
	Access       string
}

// blockIO checks linux.resources.blockIO as systemd-nspawn 252 reads it.
// nspawn maps it to BlockIOWeight=, BlockIODeviceWeight= and
// IO{Read,Write}{Bandwidth,IOPS}Max=; netspawn has no I/O controls (its
// --property= has none of them), so a setting that would take effect is
// refused, naming it. What nspawn ignores (leafWeight, a weightDevice
// entry without a weight) is accepted, with a warning for leafWeight.
func (b *OCIBundle) blockIO(field string, v any) error {
	m, err := ociFields(field, v, "weight", "leafWeight", "weightDevice",
		"throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice", "throttleWriteIOPSDevice")
	if err != nil {
		return err
	}
	noIO := func(f, prop string) error {
		return ociErr(f, "not supported by netspawn: it has no I/O resource control (systemd-nspawn sets %s=; netspawn's resource controls are %s): remove it", prop, strings.Join(SupportedProperties, ", "))
	}
	weight := func(f string, x any) error {
		w, err := ociUnsigned(f, x)
		if err != nil {
			return err
		}
		if w < 10 || w > 1000 {
			return ociErr(f, "%d is out of range 10..1000", w)
		}
		return nil
	}
	return ociEach(field, m, func(k, f string, x any) error {
		switch k {
		case "weight":
			if err := weight(f, x); err != nil {
				return err
			}
			return noIO(f, "BlockIOWeight")
		case "leafWeight":
			if _, err := ociUnsigned(f, x); err != nil {
				return err
			}
			b.warn(f, "not supported, ignoring (as systemd-nspawn)")
			return nil
		case "weightDevice":
			return ociObjects(f, x, []string{"major", "minor", "weight", "leafWeight"}, func(f string, m map[string]any) error {
				if err := ociDevNum(m, f); err != nil {
					return err
				}
				if _, ok := m["leafWeight"]; ok {
					b.warn(f+".leafWeight", "not supported, ignoring (as systemd-nspawn)")
				}
				x, ok := m["weight"]
				if !ok {
					return nil // no effect, as nspawn
				}
				if err := weight(f+".weight", x); err != nil {
					return err
				}
				return noIO(f, "BlockIODeviceWeight")
			})
		}
		prop := map[string]string{"throttleReadBpsDevice": "IOReadBandwidthMax", "throttleWriteBpsDevice": "IOWriteBandwidthMax",
			"throttleReadIOPSDevice": "IOReadIOPSMax", "throttleWriteIOPSDevice": "IOWriteIOPSMax"}[k]
		return ociObjects(f, x, []string{"major", "minor", "rate"}, func(f string, m map[string]any) error {
			if err := ociDevNum(m, f); err != nil {
				return err
			}
			r, err := ociNeed(m, f, "rate", ociUnsigned)
			if err != nil {
				return err
			}
			if r == 1<<64-1 {
				return ociErr(f+".rate", "%d is out of range", r)
			}
			return noIO(f, fmt.Sprintf("%s=/dev/block/%v:%v", prop, m["major"], m["minor"]))
		})
	})
}

// ociDevNum checks the mandatory major and minor of m.
func ociDevNum(m map[string]any, f string) error {
	if _, err := ociNeed(m, f, "major", ociMajor); err != nil {
		return err
	}
	_, err := ociNeed(m, f, "minor", ociMinor)
	return err
}

// DeviceNode is a node an OCI bundle's linux.devices asks for.
type DeviceNode struct {
	Path         string // absolute, in the container
	Type         byte   // 'c', 'b' or 'p' (FIFO)
	Major, Minor uint32
	Mode         uint32  // permission bits (0644 unless given)
	UID, GID     *uint32 `json:",omitempty"` // nil: the creator's
}

// FileType is the node's S_IF* type.
func (n DeviceNode) FileType() uint32 {
	switch n.Type {
	case 'b':
		return unix.S_IFBLK
	case 'p':
		return unix.S_IFIFO
	}
	return unix.S_IFCHR
}

// ociImplicitDevices are the device numbers of the nodes every netspawn
// container gets anyway (null, zero, full, random, urandom, tty, ptmx and
// console): linux.devices entries for them are skipped, as nspawn skips
// them, whatever path they give. nspawn's list has /dev/net/tun (10:200)
// too, which netspawn does not make: it is made when a bundle asks.
var ociImplicitDevices = map[[2]uint32]bool{
	{1, 3}: true, {1, 5}: true, {1, 7}: true, {1, 8}: true, {1, 9}: true,
	{5, 0}: true, {5, 1}: true, {5, 2}: true,
}

// devices reads linux.devices as systemd-nspawn 252 does: each node is
// made in the container with its type, numbers, mode (0644 unless
// fileMode says) and owner (unchanged unless uid/gid say).
func (b *OCIBundle) devices(field string, v any) error {
	return ociObjects(field, v, []string{"type", "path", "major", "minor", "fileMode", "uid", "gid"}, func(f string, m map[string]any) error {
		n := DeviceNode{Mode: 0o644}
		t, err := ociNeed(m, f, "type", ociString)
		if err != nil {
			return err
		}
		switch t {
		case "c", "u":
			n.Type = 'c'
		case "b", "p":
			n.Type = t[0]
		default:
			return ociErr(f+".type", "unknown device type %q (known: c, u, b, p)", t)
		}
		if n.Path, err = ociNeed(m, f, "path", ociAbsPath); err != nil {
			return err
		}
		if n.Path == "/" {
			return ociErr(f+".path", "the root directory cannot be a device node")
		}
		_, hasMajor := m["major"]
		_, hasMinor := m["minor"]
		if err := ociMay(m, f, "major", ociMajor, &n.Major); err != nil {
			return err
		}
		if err := ociMay(m, f, "minor", ociMinor, &n.Minor); err != nil {
			return err
		}
		if n.Type != 'p' && (!hasMajor || !hasMinor) {
			return ociErr(f, "a device node of type %q needs major and minor", t)
		}
		if x, ok := m["fileMode"]; ok {
			mode, err := ociUnsigned(f+".fileMode", x)
			if err != nil {
				return err
			}
			if mode&^0o7777 != 0 {
				return ociErr(f+".fileMode", "%#o is out of range (permission bits 07777 at most)", mode)
			}
			n.Mode = uint32(mode)
		}
		if err := ociMay(m, f, "uid", ociPtr(ociID), &n.UID); err != nil {
			return err
		}
		if err := ociMay(m, f, "gid", ociPtr(ociID), &n.GID); err != nil {
			return err
		}
		if n.Type == 'c' && ociImplicitDevices[[2]uint32{n.Major, n.Minor}] {
			return nil // made anyway
		}
		for _, o := range b.Devices {
			if o.Path == n.Path {
				return ociErr(f+".path", "%s is listed twice", n.Path)
			}
		}
		b.Devices = append(b.Devices, n)
		return nil
	})
}
