package config

import (
	"strings"
	"testing"
)

func TestCapabilityTable(t *testing.T) {
	tests := []struct {
		name string
		num  int
	}{
		{"CAP_CHOWN", 0}, {"chown", 0}, {"Cap_Chown", 0}, {"CAP_NET_ADMIN", 12}, {"sys_admin", 21},
		{"CAP_AUDIT_CONTROL", 30}, {"CAP_SETFCAP", 31}, {"CAP_MAC_ADMIN", 33}, {"CAP_PERFMON", 38},
		{"CAP_BPF", 39}, {"CAP_CHECKPOINT_RESTORE", 40}, {"7", 7}, {"62", 62},
	}
	for _, tt := range tests {
		n, err := CapabilityFromName(tt.name)
		if err != nil || n != tt.num {
			t.Errorf("%s: got %d, %v; want %d", tt.name, n, err, tt.num)
		}
	}
	for _, bad := range []string{"", "CAP_", "CAP_FLY", "-1", "63", "all"} {
		if _, err := CapabilityFromName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for i := 0; i <= CapLast; i++ {
		n, err := CapabilityFromName(CapNames(1 << i)[0])
		if err != nil || n != i {
			t.Errorf("round trip of %d: %d %v", i, n, err)
		}
	}
}

func TestDefaultCapabilities(t *testing.T) {
	want := []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
		"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
		"CAP_NET_BROADCAST", "CAP_NET_RAW", "CAP_IPC_OWNER", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
		"CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TTY_CONFIG",
		"CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP"}
	eq(t, CapNames(DefaultCapabilities(false)), want)
	eq(t, len(want), 26)
	eq(t, DefaultCapabilities(true), DefaultCapabilities(false)|1<<CapNetAdmin)
	eq(t, CapNames(1<<45), []string{"CAP_45"})
	eq(t, CapNames(0), []string(nil))
}

func TestConfigCapabilities(t *testing.T) {
	c := &Config{}
	eq(t, c.Capabilities(), DefaultCapabilities(false))
	c.Network.Private = true
	eq(t, c.Capabilities()&(1<<CapNetAdmin) != 0, true)
	c.CapDrop = 1 << CapNetAdmin
	eq(t, c.Capabilities()&(1<<CapNetAdmin) != 0, false)
	c = &Config{CapAdd: 1<<CapSysTime | 1<<CapSysModule, CapDrop: 1 << CapSysModule}
	eq(t, c.Capabilities(), DefaultCapabilities(false)|1<<CapSysTime)
	c = &Config{CapAdd: ^uint64(0), CapDrop: 1 << CapChown}
	eq(t, c.Capabilities(), AllCapabilities&^(1<<CapChown))

	m, err := parseCapabilityList("CAP_CHOWN,kill", commaFields)
	eq(t, err, nil)
	eq(t, m, uint64(1<<CapChown|1<<CapKill))
	m, _ = parseCapabilityList("chown all", strings.Fields)
	eq(t, m, ^uint64(0))
}
