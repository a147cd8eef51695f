package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/netspawn/netspawn/test/harness"
)

func init() {
	register("cni", benchCNI)
	registerChild("cni-loop", cniLoop)
}

// cniJob is what the benchmark asks of its child in the host namespace.
type cniJob struct {
	Plugin string   `json:"plugin"` // path of the plugin binary
	Path   string   `json:"path"`   // CNI_PATH
	Conf   string   `json:"conf"`   // network configuration
	NetNS  []string `json:"netns"`  // namespace files, used in turn
	Prefix string   `json:"prefix"` // container IDs: Prefix + index
	Count  int      `json:"count"`
	Mode   string   `json:"mode"` // "pairs" (ADD then DEL), "add" or "del"
}

type cniTimes struct {
	Add []time.Duration `json:"add,omitempty"`
	Del []time.Duration `json:"del,omitempty"`
}

// cniLoop runs in the host namespace (so no nsenter per call) and execs
// the plugin for each ADD and DEL, as a runtime does.
func cniLoop() error {
	var job cniJob
	if err := json.Unmarshal([]byte(os.Getenv("NETSPAWN_BENCH_CNI")), &job); err != nil {
		return err
	}
	call := func(cmd string, i int) (time.Duration, error) {
		c := exec.Command(job.Plugin)
		c.Env = append(os.Environ(), "CNI_COMMAND="+cmd, fmt.Sprintf("CNI_CONTAINERID=%s%d", job.Prefix, i),
			"CNI_NETNS="+job.NetNS[i%len(job.NetNS)], "CNI_IFNAME=eth0", "CNI_PATH="+job.Path)
		c.Stdin = strings.NewReader(job.Conf)
		var out bytes.Buffer
		c.Stdout, c.Stderr = &out, &out
		start := time.Now()
		err := c.Run()
		d := time.Since(start)
		if err != nil {
			return 0, fmt.Errorf("%s %s %s%d: %v: %s", filepath.Base(job.Plugin), cmd, job.Prefix, i, err, out.String())
		}
		return d, nil
	}
	var t cniTimes
	for i := range job.Count {
		if job.Mode == "pairs" || job.Mode == "add" {
			d, err := call("ADD", i)
			if err != nil {
				return err
			}
			t.Add = append(t.Add, d)
		}
		if job.Mode == "pairs" || job.Mode == "del" {
			d, err := call("DEL", i)
			if err != nil {
				return err
			}
			t.Del = append(t.Del, d)
		}
	}
	return json.NewEncoder(os.Stdout).Encode(t)
}

