package spawn

import (
	"errors"
	"testing"

	"github.com/netspawn/netspawn/spawn/config"
	"github.com/netspawn/netspawn/spawn/devpolicy"

	"golang.org/x/sys/unix"
)

func TestDevicePolicyRules(t *testing.T) {
	nodes := map[string]unix.Stat_t{
		"/dev/loop3": {Mode: unix.S_IFBLK | 0o600, Rdev: unix.Mkdev(7, 3)},
		"/dev/ttyS0": {Mode: unix.S_IFCHR | 0o600, Rdev: unix.Mkdev(4, 64)},
		"/srv/data":  {Mode: unix.S_IFDIR | 0o755},
	}
	stat := func(p string) (unix.Stat_t, error) {
		if st, ok := nodes[p]; ok {
			return st, nil
		}
		return unix.Stat_t{}, errors.New("no such file")
	}
	cfg := &config.Config{
		Binds: []config.BindMount{
			{Source: "/dev/loop3", Dest: "/dev/disk"},
			{Source: "/dev/ttyS0", Dest: "/dev/ttyS0", ReadOnly: true},
			{Source: "/srv/data", Dest: "/data"},
			{Source: "/missing", Dest: "/m"},
			{Source: "dev/x", Dest: "/x", SourceInRoot: true},
		},
		DeviceAllow:  []config.DeviceAllow{{Type: 'c', Major: 10, Minor: 229, Access: "rw"}},
		ExtraDevices: []config.DeviceNode{{Path: "/dev/fuse2", Type: 'c', Major: 10, Minor: 230}, {Path: "/p", Type: 'p'}},
	}
	rules := devicePolicy(cfg, "Character devices:\n136 pts\n", stat)
	for _, c := range []struct {
		t            devpolicy.Type
		major, minor int64
		a            devpolicy.Access
		want         bool
	}{
		{devpolicy.Char, 1, 3, devpolicy.RWM, true},                       // null
		{devpolicy.Char, 136, 5, devpolicy.Read | devpolicy.Write, true},  // a pty
		{devpolicy.Char, 137, 5, devpolicy.Read, false},                   // not a pts major here
		{devpolicy.Block, 7, 3, devpolicy.Read | devpolicy.Write, true},   // bound rw
		{devpolicy.Block, 7, 3, devpolicy.Mknod, false},                   // never made
		{devpolicy.Block, 7, 4, devpolicy.Read, false},                    // another loop device
		{devpolicy.Char, 4, 64, devpolicy.Read, true},                     // bound read-only
		{devpolicy.Char, 4, 64, devpolicy.Write, false},                   //
		{devpolicy.Char, 10, 229, devpolicy.Read | devpolicy.Write, true}, // the bundle's allow entry
		{devpolicy.Char, 10, 230, devpolicy.RWM, true},                    // the bundle's node
		{devpolicy.Block, 8, 0, devpolicy.Read, false},                    // the host's disk
		{devpolicy.Char, 1, 1, devpolicy.Read, false},                     // /dev/mem
	} {
		if got := devpolicy.Allowed(rules, c.t, c.major, c.minor, c.a); got != c.want {
			t.Errorf("%c %d:%d %s: allowed %v, want %v", c.t, c.major, c.minor, c.a, got, c.want)
		}
	}
}
