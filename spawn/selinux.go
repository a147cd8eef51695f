package spawn

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/netspawn/netspawn/spawn/config"

	"golang.org/x/sys/unix"
)

// SELinux labels, as systemd-nspawn applies them: -Z/--selinux-context=
// is the label the payload is executed with (setexeccon: written to
// /proc/thread-self/attr/exec right before the execve), and
// -L/--selinux-apifs-context= the context= mount option of the container's
// API and tmpfs file systems (/dev, /dev/pts, /dev/shm, /run, /tmp,
// --tmpfs=, --volatile=). On a host without SELinux nspawn 252 fails as
// well, only later and less clearly (setexeccon() failed: Invalid
// argument; the tmpfs mount refused with EINVAL): netspawn refuses such a
// run before it creates anything.

const selinuxMagic = 0xf97cff8c // SELINUX_MAGIC, selinuxfs

// selinuxEnabled reports whether SELinux is active on this host: its file
// system is mounted at /sys/fs/selinux (libselinux's test).
func selinuxEnabled() bool {
	var st unix.Statfs_t
	return unix.Statfs("/sys/fs/selinux", &st) == nil && uint32(st.Type) == selinuxMagic
}

// checkSELinux refuses the SELinux options where SELinux is not enabled.
func checkSELinux(cfg *config.Config, enabled func() bool) error {
	var opts []string
	if cfg.SELinuxContext != "" {
		opts = append(opts, "--selinux-context="+cfg.SELinuxContext)
	}
	if cfg.SELinuxAPIFSContext != "" {
		opts = append(opts, "--selinux-apifs-context="+cfg.SELinuxAPIFSContext)
	}
	if len(opts) == 0 || enabled() {
		return nil
	}
	return fmt.Errorf("%s: SELinux is not enabled on this host (no selinuxfs mounted at /sys/fs/selinux), "+
		"so there is nothing to apply the label with; drop the option (-Z/-L), or run on a host with SELinux enabled",
		strings.Join(opts, " "))
}

// withContext adds -L's context= to a tmpfs or devpts option string, as
// nspawn's tmpfs_patch_options (quoted: MCS categories hold commas).
func withContext(data, context string) string {
	if context == "" {
		return data
	}
	opt := `context="` + context + `"`
	if data == "" {
		return opt
	}
	return data + "," + opt
}

// setExecLabel is setexeccon: the calling thread's next execve runs with
// label (the thread is the one that execs: the init runs locked to it).
func setExecLabel(label string) error {
	if label == "" {
		return nil
	}
	err := os.WriteFile("/proc/thread-self/attr/exec", []byte(label), 0)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("setting the SELinux label %q for the payload (setexeccon): %w", label, err)
	}
	return nil
}
