package test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netspawn/netspawn/internal/testutil"
	"github.com/netspawn/netspawn/spawn/cgroup"
	"github.com/netspawn/netspawn/test/harness"
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// TestChurn starts and stops containers over and over, as -n machines, zone
// members and members of a LAN bridge, from several workers at once, while
// netspawnd is killed with SIGKILL at random moments. Every start must work
// (netspawn reconnects to the next netspawnd), no address netspawnd hands
// out may ever go to two machines, and afterwards nothing is left: links,
// nftables elements, cgroups, machines, DNS names, extra daemons.
//
// make test runs 200 cycles with 3 kills; make soak runs
// NETSPAWN_CHURN_CYCLES=2000 NETSPAWN_CHURN_KILLS=20 and prints the figures
// for docs/benchmarks.md.
func TestChurn(t *testing.T) {
	cycles, kills := envInt("NETSPAWN_CHURN_CYCLES", 200), envInt("NETSPAWN_CHURN_KILLS", 3)
	const workers, namesPerWorker = 4, 4
	w := newWorld(t)
	harness.RequireTool(t, "dnsmasq", "nft")
	newLAN(t, w.Env)
	// Bridged members wait for the LAN's lease; fail fast rather than hang.
	w.Vars = append(w.Vars, "NETSPAWN_DHCP_TIMEOUT=20")
	if r := w.Run("netspawnctl", "list"); r.Code != 0 {
		t.Fatalf("netspawnctl list: %s", r.Stderr)
	}

	type handout struct {
		name, mode string
		cycle      int
	}
	var (
		mu       sync.Mutex
		owner    = map[string]handout{} // address -> the machine netspawnd gave it
		dups     []string
		failures []string
		done     int
	)
	modes := []string{"-n", "--network-zone=churnz", "--network-bridge=br0"}
	next := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for wk := 0; wk < workers; wk++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				name := fmt.Sprintf("churn%d-%d", wk, i%namesPerWorker)
				mode := modes[i%len(modes)]
				ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
				cmd := w.NS.CommandContext(ctx, filepath.Join(w.Bin, "netspawn"), "-q", "-D", w.Tree, "-M", name, mode,
					"sh", "-c", "ip -4 -o addr show dev host0 | awk '{print $4}'")
				cmd.Env = append(os.Environ(), w.Vars...)
				out, err := cmd.CombinedOutput()
				cancel()
				addr := strings.SplitN(strings.TrimSpace(string(out)), "/", 2)[0]
				mu.Lock()
				done++
				switch {
				case err != nil || !strings.Contains(string(out), "/"):
					failures = append(failures, fmt.Sprintf("%s %s: %v: %s", name, mode, err, strings.TrimSpace(string(out))))
				case mode != "--network-bridge=br0": // the LAN's dnsmasq hands out those
					if o, ok := owner[addr]; ok && o.name != name {
						dups = append(dups, fmt.Sprintf("%s to %s (%s, cycle %d) and %s (%s, cycle %d)", addr, o.name, o.mode, o.cycle, name, mode, i))
					}
					owner[addr] = handout{name, mode, i}
				}
				mu.Unlock()
			}
		}()
	}
	// Kill -9 netspawnd at random moments while the cycles run: spread
	// over the cycles (not the clock), so a slow machine still gets them.
	killAt := map[int]bool{}
	for len(killAt) < kills {
		killAt[1+rand.IntN(cycles-1)] = true
	}
	killed := 0
	var killedAt []int
	for i := 0; i < cycles; i++ {
		if killAt[i] {
			killNetspawndOf(t, w.Env)
			killed++
			killedAt = append(killedAt, i)
		}
		next <- i
	}
	t.Logf("netspawnd killed before cycles %v", killedAt)
	// What went wrong is said again after netspawnd's log, so that a CI
	// excerpt that shows only the end of the output still shows it.
	var problems []string
	fail := func(format string, args ...any) {
		t.Helper()
		problems = append(problems, fmt.Sprintf(format, args...))
		t.Errorf(format, args...)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(w.RuntimeDir, "netspawnd.log"))
			if len(b) > 20000 {
				b = b[len(b)-20000:]
			}
			t.Logf("netspawnd's log (end):\n%s", b)
			t.Logf("TestChurn failed:\n%s", strings.Join(problems, "\n"))
		}
	})
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	t.Logf("%d cycles (%d workers: -n, zone and bridge members) with %d kill -9 of netspawnd in %s: %.1f starts/s; %d failed, %d duplicate addresses",
		cycles, workers, killed, elapsed.Round(time.Millisecond), float64(cycles)/elapsed.Seconds(), len(failures), len(dups))
	for _, f := range failures {
		fail("start failed: %s", f)
		// What netspawnd said about that machine (its log spans the kills).
		name := strings.Fields(f)[0]
		b, _ := os.ReadFile(filepath.Join(w.RuntimeDir, "netspawnd.log"))
		var about []string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, name) || strings.Contains(l, "netspawnd ready") || strings.Contains(l, "left behind") || strings.Contains(l, "no machine holds") {
				about = append(about, l)
			}
		}
		if len(about) > 40 {
			about = about[len(about)-40:]
		}
		t.Logf("netspawnd on %s:\n%s", name, strings.Join(about, "\n"))
	}
	for _, d := range dups {
		fail("address handed out twice: %s", d)
	}

	// Nothing is left once every machine ended (teardown is asynchronous:
	// wait for it, then look).
	leaks := func() []string {
		var l []string
		if out, _ := w.NS.Sh("ip -o link show"); strings.Contains(out, "ve-churn") || strings.Contains(out, "vb-churn") || strings.Contains(out, "vz-churnz") {
			l = append(l, "links:\n"+out)
		}
		if out, _ := w.NS.Sh("nft list table inet netspawn"); strings.Contains(out, "elements = {") {
			l = append(l, "nftables elements:\n"+out)
		}
		if r := w.Run("netspawnctl", "list"); strings.Contains(r.Stdout, "churn") {
			l = append(l, "machines:\n"+r.Stdout)
		}
		if root := cgroup.V2Root(); root != "" {
			if m, _ := filepath.Glob(filepath.Join(root, "machine.slice", "machine-churn*")); len(m) > 0 {
				l = append(l, fmt.Sprintf("cgroups: %v", m))
			}
		}
		if out, _ := w.NS.Command("dig", "@127.0.0.153", "+short", "+time=1", "+tries=1", "churn0-0").Output(); len(strings.TrimSpace(string(out))) > 0 {
			l = append(l, "DNS still answers churn0-0: "+string(out))
		}
		if n := len(netspawndsOf(w.Env)); n != 1 {
			l = append(l, fmt.Sprintf("%d netspawnd processes for this test, want 1", n))
		}
		return l
	}
	var left []string
	if !testutil.Eventually(30*time.Second, func() bool { left = leaks(); return len(left) == 0 }) {
		for _, l := range left {
			fail("left behind: %s", l)
		}
	}
	// The leases are the machines' (kept, so each keeps its address): no
	// more of them than machines, none shared.
	r := w.Run("netspawnctl", "leases")
	seen := map[string]bool{}
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(r.Stdout), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) < 2 || !strings.Contains(f[1], ".") {
			continue
		}
		n++
		if seen[f[1]] {
			fail("address %s leased twice:\n%s", f[1], r.Stdout)
		}
		seen[f[1]] = true
	}
	if max := 2 * workers * namesPerWorker; n > max {
		fail("%d leases for %d machines (on two kinds of link):\n%s", n, workers*namesPerWorker, r.Stdout)
	}
}

// netspawndsOf lists the PIDs of netspawnd processes in the test's
// network namespace.
func netspawndsOf(e *harness.Env) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile("/proc/" + d.Name() + "/comm")
		if strings.TrimSpace(string(comm)) != "netspawnd" {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat("/proc/"+d.Name()+"/ns/net", &st) != nil || st.Ino != e.NS.Inode() {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// killNetspawndOf kills the test's netspawnd with SIGKILL, without waiting.
func killNetspawndOf(t *testing.T, e *harness.Env) {
	t.Helper()
	for _, pid := range netspawndsOf(e) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
