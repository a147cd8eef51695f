package spawn

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/netspawn/netspawn/spawn/config"

	"golang.org/x/sys/unix"
)

// The payload's execution properties, as nspawn's inner child sets them
// before it execs: resource limits (every one: configured, or nspawn's
// defaults for a container), the OOM score adjustment, the CPU affinity,
// the personality and the ambient capabilities. The re-executed init sets
// them on itself (applyExecProps, raiseAmbient); the fast path's child sets
// the limits with plan steps (closestRlimits) and leaves the others to the
// init (fastPlan).

// payloadRlimits is every limit the payload gets (nspawn's
// initialize_rlimits): NPROC and SIGPENDING as the host's PID 1 has them,
// NOFILE's hard limit from fs.nr_open.
func payloadRlimits(cfg *config.Config) ([]config.Rlimit, error) {
	nrOpen := uint64(1024 * 1024)
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
			nrOpen = n
		}
	}
	l, err := cfg.EffectiveRlimits(func(r int) (config.Rlimit, error) {
		var old unix.Rlimit
		if err := unix.Prlimit(1, r, nil, &old); err != nil {
			return config.Rlimit{}, err
		}
		return config.Rlimit{Cur: old.Cur, Max: old.Max}, nil
	}, nrOpen)
	return l[:], err
}

// setRlimitClosest sets a limit on pid (0: this process) with set; where
// raising the hard limit is not allowed (EPERM: no CAP_SYS_RESOURCE, as in
// a user namespace) it settles for the current hard limit, as nspawn's
// setrlimit_closest.
func setRlimitClosest(r int, want config.Rlimit, get func(int, *unix.Rlimit) error, set func(int, *unix.Rlimit) error) error {
	lim := unix.Rlimit{Cur: want.Cur, Max: want.Max}
	err := set(r, &lim)
	if !errors.Is(err, unix.EPERM) {
		return err
	}
	var cur unix.Rlimit
	if get(r, &cur) != nil || want.Max <= cur.Max {
		return err
	}
	lim = unix.Rlimit{Cur: min(want.Cur, cur.Max), Max: cur.Max}
	return set(r, &lim)
}

// closestRlimits is what setRlimitClosest would settle for in a process
// with this one's limits and capabilities (the fast path's child, which
// sets them with raw system calls): a hard limit above the current one
// needs CAP_SYS_RESOURCE.
func closestRlimits(limits []config.Rlimit) []config.Rlimit {
	out := append([]config.Rlimit(nil), limits...)
	if haveCapSysResource() {
		return out
	}
	for r := range out {
		var cur unix.Rlimit
		if unix.Getrlimit(r, &cur) == nil && out[r].Max > cur.Max {
			out[r] = config.Rlimit{Cur: min(out[r].Cur, cur.Max), Max: cur.Max}
		}
	}
	return out
}

// haveCapSysResource reports whether CAP_SYS_RESOURCE is in this thread's
// effective set.
func haveCapSysResource() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if unix.Capget(&hdr, &data[0]) != nil {
		return false
	}
	return data[0].Effective&(1<<unix.CAP_SYS_RESOURCE) != 0
}

// applyExecProps is the init's part, right before its capabilities go:
// OOM score, CPU affinity, personality, then the limits (in nspawn's order).
func applyExecProps(cfg *config.Config, limits []config.Rlimit) error {
	if cfg.OOMScoreAdjust != nil {
		if err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(*cfg.OOMScoreAdjust)), 0); err != nil {
			return fmt.Errorf("failed to adjust OOM score: %w", err)
		}
	}
	if len(cfg.CPUAffinity) > 0 {
		// The init runs locked to the thread that execs the payload: the
		// affinity of that thread is the payload's.
		var set unix.CPUSet
		for _, cpu := range cfg.CPUAffinity {
			if cpu >= len(set)*64 {
				return fmt.Errorf("failed to set CPU affinity: CPU %d is beyond the %d this build handles", cpu, len(set)*64)
			}
			set.Set(cpu)
		}
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return fmt.Errorf("failed to set CPU affinity %v: %w", cfg.CPUAffinity, err)
		}
	}
	if p, ok := cfg.PersonalityValue(); ok {
		if _, _, e := unix.RawSyscall(unix.SYS_PERSONALITY, uintptr(p), 0, 0); e != 0 {
			return fmt.Errorf("personality(%s) failed: %w", cfg.Personality, e)
		}
	}
	for r, l := range limits {
		// syscall.Setrlimit, not unix.Setrlimit: it tells Go's exec not to
		// put back the NOFILE soft limit Go raised at start.
		err := setRlimitClosest(r, l,
			func(r int, old *unix.Rlimit) error { return unix.Getrlimit(r, old) },
			func(r int, lim *unix.Rlimit) error {
				return syscall.Setrlimit(r, &syscall.Rlimit{Cur: lim.Cur, Max: lim.Max})
			})
		if err != nil {
			return fmt.Errorf("failed to apply resource limit RLIMIT_%s: %w", config.RlimitNames[r], err)
		}
	}
	return nil
}

// raiseAmbient gives the payload its ambient capabilities, after the
// switch to its user (nspawn's drop_capabilities): the inheritable and
// permitted sets become the ambient ones for a user other than root (the
// kernel kept the permitted set through the switch: PR_SET_KEEPCAPS), the
// container's whole set for root; then each is raised.
func raiseAmbient(keep, ambient uint64, root bool) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("reading capabilities: %w", err)
	}
	set := ambient
	if root {
		set = keep
	}
	perm := (uint64(data[1].Permitted)<<32 | uint64(data[0].Permitted)) & set
	eff := uint64(0)
	if root {
		eff = perm
	}
	data[0].Permitted, data[1].Permitted = uint32(perm), uint32(perm>>32)
	data[0].Inheritable, data[1].Inheritable = uint32(perm), uint32(perm>>32)
	data[0].Effective, data[1].Effective = uint32(eff), uint32(eff>>32)
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("setting capabilities for the ambient set: %w", err)
	}
	for c := 0; c < 64; c++ {
		if ambient&(1<<uint(c)) == 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(c), 0, 0); err != nil {
			return fmt.Errorf("raising ambient capability %s: %w", strings.Join(config.CapNames(1<<uint(c)), ""), err)
		}
	}
	return nil
}
