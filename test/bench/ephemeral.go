package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/netspawn/netspawn/test/harness"
)

func init() { register("ephemeral", benchEphemeral) }

// benchEphemeral times /bin/true in a throw-away snapshot (-x) and in a
// user namespace (-U), netspawn against systemd-nspawn, alternating runs,
// each on its own copy of the busybox tree (a directory on ext4: nspawn
// copies the tree for -x, netspawn puts an overlay over it).
func benchEphemeral(ctx context.Context, b *B) error {
	pristine, err := harness.CachedBusyboxTree(harness.CacheDir())
	if err != nil {
		return err
	}
	ns, err := harness.OpenNetNS()
	if err != nil {
		return err
	}
	defer ns.Close()
	netspawn, err := filepath.Abs("bin/netspawn")
	if err != nil {
		return err
	}
	if _, err := os.Stat(netspawn); err != nil {
		return fmt.Errorf("bin/netspawn missing: run make build first: %w", err)
	}
	nspawn, err := exec.LookPath("systemd-nspawn")
	if err != nil {
		return fmt.Errorf("systemd-nspawn not installed (Debian package systemd-container): %w", err)
	}
	work, err := os.MkdirTemp("/var/tmp", "netspawn-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	trees := map[string]string{}
	for _, n := range []string{"ours-x", "theirs-x", "ours-U", "theirs-U"} {
		trees[n] = filepath.Join(work, n)
		if err := harness.CopyTree(pristine, trees[n]); err != nil {
			return err
		}
	}
	state := filepath.Join(work, "state")
	cases := []struct {
		what        string
		ours, their []string
	}{
		{"-x", []string{netspawn, "-q", "-x", "-D", trees["ours-x"], "/bin/true"},
			[]string{nspawn, "--register=no", "--keep-unit", "-q", "-x", "-D", trees["theirs-x"], "/bin/true"}},
		{"-U", []string{netspawn, "-q", "-U", "-D", trees["ours-U"], "/bin/true"},
			[]string{nspawn, "--register=no", "--keep-unit", "-q", "-U", "-D", trees["theirs-U"], "/bin/true"}},
	}
	const runs = 30
	for _, c := range cases {
		times := map[string][]time.Duration{}
		for i := 0; i < runs+3; i++ {
			for _, who := range []string{"netspawn", "systemd-nspawn"} {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				argv := c.ours
				if who == "systemd-nspawn" {
					argv = c.their
				}
				cmd := ns.Command(argv[0], argv[1:]...)
				cmd.Env = append(os.Environ(), "NETSPAWN_STATE_DIR="+state)
				start := time.Now()
				if out, err := cmd.CombinedOutput(); err != nil {
					return fmt.Errorf("%s %s: %v: %s", who, c.what, err, out)
				}
				if i >= 3 { // warm-up runs (and the first -U ownership shift) are not counted
					times[who] = append(times[who], time.Since(start))
				}
			}
		}
		ours, theirs := median(times["netspawn"]), median(times["systemd-nspawn"])
		b.Result("netspawn "+c.what+" /bin/true", ms(ours), "ms")
		b.Result("systemd-nspawn --register=no --keep-unit "+c.what+" /bin/true", ms(theirs), "ms")
		b.Result("ratio netspawn/systemd-nspawn "+c.what, float64(ours)/float64(theirs), "")
	}
	b.Logf("busybox tree on %s, median of %d alternating runs each (nsenter included in both)", work, runs)
	return nil
}
