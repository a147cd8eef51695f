package spawn

import (
	"errors"
	"os"

	"github.com/netspawn/netspawn/spawn/config"
	"github.com/netspawn/netspawn/spawn/devpolicy"

	"golang.org/x/sys/unix"
)

// devicePolicy is the machine's device rules, as systemd-nspawn registers
// them with its scope: DevicePolicy=closed, /dev/net/tun and ptys
// (devpolicy.Closed), each device node bound in with --bind= (r, or rw
// when the bind is writable; never made), and an OCI bundle's
// linux.resources.devices allow entries and linux.devices nodes (which
// the container makes itself). stat reads a bind's source (its numbers).
func devicePolicy(cfg *config.Config, procDevices string, stat func(string) (unix.Stat_t, error)) []devpolicy.Rule {
	rules := devpolicy.Closed(devpolicy.PTSMajors(procDevices))
	for _, b := range cfg.Binds {
		if b.Source == "" || b.SourceInRoot {
			continue
		}
		st, err := stat(b.Source)
		if err != nil {
			continue // the bind's own error comes later
		}
		t := devpolicy.Char
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR:
		case unix.S_IFBLK:
			t = devpolicy.Block
		default:
			continue
		}
		access := devpolicy.Read | devpolicy.Write
		if b.ReadOnly {
			access = devpolicy.Read
		}
		rules = append(rules, devpolicy.Rule{Type: t, Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev)), Access: access})
	}
	for _, a := range cfg.DeviceAllow {
		access, err := devpolicy.ParseAccess(a.Access)
		if err != nil {
			continue // checked when the bundle was read
		}
		rules = append(rules, devpolicy.Rule{Type: devpolicy.Type(a.Type), Major: a.Major, Minor: a.Minor, Access: access})
	}
	for _, n := range cfg.ExtraDevices {
		switch n.Type {
		case 'c', 'b':
			rules = append(rules, devpolicy.Rule{Type: devpolicy.Type(n.Type), Major: int64(n.Major), Minor: int64(n.Minor), Access: devpolicy.RWM})
		}
	}
	return rules
}

// devicePolicyProgram is the machine's device program, loaded in the
// background from the start of Run (the kernel's verifier takes a few
// hundred microseconds on a virtualised host); applyDevicePolicy attaches
// it once the machine's cgroup exists.
type devicePolicyProgram struct {
	done chan struct{}
	prog *os.File
	err  error
}

func loadDevicePolicy(cfg *config.Config) *devicePolicyProgram {
	p := &devicePolicyProgram{done: make(chan struct{})}
	c := *cfg
	go func() {
		defer close(p.done)
		procDevices, _ := os.ReadFile("/proc/devices")
		stat := func(path string) (unix.Stat_t, error) {
			var st unix.Stat_t
			err := unix.Stat(path, &st)
			return st, err
		}
		p.prog, p.err = devpolicy.Load(devicePolicy(&c, string(procDevices), stat))
	}()
	return p
}

// close releases the program (an attached one stays with its cgroup).
func (p *devicePolicyProgram) close() {
	<-p.done
	if p.prog != nil {
		p.prog.Close()
	}
}

// unrestricted ends the warning given where no policy can be attached.
const unrestricted = "device access is not restricted (the container's root can make and open any device node; -U prevents that)"

// applyDevicePolicy attaches the machine's device policy to its cgroup
// before anything runs in it. Where the kernel cannot (no cgroup v2, no
// cgroup device programs), the container starts with a warning: its root
// could make and open any device node, which -U (a user namespace, where
// mknod of devices is refused) prevents.
func (r *runner) applyDevicePolicy() error {
	fd := r.cgroup.FD()
	if fd < 0 {
		warnf(r.cfg.Quiet, "the machine has no cgroup on the unified hierarchy: %s", unrestricted)
		return nil
	}
	p := r.devices
	<-p.done
	err := p.err
	if err == nil {
		err = devpolicy.Attach(fd, r.cgroup.Payload, p.prog)
	}
	if errors.Is(err, devpolicy.ErrUnsupported) {
		warnf(r.cfg.Quiet, "%v: %s", err, unrestricted)
		return nil
	}
	return err
}