// benchCNI measures ADD+DEL pairs per second of netspawn's CNI plugin
// against the reference bridge + host-local plugins (Debian's
// containernetworking-plugins), each a fresh process per call as a runtime
// runs them, in one host namespace; and netspawn's ADD with 1 and with 500
// live attachments, with IPv6 (the default) and with a netspawnd started
// with --no-ipv6.
func benchCNI(ctx context.Context, b *B) error {
	const (
		live   = 500
		rounds = 4
		per    = 25
	)
	bin, err := daemonBinary()
	if err != nil {
		return err
	}
	plugin, err := filepath.Abs("bin/netspawn-cni")
	if err != nil {
		return err
	}
	for _, p := range []string{plugin, "/usr/lib/cni/bridge", "/usr/lib/cni/host-local"} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s: %w (make build; Debian's containernetworking-plugins)", p, err)
		}
	}
	bound, pool, liveNS, err := newBoundNS("netspawn-bench-cni-", per, live)
	if err != nil {
		return err
	}
	defer bound.close()
	tmp := bound.dir
	host, err := startCNIHost(ctx, bin, filepath.Join(tmp, "v6"))
	if err != nil {
		return err
	}
	defer host.close()
	ours := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "bench", "type": "netspawn", "runtimeDir": %q, "autoStart": false}`, host.rt)
	ref := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "ref", "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true,
		"ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/16"}]], "dataDir": %q}}`, filepath.Join(tmp, "host-local"))
	ourJob := func(conf, mode, prefix string, netns []string, n int) cniJob {
		return cniJob{Plugin: plugin, Path: filepath.Dir(plugin), Conf: conf, NetNS: netns, Prefix: prefix, Count: n, Mode: mode}
	}
	refJob := func(mode, prefix string, netns []string, n int) cniJob {
		return cniJob{Plugin: "/usr/lib/cni/bridge", Path: "/usr/lib/cni", Conf: ref, NetNS: netns, Prefix: prefix, Count: n, Mode: mode}
	}
	sum := func(d []time.Duration) (s time.Duration) {
		for _, x := range d {
			s += x
		}
		return s
	}
	b.Logf("ADD+DEL pairs, each call a fresh plugin process from the host namespace; %d alternating rounds of %d pairs", rounds, per)
	// Warm-up: page cache, the bridge and its first port.
	if _, err := host.run(ctx, ourJob(ours, "pairs", "w", pool, 5)); err != nil {
		return err
	}
	if _, err := host.run(ctx, refJob("pairs", "w", pool, 5)); err != nil {
		return err
	}
	var ourAdd1, ourAll, refAll []time.Duration
	var ratios []float64
	// netspawnd's CPU (user and system, its kernel work included) over
	// netspawn's rounds: less shaken by other load than wall time.
	var cpu1 time.Duration
	for r := range rounds {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c0 := host.cpu()
		o, err := host.run(ctx, ourJob(ours, "pairs", fmt.Sprintf("o%d-", r), pool, per))
		if err != nil {
			return err
		}
		cpu1 += host.cpu() - c0
		f, err := host.run(ctx, refJob("pairs", fmt.Sprintf("r%d-", r), pool, per))
		if err != nil {
			return err
		}
		ourAdd1 = append(ourAdd1, o.Add...)
		ot, ft := sum(o.Add)+sum(o.Del), sum(f.Add)+sum(f.Del)
		ourAll, refAll = append(ourAll, ot), append(refAll, ft)
		ratios = append(ratios, float64(ft)/float64(ot))
		b.Logf("round %d: netspawn %.1f pairs/s, bridge+host-local %.1f pairs/s (ADD median %.1f / %.1f ms, DEL %.1f / %.1f ms)", r+1,
			float64(per)/ot.Seconds(), float64(per)/ft.Seconds(), ms(median(o.Add)), ms(median(f.Add)), ms(median(o.Del)), ms(median(f.Del)))
	}
	ourRate := float64(rounds*per) / sum(ourAll).Seconds()
	refRate := float64(rounds*per) / sum(refAll).Seconds()
	b.Result("netspawn ADD+DEL pairs", ourRate, "pairs/s")
	b.Result("bridge+host-local ADD+DEL pairs", refRate, "pairs/s")
	b.Result("ratio netspawn/reference, all pairs (goal >= 3)", ourRate/refRate, "x")
	b.Result("ratio, median of per-round ratios", medianFloat(ratios), "x")

	// ourRounds runs rounds of netspawn's pairs on h: their ADD times and
	// netspawnd's CPU over them.
	ourRounds := func(h *cniHost, conf, prefix string) (add []time.Duration, cpu time.Duration, err error) {
		for r := range rounds {
			c0 := h.cpu()
			o, err := h.run(ctx, ourJob(conf, "pairs", fmt.Sprintf("%s%d-", prefix, r), pool, per))
			if err != nil {
				return nil, 0, err
			}
			cpu += h.cpu() - c0
			add = append(add, o.Add...)
		}
		return add, cpu, nil
	}
	// Flatness: netspawn's ADD with 500 live attachments.
	flat := func(h *cniHost, conf, label string, add1 []time.Duration, cpu1 time.Duration) error {
		b.Logf("%sadding %d live attachments", label, live)
		if _, err := h.run(ctx, ourJob(conf, "add", "live", liveNS, live)); err != nil {
			return err
		}
		add500, cpu500, err := ourRounds(h, conf, "m")
		if err != nil {
			return err
		}
		a1, a500 := median(add1), median(add500)
		b.Result(label+"netspawn ADD, 1 attachment live (median)", ms(a1), "ms")
		b.Result(fmt.Sprintf("%snetspawn ADD, %d attachments live (median)", label, live), ms(a500), "ms")
		b.Result(fmt.Sprintf("%sratio ADD at %d / at 1 (goal <= 1.2)", label, live), float64(a500)/float64(a1), "x")
		b.Result(label+"netspawnd CPU per ADD+DEL pair, 1 live", ms(cpu1/(rounds*per)), "ms")
		b.Result(fmt.Sprintf("%snetspawnd CPU per ADD+DEL pair, %d live", label, live), ms(cpu500/(rounds*per)), "ms")
		if benchLogLevel == "debug" {
			log, _ := os.ReadFile(h.logf.Name())
			for _, line := range strings.Split(string(log), "\n") {
				for _, m := range []string{"machine=o3-3 ", "machine=o3-4 ", "machine=m3-3 ", "machine=m3-4 "} {
					if strings.Contains(line, "register phases") && strings.Contains(line, m) {
						b.Logf("%s", line)
					}
				}
			}
		}
		_, err = h.run(ctx, ourJob(conf, "del", "live", liveNS, live))
		return err
	}
	if err := flat(host, ours, "", ourAdd1, cpu1); err != nil {
		return err
	}
	b.Logf("netspawnd used %.2f s of CPU in all", host.cpu().Seconds())
	host.close()

	// The same with IPv6 off (netspawnd --no-ipv6), in a host namespace of
	// its own: what the kernel's IPv6 routes per host link cost (see the
	// cni-kernel benchmark).
	host4, err := startCNIHost(ctx, bin, filepath.Join(tmp, "v4"), "--no-ipv6")
	if err != nil {
		return err
	}
	defer host4.close()
	ours4 := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "bench", "type": "netspawn", "runtimeDir": %q, "autoStart": false}`, host4.rt)
	if _, err := host4.run(ctx, ourJob(ours4, "pairs", "w", pool, 5)); err != nil {
		return err
	}
	add1v4, cpu1v4, err := ourRounds(host4, ours4, "o")
	if err != nil {
		return err
	}
	return flat(host4, ours4, "IPv6 off: ", add1v4, cpu1v4)
}

// cniHost is a namespace playing the host with a netspawnd of its own, its
// runtime directory on a tmpfs as /run is on hosts.
type cniHost struct {
	ns      *harness.NetNS
	daemon  *exec.Cmd
	rt      string
	logf    *os.File
	mounted string
	closed  bool
}

func startCNIHost(ctx context.Context, bin, dir string, args ...string) (*cniHost, error) {
	h := &cniHost{}
	var err error
	if h.ns, err = harness.OpenNetNS(); err != nil {
		return nil, err
	}
	rt := filepath.Join(dir, "run")
	if err := os.MkdirAll(rt, 0o755); err != nil {
		h.close()
		return nil, err
	}
	if err := syscall.Mount("tmpfs", rt, "tmpfs", 0, "mode=0755,size=64m"); err != nil {
		h.close()
		return nil, fmt.Errorf("tmpfs on %s: %w", rt, err)
	}
	h.mounted = rt
	if h.daemon, h.rt, h.logf, err = startBenchDaemon(h.ns, bin, dir, args...); err != nil {
		h.close()
		return nil, err
	}
	cl, err := connectBenchDaemon(ctx, h.rt)
	if err != nil {
		h.close()
		return nil, err
	}
	cl.Close()
	return h, nil
}

// run execs the plugin for job from a child in the host namespace.
func (h *cniHost) run(ctx context.Context, job cniJob) (cniTimes, error) {
	j, _ := json.Marshal(job)
	cmd := h.ns.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), "NETSPAWN_BENCH_CHILD=cni-loop", "NETSPAWN_BENCH_CNI="+string(j))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return cniTimes{}, fmt.Errorf("%v: %s", err, stderr.String())
	}
	var t cniTimes
	err = json.Unmarshal(out, &t)
	return t, err
}

// cpu is netspawnd's CPU time so far.
func (h *cniHost) cpu() time.Duration { return procCPU(h.daemon.Process.Pid) }

// close stops netspawnd and removes what the host namespace holds.
func (h *cniHost) close() {
	if h.closed {
		return
	}
	h.closed = true
	if h.daemon != nil {
		_ = h.daemon.Process.Signal(syscall.SIGKILL)
		_ = h.daemon.Wait()
	}
	if h.logf != nil {
		h.logf.Close()
	}
	if h.mounted != "" {
		_ = syscall.Unmount(h.mounted, syscall.MNT_DETACH)
	}
	if h.ns != nil {
		h.ns.Close()
	}
}

// boundNS binds network namespaces on files under a temporary directory,
// as runtimes keep them (/run/netns); close unbinds them all and removes
// the directory.
type boundNS struct {
	dir   string
	paths []string
}

// newBoundNS makes the directory (named with prefix) and binds a pool of
// per namespaces (p0...) and live more (l0...) in it.
func newBoundNS(prefix string, per, live int) (b *boundNS, pool, liveNS []string, err error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, nil, nil, err
	}
	b = &boundNS{dir: dir}
	if pool, err = b.make(per, "p"); err == nil {
		liveNS, err = b.make(live, "l")
	}
	if err != nil {
		b.close()
		return nil, nil, nil, err
	}
	return b, pool, liveNS, nil
}

// make binds n namespaces, on dir/prefix0 to dir/prefix(n-1).
func (b *boundNS) make(n int, prefix string) ([]string, error) {
	var out []string
	for i := range n {
		p := filepath.Join(b.dir, fmt.Sprintf("%s%d", prefix, i))
		if err := harness.BindNetNS(p); err != nil {
			return nil, err
		}
		b.paths = append(b.paths, p)
		out = append(out, p)
	}
	return out, nil
}

// close kills what runs in the namespaces, unbinds them and removes the
// directory (with what else the benchmark put there).
func (b *boundNS) close() {
	for _, p := range b.paths {
		harness.UnbindNetNS(p)
	}
	b.paths = nil
	os.RemoveAll(b.dir)
}
