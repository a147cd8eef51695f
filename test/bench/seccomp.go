package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/netspawn/netspawn/spawn/seccomp"
	"github.com/netspawn/netspawn/test/harness"
)

// seccompChildEnv makes this program a one-shot child that compiles and
// installs the default filter in a fresh process, as a container start
// does, and prints the two times in nanoseconds.
const seccompChildEnv = "NETSPAWN_BENCH_SECCOMP_CHILD"

// benchCaps is nspawn's default capability set with --private-network.
const benchCaps = 1<<0 | 1<<1 | 1<<2 | 1<<3 | 1<<4 | 1<<5 | 1<<6 | 1<<7 | 1<<8 | 1<<9 |
	1<<10 | 1<<11 | 1<<12 | 1<<13 | 1<<15 | 1<<18 | 1<<19 | 1<<21 | 1<<22 | 1<<23 | 1<<24 | 1<<26 |
	1<<27 | 1<<28 | 1<<29 | 1<<30 | 1<<31

func init() {
	if os.Getenv(seccompChildEnv) == "1" {
		seccompChild()
	}
	register("seccomp", benchSeccomp)
}

func seccompChild() {
	runtime.LockOSThread()
	start := time.Now()
	prog, err := seccomp.Default(benchCaps).Compile("")
	compiled := time.Now()
	if err == nil {
		err = seccomp.Install(prog)
	}
	installed := time.Now()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(compiled.Sub(start).Nanoseconds(), installed.Sub(compiled).Nanoseconds(), len(prog))
	os.Exit(0)
}

// benchSeccomp compares what a container start spends on its syscall
// filter: netspawn (compile in Go in a fresh process, then seccomp(2))
// against systemd-nspawn (libseccomp), the latter measured as the
// difference between runs with and without SYSTEMD_SECCOMP=0 on the same
// busybox tree.
func benchSeccomp(ctx context.Context, b *B) error {
	// In-process: compile without the cache (each Errno is a new filter)
	// and with it.
	const n = 2000
	var cold []time.Duration
	for i := 0; i < n; i++ {
		f := seccomp.Default(benchCaps)
		f.Errno = syscall.Errno(1 + i%4000)
		start := time.Now()
		if _, err := f.Compile(""); err != nil {
			return err
		}
		cold = append(cold, time.Since(start))
	}
	var warm []time.Duration
	for i := 0; i < n; i++ {
		start := time.Now()
		if _, err := seccomp.Default(benchCaps).Compile(""); err != nil {
			return err
		}
		warm = append(warm, time.Since(start))
	}

	// Fresh processes: first compile (tables initialised lazily) + install.
	self, err := os.Executable()
	if err != nil {
		return err
	}
	const runs = 30
	var comp, inst []time.Duration
	progLen := ""
	for i := 0; i < runs; i++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		cmd := exec.CommandContext(ctx, self)
		cmd.Env = append(os.Environ(), seccompChildEnv+"=1")
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("seccomp child: %w", err)
		}
		f := strings.Fields(string(out))
		if len(f) != 3 {
			return fmt.Errorf("seccomp child: bad output %q", out)
		}
		c, _ := strconv.ParseInt(f[0], 10, 64)
		s, _ := strconv.ParseInt(f[1], 10, 64)
		comp = append(comp, time.Duration(c))
		inst = append(inst, time.Duration(s))
		progLen = f[2]
	}
	ours := median(comp) + median(inst)

	// systemd-nspawn with and without its filter, alternating.
	nspawn, err := exec.LookPath("systemd-nspawn")
	if err != nil {
		return fmt.Errorf("systemd-nspawn not installed (Debian package systemd-container): %w", err)
	}
	tree, err := harness.CachedBusyboxTree(harness.CacheDir())
	if err != nil {
		return err
	}
	ns, err := harness.OpenNetNS()
	if err != nil {
		return err
	}
	defer ns.Close()
	// Wall time, and CPU time (user+system of nspawn and the processes it
	// waited for), which other load on the machine disturbs less.
	times := map[bool][]time.Duration{}
	cpu := map[bool][]time.Duration{}
	for i := 0; i < runs+3; i++ {
		for _, filtered := range []bool{true, false} {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			cmd := ns.CommandContext(ctx, nspawn, "--register=no", "--keep-unit", "-q", "-D", tree, "/bin/true")
			cmd.Env = os.Environ()
			if !filtered {
				cmd.Env = append(cmd.Env, "SYSTEMD_SECCOMP=0")
			}
			start := time.Now()
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("systemd-nspawn: %v: %s", err, out)
			}
			if i >= 3 {
				times[filtered] = append(times[filtered], time.Since(start))
				ps := cmd.ProcessState
				cpu[filtered] = append(cpu[filtered], ps.UserTime()+ps.SystemTime())
			}
		}
	}
	with, without := median(times[true]), median(times[false])
	theirs := with - without
	cpuWith, cpuWithout := median(cpu[true]), median(cpu[false])

	b.Logf("default filter for nspawn's default capabilities, %s, %s instructions", runtime.GOARCH, progLen)
	b.Result("netspawn compile, in process, uncached (median)", us(median(cold)), "us")
	b.Result("netspawn compile, in process, cached (median)", us(median(warm)), "us")
	b.Result(fmt.Sprintf("netspawn fresh process: first compile (median of %d)", runs), us(median(comp)), "us")
	b.Result(fmt.Sprintf("netspawn fresh process: seccomp(2) install (median of %d)", runs), us(median(inst)), "us")
	b.Result("systemd-nspawn -D TREE /bin/true, filter on", ms(with), "ms")
	b.Result("systemd-nspawn -D TREE /bin/true, SYSTEMD_SECCOMP=0", ms(without), "ms")
	b.Result("systemd-nspawn: cost of its filter (difference)", ms(theirs), "ms")
	b.Result("systemd-nspawn: CPU time, filter on", ms(cpuWith), "ms")
	b.Result("systemd-nspawn: CPU time, SYSTEMD_SECCOMP=0", ms(cpuWithout), "ms")
	b.Result("systemd-nspawn: CPU cost of its filter (difference)", ms(cpuWith-cpuWithout), "ms")
	b.Result("netspawn filter cost (first compile + install)", ms(ours), "ms")
	b.Result("ratio netspawn/systemd-nspawn filter cost (wall)", float64(ours)/float64(theirs), "")
	return nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
