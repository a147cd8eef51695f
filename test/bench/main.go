// Command bench runs netspawn's benchmarks side by side with their peers
// (systemd-nspawn, dnsmasq, Kea) and prints the ratios. Run it with
// `make bench`; `go run ./test/bench -list` names the benchmarks and
// `-run REGEXP` picks some.
package main

import (
	"context"
	"flag"
	"fmt"
	"golang.org/x/sys/unix"
	"os"
	"os/signal"
	"regexp"
	"sort"
	"strconv"
	"syscall"
	"time"
)

// B is handed to each benchmark: it prints results in one format.
type B struct {
	name string
}

// Logf prints a progress or result line under the benchmark's name.
func (b *B) Logf(format string, args ...any) {
	fmt.Printf("[%s] %s\n", b.name, fmt.Sprintf(format, args...))
}

// Result prints one measured figure.
func (b *B) Result(what string, value float64, unit string) {
	fmt.Printf("[%s] %-50s %12.3f %s\n", b.name, what, value, unit)
}

type benchmark struct {
	name string
	run  func(ctx context.Context, b *B) error
}

var benchmarks []benchmark

// register adds a benchmark; each benchmark file calls it from init.
func register(name string, run func(ctx context.Context, b *B) error) {
	benchmarks = append(benchmarks, benchmark{name, run})
}

// children are helper processes a benchmark runs from this same binary
// (re-executed with NETSPAWN_BENCH_CHILD=name), e.g. a server that must be
// pinned to a CPU and capped apart from the benchmark itself.
var children = map[string]func() error{}

func registerChild(name string, run func() error) { children[name] = run }

// pinProcess keeps every thread of this process (and so every thread it
// makes later) on one CPU: NETSPAWN_BENCH_CPU for a child.
func pinProcess(cpu string) error {
	n, err := strconv.Atoi(cpu)
	if err != nil {
		return err
	}
	var set unix.CPUSet
	set.Set(n)
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && err != unix.ESRCH {
			return err
		}
	}
	return nil
}

func main() {
	if name := os.Getenv("NETSPAWN_BENCH_CHILD"); name != "" {
		run, ok := children[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "bench: unknown child %q\n", name)
			os.Exit(2)
		}
		if cpu := os.Getenv("NETSPAWN_BENCH_CPU"); cpu != "" {
			if err := pinProcess(cpu); err != nil {
				fmt.Fprintf(os.Stderr, "bench: %s: pinning to CPU %s: %v\n", name, cpu, err)
				os.Exit(1)
			}
		}
		if err := run(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", name, err)
			os.Exit(1)
		}
		return
	}
	list := flag.Bool("list", false, "list the benchmarks and exit")
	run := flag.String("run", ".", "run only the benchmarks whose name matches this regular expression")
	flag.Parse()
	sort.Slice(benchmarks, func(i, j int) bool { return benchmarks[i].name < benchmarks[j].name })
	if *list {
		for _, bm := range benchmarks {
			fmt.Println(bm.name)
		}
		return
	}
	re, err := regexp.Compile(*run)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: bad -run pattern: %v\n", err)
		os.Exit(2)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench: benchmarks create namespaces and links: run as root (sudo make bench)")
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tidy := tidyPeers()
	defer tidy()
	failed := 0
	for _, bm := range benchmarks {
		if !re.MatchString(bm.name) {
			continue
		}
		start := time.Now()
		b := &B{name: bm.name}
		if err := bm.run(ctx, b); err != nil {
			b.Logf("FAILED: %v", err)
			failed++
			continue
		}
		b.Logf("done in %s", time.Since(start).Round(time.Millisecond))
	}
	if failed > 0 {
		tidy()
		os.Exit(1)
	}
}

// peerRunDirs are directories systemd-nspawn (a peer) creates under /run
// when it runs; the benchmarks remove those that were not there before (and
// are empty again), so a run leaves the machine as it found it.
var peerRunDirs = []string{"/run/systemd/nspawn/propagate", "/run/systemd/nspawn/locks", "/run/systemd/nspawn", "/run/systemd/nspawn-uid"}

func tidyPeers() func() {
	existed := map[string]bool{}
	for _, d := range peerRunDirs {
		if _, err := os.Stat(d); err == nil {
			existed[d] = true
		}
	}
	return func() {
		for _, d := range peerRunDirs {
			if !existed[d] {
				_ = syscall.Rmdir(d)
			}
		}
	}
}
