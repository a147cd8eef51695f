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
	order := []string{"netspawn", "systemd-nspawn", "netspawn -n", "systemd-nspawn -n"}
	// Each tool runs in blocks of consecutive runs (as hyperfine times a
	// command), blocks alternating between the tools. Runs interleaved one
	// by one measure something else: the kernel tears a finished run's
	// namespaces down in the background, and that work (heavier after
	// systemd-nspawn) lands on whichever run comes next (measured: netspawn's
	// median doubles right after a systemd-nspawn run).
	const rounds, block, warm = 4, 15, 2
	const runs = rounds * (block - warm)
	times := map[string][]time.Duration{}
	for p, pair := range [][]string{order[:2], order[2:]} {
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
	ours := median(times["netspawn"]) - nb
	theirs := median(times["systemd-nspawn"]) - nb
	b.Logf("busybox tree, /bin/true, median of %d runs in %d alternating blocks per tool, nsenter overhead (%.2f ms) subtracted; netspawn registers with netspawnd (running) as nspawn would with machined", runs, rounds, ms(nb))
	b.Result("netspawn -q -D TREE /bin/true", ms(ours), "ms")
	b.Result("systemd-nspawn --register=no --keep-unit -q -D TREE", ms(theirs), "ms")
	b.Result("ratio netspawn/systemd-nspawn (target <= 0.33)", float64(ours)/float64(theirs), "")
	oursN := median(times["netspawn -n"]) - nb
	theirsN := median(times["systemd-nspawn -n"]) - nb
	b.Result("netspawn -n, payload sees its address on host0", ms(oursN), "ms")
	b.Result("systemd-nspawn -n (no address configured)", ms(theirsN), "ms")
	b.Result("ratio netspawn -n/systemd-nspawn -n (target <= 0.5)", float64(oursN)/float64(theirsN), "")
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
