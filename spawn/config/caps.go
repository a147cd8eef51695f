package config

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// Capability numbers, as in linux/capability.h.
const (
	CapChown             = 0
	CapDacOverride       = 1
	CapDacReadSearch     = 2
	CapFowner            = 3
	CapFsetid            = 4
	CapKill              = 5
	CapSetgid            = 6
	CapSetuid            = 7
	CapSetpcap           = 8
	CapLinuxImmutable    = 9
	CapNetBindService    = 10
	CapNetBroadcast      = 11
	CapNetAdmin          = 12
	CapNetRaw            = 13
	CapIpcLock           = 14
	CapIpcOwner          = 15
	CapSysModule         = 16
	CapSysRawio          = 17
	CapSysChroot         = 18
	CapSysPtrace         = 19
	CapSysPacct          = 20
	CapSysAdmin          = 21
	CapSysBoot           = 22
	CapSysNice           = 23
	CapSysResource       = 24
	CapSysTime           = 25
	CapSysTtyConfig      = 26
	CapMknod             = 27
	CapLease             = 28
	CapAuditWrite        = 29
	CapAuditControl      = 30
	CapSetfcap           = 31
	CapMacOverride       = 32
	CapMacAdmin          = 33
	CapSyslog            = 34
	CapWakeAlarm         = 35
	CapBlockSuspend      = 36
	CapAuditRead         = 37
	CapPerfmon           = 38
	CapBpf               = 39
	CapCheckpointRestore = 40

	// CapLast is the highest capability number netspawn knows by name.
	CapLast = CapCheckpointRestore
	// capNumericLimit is the highest number accepted in numeric form (systemd's CAP_LIMIT).
	capNumericLimit = 62
)

// AllCapabilities is the mask of every capability netspawn knows by name.
const AllCapabilities uint64 = 1<<(CapLast+1) - 1

// capNames maps capability numbers to their names (without the CAP_ prefix).
var capNames = [CapLast + 1]string{
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL",
	"SETGID", "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE",
	"NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
	"SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
	"SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
	"SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL",
	"SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
	"BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
}

// nspawnDefaultCaps is systemd-nspawn's default bounding set (arg_caps_retain).
const nspawnDefaultCaps uint64 = 1<<CapAuditControl | 1<<CapAuditWrite | 1<<CapChown |
	1<<CapDacOverride | 1<<CapDacReadSearch | 1<<CapFowner | 1<<CapFsetid |
	1<<CapIpcOwner | 1<<CapKill | 1<<CapLease | 1<<CapLinuxImmutable | 1<<CapMknod |
	1<<CapNetBindService | 1<<CapNetBroadcast | 1<<CapNetRaw | 1<<CapSetfcap |
	1<<CapSetgid | 1<<CapSetpcap | 1<<CapSetuid | 1<<CapSysAdmin | 1<<CapSysBoot |
	1<<CapSysChroot | 1<<CapSysNice | 1<<CapSysPtrace | 1<<CapSysResource |
	1<<CapSysTtyConfig

// DefaultCapabilities is systemd-nspawn's default capability bounding set,
// plus CAP_NET_ADMIN when the container has its own network namespace.
func DefaultCapabilities(privateNetwork bool) uint64 {
	if privateNetwork {
		return nspawnDefaultCaps | 1<<CapNetAdmin
	}
	return nspawnDefaultCaps
}

// Capabilities is the container's capability bounding set: the default set,
// plus --capability=/Capability=, minus --drop-capability=/DropCapability=.
// "all" keeps every capability netspawn knows.
func (c *Config) Capabilities() uint64 {
	return (DefaultCapabilities(c.Network.Private) | c.CapAdd) &^ c.CapDrop & AllCapabilities
}

// CapabilityFromName returns the number of a capability given as CAP_NAME or
// NAME (any case), or as a number.
func CapabilityFromName(s string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n > capNumericLimit {
			return 0, fmt.Errorf("capability number %d out of range 0-%d", n, capNumericLimit)
		}
		return n, nil
	}
	u := strings.ToUpper(s)
	u = strings.TrimPrefix(u, "CAP_")
	for i, n := range capNames {
		if n == u {
			return i, nil
		}
	}
	return 0, fmt.Errorf("unknown capability %q", s)
}

// parseCapabilityList parses a list of capability names separated by sep
// (',' on the command line, white space in settings files) into a mask;
// "all" selects every capability.
func parseCapabilityList(s string, fields func(string) []string) (uint64, error) {
	var mask uint64
	for _, w := range fields(s) {
		if w == "all" {
			mask = ^uint64(0)
			continue
		}
		n, err := CapabilityFromName(w)
		if err != nil {
			return 0, err
		}
		mask |= 1 << n
	}
	return mask, nil
}

// CapNames returns the names (CAP_X) of the capabilities in mask, lowest first.
func CapNames(mask uint64) []string {
	var out []string
	for mask != 0 {
		i := bits.TrailingZeros64(mask)
		mask &^= 1 << i
		if i <= CapLast {
			out = append(out, "CAP_"+capNames[i])
		} else {
			out = append(out, "CAP_"+strconv.Itoa(i))
		}
	}
	return out
}
