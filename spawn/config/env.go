package config

import (
	"fmt"
	"net"
	"strings"
)

// NspawnEnv is what systemd-nspawn's own environment variables ask for
// (systemd 252's docs/ENVIRONMENT.md and nspawn.c's parse_environment).
// A nil pointer means the variable is not set: the default holds.
type NspawnEnv struct {
	// UseCgroupNS is $SYSTEMD_NSPAWN_USE_CGNS: false runs the container in
	// the host's cgroup namespace (its processes see their full cgroup
	// paths, as Docker inside needs).
	UseCgroupNS *bool
	// APIVFSWritable is $SYSTEMD_NSPAWN_API_VFS_WRITABLE: "yes" leaves
	// /proc/sys, /sys and friends writable, "network" only /proc/sys/net,
	// "no" (or unset) keeps them read-only.
	APIVFSWritable string
	// TmpfsTmp is $SYSTEMD_NSPAWN_TMPFS_TMP: false keeps the image's own
	// /tmp instead of mounting a tmpfs there.
	TmpfsTmp *bool
	// Lock is $SYSTEMD_NSPAWN_LOCK: false takes no lock on the image.
	Lock *bool
	// ContainerService is $SYSTEMD_NSPAWN_CONTAINER_SERVICE: the name in
	// the payload's $container and the machine's service.
	ContainerService string
	// ShareIPC, SharePID and ShareUTS are $SYSTEMD_NSPAWN_SHARE_NS_IPC,
	// _PID, _UTS (and all three $SYSTEMD_NSPAWN_SHARE_SYSTEM): true keeps
	// that namespace of the host.
	ShareIPC, SharePID, ShareUTS *bool
	// SuppressSync is $SYSTEMD_SUPPRESS_SYNC, as --suppress-sync=.
	SuppressSync *bool
	// UnifiedHierarchy is $SYSTEMD_NSPAWN_UNIFIED_HIERARCHY.
	UnifiedHierarchy *bool
	// NetworkMAC is $SYSTEMD_NSPAWN_NETWORK_MAC (systemd 255): the MAC of
	// host0 instead of the one hashed from the machine name.
	NetworkMAC net.HardwareAddr
}

// EnvVars lists the variables ParseNspawnEnv reads, for documentation and
// for tests.
var EnvVars = []string{
	"SYSTEMD_NSPAWN_USE_CGNS", "SYSTEMD_NSPAWN_API_VFS_WRITABLE", "SYSTEMD_NSPAWN_TMPFS_TMP",
	"SYSTEMD_NSPAWN_LOCK", "SYSTEMD_NSPAWN_CONTAINER_SERVICE", "SYSTEMD_NSPAWN_SHARE_NS_IPC",
	"SYSTEMD_NSPAWN_SHARE_NS_PID", "SYSTEMD_NSPAWN_SHARE_NS_UTS", "SYSTEMD_NSPAWN_SHARE_SYSTEM",
	"SYSTEMD_SUPPRESS_SYNC", "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY", "SYSTEMD_NSPAWN_NETWORK_MAC",
}

// ParseNspawnEnv reads systemd-nspawn's environment variables through
// getenv. A value that is not what the variable takes is an error naming
// the variable, as nspawn refuses to start then.
func ParseNspawnEnv(getenv func(string) string) (NspawnEnv, error) {
	var e NspawnEnv
	boolVar := func(name string, dst **bool) error {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return nil
		}
		b, err := ParseBool(v)
		if err != nil {
			return fmt.Errorf("$%s: %w", name, err)
		}
		*dst = &b
		return nil
	}
	for _, b := range []struct {
		name string
		dst  **bool
	}{
		{"SYSTEMD_NSPAWN_USE_CGNS", &e.UseCgroupNS},
		{"SYSTEMD_NSPAWN_TMPFS_TMP", &e.TmpfsTmp},
		{"SYSTEMD_NSPAWN_LOCK", &e.Lock},
		{"SYSTEMD_SUPPRESS_SYNC", &e.SuppressSync},
		{"SYSTEMD_NSPAWN_UNIFIED_HIERARCHY", &e.UnifiedHierarchy},
		// SHARE_SYSTEM first: the single-namespace variables refine it.
		{"SYSTEMD_NSPAWN_SHARE_SYSTEM", &e.ShareIPC},
	} {
		if err := boolVar(b.name, b.dst); err != nil {
			return NspawnEnv{}, err
		}
	}
	if e.ShareIPC != nil {
		all := *e.ShareIPC
		e.SharePID, e.ShareUTS = &all, &all
	}
	for _, b := range []struct {
		name string
		dst  **bool
	}{
		{"SYSTEMD_NSPAWN_SHARE_NS_IPC", &e.ShareIPC},
		{"SYSTEMD_NSPAWN_SHARE_NS_PID", &e.SharePID},
		{"SYSTEMD_NSPAWN_SHARE_NS_UTS", &e.ShareUTS},
	} {
		if err := boolVar(b.name, b.dst); err != nil {
			return NspawnEnv{}, err
		}
	}
	if v := strings.TrimSpace(getenv("SYSTEMD_NSPAWN_API_VFS_WRITABLE")); v != "" {
		if v == "network" {
			e.APIVFSWritable = "network"
		} else {
			b, err := ParseBool(v)
			if err != nil {
				return NspawnEnv{}, fmt.Errorf("$SYSTEMD_NSPAWN_API_VFS_WRITABLE: %q is neither a boolean nor \"network\"", v)
			}
			e.APIVFSWritable = map[bool]string{true: "yes", false: "no"}[b]
		}
	}
	if v := getenv("SYSTEMD_NSPAWN_CONTAINER_SERVICE"); v != "" {
		if strings.ContainsAny(v, "\x00\n=") {
			return NspawnEnv{}, fmt.Errorf("$SYSTEMD_NSPAWN_CONTAINER_SERVICE: %q is not a usable name", v)
		}
		e.ContainerService = v
	}
	if v := strings.TrimSpace(getenv("SYSTEMD_NSPAWN_NETWORK_MAC")); v != "" {
		mac, err := net.ParseMAC(v)
		if err != nil || len(mac) != 6 {
			return NspawnEnv{}, fmt.Errorf("$SYSTEMD_NSPAWN_NETWORK_MAC: %q is not an Ethernet address (like 02:00:00:00:00:01)", v)
		}
		if mac[0]&1 != 0 {
			return NspawnEnv{}, fmt.Errorf("$SYSTEMD_NSPAWN_NETWORK_MAC: %s is a multicast address", v)
		}
		e.NetworkMAC = mac
	}
	return e, nil
}
