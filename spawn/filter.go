package spawn

import (
	"fmt"
	"runtime"

	"github.com/netspawn/netspawn/spawn/config"

	"golang.org/x/sys/unix"

	"github.com/netspawn/netspawn/spawn/seccomp"
)

// compileSeccomp builds the container's system call filter: nspawn's
// default allow-list for its capabilities, edited by --system-call-filter=,
// or an OCI bundle's linux.seccomp instead.
// It is compiled in the parent (well under a millisecond), so a bad filter
// is reported before anything starts. Where the kernel has no seccomp (or
// NETSPAWN_SECCOMP=0 / SYSTEMD_SECCOMP=0) there is none.
// compileSeccompAsync compiles the filter of cfg (as it is now) in the
// background; the result is in *prog once ready delivers its error.
func compileSeccompAsync(cfg *config.Config) (ready <-chan error, prog *[]unix.SockFilter) {
	c := *cfg
	done := make(chan error, 1)
	prog = new([]unix.SockFilter)
	go func() {
		p, err := compileSeccomp(&c)
		*prog = p
		done <- err
	}()
	return done, prog
}

func compileSeccomp(cfg *config.Config) ([]unix.SockFilter, error) {
	if !seccomp.Available() {
		if cfg.SeccompProfile != nil {
			warnf(cfg.Quiet, "seccomp is not available: the OCI bundle's linux.seccomp filter is ignored")
		}
		if len(cfg.SystemCallFilter) > 0 {
			warnf(cfg.Quiet, "seccomp is not available: --system-call-filter= is ignored")
		}
		if cfg.SuppressSync {
			warnf(cfg.Quiet, "seccomp is not available: --suppress-sync= is ignored, the container's writes are synced")
		}
		return nil, nil
	}
	if p := cfg.SeccompProfile; p != nil {
		// The bundle's filter replaces the default one, as in nspawn.
		p := *p
		p.SuppressSync = cfg.SuppressSync
		prog, err := p.Compile(runtime.GOARCH)
		if err != nil {
			return nil, fmt.Errorf("compiling the OCI bundle's linux.seccomp filter: %w", err)
		}
		return prog, nil
	}
	f := seccomp.Default(cfg.Capabilities())
	f.SuppressSync = cfg.SuppressSync
	for _, spec := range cfg.SystemCallFilter {
		if err := f.Apply(spec); err != nil {
			return nil, fmt.Errorf("--system-call-filter=%s: %w", spec, err)
		}
	}
	prog, err := f.Compile(runtime.GOARCH)
	if err != nil {
		return nil, fmt.Errorf("compiling the system call filter: %w", err)
	}
	return prog, nil
}
