package spawn

import (
	"bytes"
	"errors"
	"math"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"github.com/netspawn/netspawn/spawn/config"
	"github.com/netspawn/netspawn/spawn/internal/plan"
	"golang.org/x/sys/unix"
)

func TestResolvConfPlan(t *testing.T) {
	cases := []struct {
		mode                         string
		privateNet, readOnly, haveNS bool
		action, source               string
	}{
		{"auto", false, false, false, "copy", "host"},
		{"", false, true, false, "bind", "host"},
		{"auto", true, false, true, "write", ""},
		{"auto", true, false, false, "", ""},
		{"off", false, false, true, "", ""},
		{"delete", false, false, false, "delete", ""},
		{"copy-uplink", true, false, true, "copy", "uplink"},
		{"replace-static", false, false, false, "replace", "static"},
		{"bind-stub", false, false, false, "bind", "stub"},
	}
	for _, c := range cases {
		a, s := resolvConfPlan(c.mode, c.privateNet, c.readOnly, c.haveNS)
		if a != c.action || s != c.source {
			t.Errorf("resolvConfPlan(%q, net=%v, ro=%v, dns=%v) = %q %q, want %q %q", c.mode, c.privateNet, c.readOnly, c.haveNS, a, s, c.action, c.source)
		}
	}
}

func TestTimezonePlan(t *testing.T) {
	cases := []struct {
		mode              string
		symlink, readOnly bool
		want              string
	}{
		{"auto", true, false, "symlink"},
		{"", false, false, "copy"},
		{"auto", true, true, "bind"},
		{"off", true, false, "off"},
		{"copy", true, false, "copy"},
	}
	for _, c := range cases {
		if got := timezonePlan(c.mode, c.symlink, c.readOnly); got != c.want {
			t.Errorf("timezonePlan(%q, %v, %v) = %q, want %q", c.mode, c.symlink, c.readOnly, got, c.want)
		}
	}
}

func TestTmpfsOptions(t *testing.T) {
	cases := []struct {
		opts  string
		flags uintptr
		data  string
	}{
		{"", unix.MS_NOSUID | unix.MS_NODEV, ""},
		{"mode=0755,size=10M", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755,size=10M"},
		{"ro,noexec", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_RDONLY | unix.MS_NOEXEC, ""},
		{"suid,dev,exec,rw,uid=5", 0, "uid=5"},
	}
	for _, c := range cases {
		f, d := tmpfsOptions(c.opts)
		if f != c.flags || d != c.data {
			t.Errorf("tmpfsOptions(%q) = %#x %q, want %#x %q", c.opts, f, d, c.flags, c.data)
		}
	}
}

// exitResult on real processes: an exit code, a signal, and boot mode's
// SIGINT (powered off) and SIGHUP (reboot).
func TestExitResult(t *testing.T) {
	run := func(script string) (*exec.Cmd, error) {
		cmd := exec.Command("sh", "-c", script)
		return cmd, cmd.Run()
	}
	var stderr bytes.Buffer
	cfg := &config.Config{Machine: "web"}

	cmd, err := run("exit 0")
	if reboot, rerr := exitResult(cfg, &stderr, waitStatusOf(cmd.ProcessState), err); reboot || rerr != nil || !strings.Contains(stderr.String(), "Container web exited successfully.") {
		t.Errorf("exit 0: %v %v %q", reboot, rerr, stderr.String())
	}
	cmd, err = run("exit 3")
	var ee *ExitError
	if _, rerr := exitResult(cfg, &stderr, waitStatusOf(cmd.ProcessState), err); !errors.As(rerr, &ee) || ee.Code != 3 || !strings.Contains(stderr.String(), "failed with error code 3") {
		t.Errorf("exit 3: %v %q", rerr, stderr.String())
	}
	cmd, err = run("kill -TERM $$")
	if _, rerr := exitResult(cfg, &stderr, waitStatusOf(cmd.ProcessState), err); !errors.As(rerr, &ee) || ee.Code != 128+15 || !strings.Contains(stderr.String(), "terminated by signal SIGTERM") {
		t.Errorf("SIGTERM: %v %q", rerr, stderr.String())
	}
	boot := &config.Config{Machine: "os", Boot: true, Quiet: true}
	cmd, err = run("kill -INT $$")
	if reboot, rerr := exitResult(boot, &stderr, waitStatusOf(cmd.ProcessState), err); reboot || rerr != nil {
		t.Errorf("boot, SIGINT: %v %v", reboot, rerr)
	}
	cmd, err = run("kill -HUP $$")
	if reboot, rerr := exitResult(boot, &stderr, waitStatusOf(cmd.ProcessState), err); !reboot || rerr != nil {
		t.Errorf("boot, SIGHUP: %v %v", reboot, rerr)
	}
}

// An OCI bundle's linux.devices become Mknod steps after their parents,
// with the exact mode and owner (unchanged where not given).
func TestExtraNodeSteps(t *testing.T) {
	gid := uint32(5)
	s := extraNodeSteps("/r", []config.DeviceNode{
		{Path: "/dev/net/tun", Type: 'c', Major: 10, Minor: 200, Mode: 0o666, GID: &gid},
		{Path: "/dev/fifo", Type: 'p', Mode: 0o600},
	})
	want := []plan.Step{
		{Kind: plan.Mkdir, Path: "/r/dev", Mode: 0o755},
		{Kind: plan.Mkdir, Path: "/r/dev/net", Mode: 0o755},
		{Kind: plan.Mknod, Path: "/r/dev/net/tun", Mode: unix.S_IFCHR | 0o666, Dev: unix.Mkdev(10, 200), Chown: true, UID: math.MaxUint32, GID: 5, Context: "OCI bundle linux.devices (/dev/net/tun)"},
		{Kind: plan.Mkdir, Path: "/r/dev", Mode: 0o755},
		{Kind: plan.Mknod, Path: "/r/dev/fifo", Mode: unix.S_IFIFO | 0o600, Chown: true, UID: math.MaxUint32, GID: math.MaxUint32, Context: "OCI bundle linux.devices (/dev/fifo)"},
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("got  %+v\nwant %+v", s, want)
	}
}
