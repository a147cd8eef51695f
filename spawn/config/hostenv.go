package config

import (
	"errors"
	"log/slog"
)

// applyNspawnEnv sets what systemd-nspawn's own environment variables ask
// for, before the command line is read (as nspawn reads them first): the
// docker-in-a-container recipe's SYSTEMD_NSPAWN_USE_CGNS=0, build tools'
// SYSTEMD_NSPAWN_TMPFS_TMP=0 and SYSTEMD_SECCOMP=0 (spawn/seccomp reads
// that one), and the rest of nspawn 252's list.
func applyNspawnEnv(c *Config, getenv func(string) string) error {
	e, err := ParseNspawnEnv(getenv)
	if err != nil {
		return err
	}
	h := &c.HostEnv
	h.NoCgroupNS = e.UseCgroupNS != nil && !*e.UseCgroupNS
	if e.APIVFSWritable != "no" {
		h.APIVFSWritable = e.APIVFSWritable
	}
	h.NoTmpfsTmp = e.TmpfsTmp != nil && !*e.TmpfsTmp
	h.NoLock = e.Lock != nil && !*e.Lock
	h.ContainerService = e.ContainerService
	h.ShareIPC = e.ShareIPC != nil && *e.ShareIPC
	h.SharePID = e.SharePID != nil && *e.SharePID
	h.ShareUTS = e.ShareUTS != nil && *e.ShareUTS
	if e.NetworkMAC != nil {
		h.NetworkMAC = e.NetworkMAC.String()
	}
	if e.SuppressSync != nil {
		c.SuppressSync = *e.SuppressSync
	}
	if e.UnifiedHierarchy != nil && !*e.UnifiedHierarchy {
		// nspawn would mount the legacy v1 hierarchies for an old init;
		// netspawn only gives containers the unified one.
		w := "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=0: netspawn gives containers the unified cgroup hierarchy only; an init that needs cgroup v1 will not boot"
		c.Warnings = append(c.Warnings, w)
		slog.Warn(w)
	}
	return nil
}

// addWarning records a non-fatal problem and logs it.
func (c *Config) addWarning(w string) {
	c.Warnings = append(c.Warnings, w)
	slog.Warn(w)
}

// checkHostEnv refuses combinations the kernel cannot do.
func (c *Config) checkHostEnv() error {
	h := c.HostEnv
	if h.SharePID && c.Boot {
		if c.OCIBundle != "" {
			return errors.New("-b/--boot with an OCI bundle whose linux.namespaces has no \"pid\": an OS cannot boot without a PID namespace of its own (its init must be PID 1)")
		}
		return errors.New("SYSTEMD_NSPAWN_SHARE_NS_PID: an OS cannot boot without a PID namespace of its own (its init must be PID 1)")
	}
	if (h.SharePID || h.ShareIPC || h.ShareUTS) && c.PrivateUsers.Enabled() {
		return errors.New("SYSTEMD_NSPAWN_SHARE_NS_*: the host's PID, IPC and UTS namespaces cannot be shared with a container that has a user namespace of its own (-U, --private-users=)")
	}
	return nil
}
