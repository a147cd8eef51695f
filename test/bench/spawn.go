package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"github.com/netspawn/netspawn/test/harness"
)

func init() { register("spawn", benchSpawn) }

// benchSpawn times a container running /bin/true, netspawn against
// systemd-nspawn on the same busybox tree, alternating runs, inside a
// network namespace made for the benchmark.
func benchSpawn(ctx context.Context, b *B) error {
	tree, err := harness.CachedBusyboxTree(harness.CacheDir())
	if err != nil {
		return err
	}
	ns, err := harness.OpenNetNS()
	if err != nil {
		return err
	}
	defer ns.Close()
	cleanup, err := privateDirs()
	if err != nil {
		return err
	}
	defer cleanup()
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
	cmds := map[string][]string{
		"netspawn":       {netspawn, "-q", "-D", tree, "/bin/true"},
		"systemd-nspawn": {nspawn, "--register=no", "--keep-unit", "-q", "-D", tree, "/bin/true"},
		// -n: netspawn's payload checks that host0 has its address at its
		// first instruction; systemd-nspawn -n configures no address at all.
		"netspawn -n":       {netspawn, "-q", "-D", tree, "-M", "benchnet", "-n", "sh", "-c", "ip -4 -o addr show dev host0 | grep -q inet"},
		"systemd-nspawn -n": {nspawn, "--register=no", "--keep-unit", "-q", "-D", tree, "-M", "benchns", "-n", "/bin/true"},
	}
	// The floor: the same namespaces and root with nothing else (no
	// mounts beyond /proc, no cgroup, no registration), run the same way.
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		return fmt.Errorf("unshare not installed (Debian package util-linux): %w", err)
	}
	floor := []string{unshare, "-m", "-p", "-f", "-u", "-i", "-C", "--mount-proc", "chroot", tree, "/bin/true"}
	cmds["floor"] = floor
	cmds["floor -n"] = append([]string{unshare, "-n"}, floor[1:]...)
	order := []string{"netspawn", "systemd-nspawn", "floor", "netspawn -n", "systemd-nspawn -n", "floor -n"}
	// Each tool runs in blocks of consecutive runs (as hyperfine times a
	// command), blocks alternating between the tools. Runs interleaved one
	// by one measure something else: the kernel tears a finished run's
	// namespaces down in the background, and that work (heavier after
	// systemd-nspawn) lands on whichever run comes next (measured: netspawn's
	// median doubles right after a systemd-nspawn run).
	const rounds, block, warm = 4, 15, 2
	const runs = rounds * (block - warm)
	times := map[string][]time.Duration{}
	for p, pair := range [][]string{order[:3], order[3:]} {
		// With -n, each run's links are deleted after it (by netspawnd in the
		// background, by the kernel with systemd-nspawn's namespace), which
		// takes the kernel tens of milliseconds under the lock the next run's
		// link creation needs: let it finish first, for both tools.
		settle := time.Duration(0)
		if p == 1 {
			settle = 250 * time.Millisecond
		}
		for round := 0; round < rounds; round++ {
			for _, name := range pair {
				for i := 0; i < block; i++ {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					argv := cmds[name]
					cmd := ns.Command(argv[0], argv[1:]...)
					time.Sleep(settle)
					start := time.Now()
					if out, err := cmd.CombinedOutput(); err != nil {
						return fmt.Errorf("%s: %v: %s", name, err, out)
					}
					if i >= warm {
						times[name] = append(times[name], time.Since(start))
					}
				}
			}
		}
	}
	// nsenter itself is part of every run: measure it to subtract.
	var base []time.Duration
	for i := 0; i < runs; i++ {
		start := time.Now()
		if err := ns.Command("/bin/true").Run(); err != nil {
			return err
		}
		base = append(base, time.Since(start))
	}
	nb := median(base)
	at := func(name string) time.Duration { return median(times[name]) - nb }
	b.Logf("busybox tree, median of %d runs in %d alternating blocks per tool, nsenter overhead (%.2f ms) subtracted; netspawn registers with netspawnd (running) as nspawn would with machined; the floor is unshare -m -p -f -u -i -C --mount-proc chroot TREE /bin/true (with -n: also -n); with -n netspawn's payload checks host0 has its address, nspawn's configures none", runs, rounds, ms(nb))
	for _, row := range []struct{ ours, theirs, floor, label, target string }{
		{"netspawn", "systemd-nspawn", "floor", "/bin/true", "0.2"},
		{"netspawn -n", "systemd-nspawn -n", "floor -n", "-n", "0.3"},
	} {
		o, th, f := at(row.ours), at(row.theirs), at(row.floor)
		b.Result(row.label+": floor (unshare + chroot)", ms(f), "ms")
		b.Result(row.label+": netspawn", ms(o), "ms")
		b.Result(row.label+": systemd-nspawn", ms(th), "ms")
		b.Result(row.label+": netspawn over the floor", ms(o-f), "ms")
		b.Result(row.label+": systemd-nspawn over the floor", ms(th-f), "ms")
		b.Result(row.label+": ratio netspawn/systemd-nspawn (target <= "+row.target+")", float64(o)/float64(th), "")
	}
	return nil
}

// privateDirs points NETSPAWN_RUNTIME_DIR, NETSPAWN_STATE_DIR and
// NETSPAWN_IMAGES_DIR at fresh temporary directories, so a benchmark's
// netspawnd (started on demand inside the benchmark's namespace) touches
// nothing of the host's. The runtime directory is on tmpfs (/dev/shm), as
// /run is on a real host. It returns a function removing them.
func privateDirs() (func(), error) {
	disk, err := os.MkdirTemp("", "netspawn-bench-")
	if err != nil {
		return nil, err
	}
	mem, err := os.MkdirTemp("/dev/shm", "netspawn-bench-")
	if err != nil {
		os.RemoveAll(disk)
		return nil, err
	}
	dirs := map[string]string{
		"NETSPAWN_RUNTIME_DIR": mem,
		"NETSPAWN_STATE_DIR":   filepath.Join(disk, "state"),
		"NETSPAWN_IMAGES_DIR":  filepath.Join(disk, "machines"),
	}
	for k, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		os.Setenv(k, d)
	}
	return func() { os.RemoveAll(disk); os.RemoveAll(mem) }, nil
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
