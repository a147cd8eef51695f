package main

// DHCP benchmark: perfdhcp (Kea's load generator) with 60,000 distinct
// clients against netspawn's DHCP server (the dhcp package, run as
// dhcptestd), dnsmasq (--no-ping) and kea-dhcp4 (memfile) on the same kind of
// link: a veth pair between a server namespace and a client namespace, a /16
// subnet and pool. For each it finds the highest rate of new leases of which
// at least 99% are acknowledged, with ours also holding 50,000 and 200,000
// leases already in the table; first with a core for each server, then with
// the same quarter of a core for each (a cgroup CPU quota), which the load
// generator can saturate, and prints what the full table costs against the
// empty one, in rate and in heap per lease. It also logs each server's CPU
// time per lease, and times one udhcpc DISCOVER->ACK against ours and
// against dnsmasq's default (which pings an address before offering it).
//
// perfdhcp runs with an 8 MiB socket receive buffer (testdata/rcvbuf.c,
// preloaded), as the servers have: a server under a CPU quota answers in
// bursts, and with the default buffer perfdhcp's socket dropped replies the
// server had sent. After the ladders, ours with each table size is offered
// the same rate above its limit (saturated): the exchanges each server
// answers per second there are its capacity, apart from the ladder's steps.
//
// Near a server's limit single tries scatter by 10-15% on a shared machine
// (perfdhcp's socket dropping replies it did not read in time), so every
// rate step is run as interleaved tries: one try for each server in turn,
// then a second and a third for those that missed 99%; a server passes a
// step if one of its tries does, and leaves the ladder after two failed
// steps in a row. Every try's log line says where its losses were (the
// server's socket, the server itself, perfdhcp's socket) and carries the
// server's own counters.
//
// Knobs for experiments: DHCPBENCH_WORKERS (reader goroutines per link of
// ours), DHCPBENCH_PROF (CPU profiles of ours, one file per run),
// DHCPBENCH_OURS=1 (only ours, only the quarter-core ladder: for iterating;
// recorded figures come from a full run), DHCPBENCH_MINRATE (skip the
// ladders' lower steps), DHCPBENCH_SATRATE (the saturated round's rate),
// DHCPBENCH_SHIM=0 (perfdhcp without testdata/rcvbuf.c's
// receive buffer).

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

func init() { register("dhcp", benchDHCP) }

const (
	dhcpBenchLink   = "ve-bench"
	dhcpBenchServer = "10.64.0.1"
	dhcpBenchClient = "10.64.0.2"
	// perfdhcp processes: 1 is `-l host0 -R 60000`; 2 splits the rate and
	// the clients between relay addresses .2 and .3. On this 2-core machine
	// a second generator costs the server more CPU than it adds reading
	// capacity (measured: 6,000 vs 8,000/s for ours), so one it is.
	perfGenerators = 1
	// dhcpBudgetPercent is the share of one core each server gets in the
	// equal-budget ladder.
	dhcpBudgetPercent = 25
)

// dhcpTopo: a server and a client namespace (each held by a sleeping
// process) and a veth pair ve-bench <-> host0. The client side has an
// address: perfdhcp acts as a relay agent on it.
type dhcpTopo struct {
	dir      string
	srv, cli *exec.Cmd
}

func holdNS(ctx context.Context) (*exec.Cmd, error) {
	cmd := exec.CommandContext(ctx, "unshare", "--net", "sleep", "infinity")
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("unshare: %w", err)
	}
	self, _ := os.Readlink("/proc/self/ns/net")
	for i := 0; i < 500; i++ {
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid))
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid))
		if err == nil && ns != self && strings.HasSuffix(exe, "sleep") {
			return cmd, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	return nil, errors.New("namespace holder did not start")
}

func newDHCPTopo(ctx context.Context, dir string, prefix int) (*dhcpTopo, error) {
	tp := &dhcpTopo{dir: dir}
	var err error
	if tp.srv, err = holdNS(ctx); err != nil {
		return nil, err
	}
	if tp.cli, err = holdNS(ctx); err != nil {
		tp.close()
		return nil, err
	}
	if err := tp.sh(tp.srv, fmt.Sprintf("ip link set lo up && ip link add %s type veth peer name host0 netns %d && ip addr add %s/%d dev %s && ip link set %s up",
		dhcpBenchLink, tp.cli.Process.Pid, dhcpBenchServer, prefix, dhcpBenchLink, dhcpBenchLink)); err != nil {
		tp.close()
		return nil, err
	}
	if err := tp.sh(tp.cli, fmt.Sprintf("ip link set lo up && ip addr add %s/%d dev host0 && ip addr add 10.64.0.3/%d dev host0 && ip link set host0 up",
		dhcpBenchClient, prefix, prefix)); err != nil {
		tp.close()
		return nil, err
	}
	return tp, nil
}

func (tp *dhcpTopo) close() {
	for _, c := range []*exec.Cmd{tp.srv, tp.cli} {
		if c != nil && c.Process != nil {
			c.Process.Kill()
			c.Wait()
		}
	}
}

// in runs a command in a namespace. Servers and perfdhcp all run at nice
// -10 (each side alike) so that other load on the machine disturbs the
// comparison less; nsenter and nice exec, so the PID is the command's.
func (tp *dhcpTopo) in(ns *exec.Cmd, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{fmt.Sprintf("--net=/proc/%d/ns/net", ns.Process.Pid), "nice", "-n", "-10"}, args...)...)
}

// The servers and perfdhcp run on CPUs of their own (when the machine has
// two or more): sharing one, the load generator could not read the replies
// fast enough and set the ceiling for every server alike.
const serverCPU, clientCPU = 1, 0

func pinned(cpu int, args []string) []string {
	if runtime.NumCPU() < 2 {
		return args
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		return args
	}
	return append([]string{"taskset", "-c", strconv.Itoa(cpu)}, args...)
}

// loadavg1 is the machine's one-minute load average.
func loadavg1() string {
	f := strings.Fields(loadavg())
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

// schedstat sums field i of /proc/PID/task/*/schedstat over a process's
// threads (0: time on a CPU, 1: time ready to run but waiting for one), in
// nanoseconds; ok is false when the process is gone.
func schedstat(pid, i int) (sum time.Duration, ok bool) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, false
	}
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) > i {
			ns, _ := strconv.ParseInt(f[i], 10, 64)
			sum += time.Duration(ns)
		}
	}
	return sum, true
}

// runDelay is the time the threads of a process have spent ready to run
// but waiting for a CPU.
func runDelay(pid int) (time.Duration, bool) { return schedstat(pid, 1) }

// runTime is the CPU time of a process's threads to the nanosecond;
// /proc/PID/stat counts in ticks of 10 ms, too coarse for a few hundred ms.
func runTime(pid int) time.Duration {
	if d, ok := schedstat(pid, 0); ok {
		return d
	}
	return procCPU(pid)
}

// stealTimes are the CPU time the hypervisor gave to others while each of
// the guest's CPUs wanted to run (/proc/stat's steal), by CPU.
type stealTimes []time.Duration

func cpuSteal() stealTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil
	}
	var st stealTimes
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 9 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		ticks, _ := strconv.ParseInt(f[8], 10, 64)
		st = append(st, time.Duration(ticks)*10*time.Millisecond) // USER_HZ is 100
	}
	return st
}

func (s stealTimes) sub(s0 stealTimes) stealTimes {
	d := make(stealTimes, len(s))
	for i := range s {
		if i < len(s0) {
			d[i] = s[i] - s0[i]
		}
	}
	return d
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(b))
}

func (tp *dhcpTopo) sh(ns *exec.Cmd, script string) error {
	out, err := tp.in(ns, "sh", "-c", script).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", script, err, out)
	}
	return nil
}

// daemon is a server process started in the server namespace.
type daemon struct {
	cmd *exec.Cmd
	log string
}

func (d *daemon) stop() {
	if d == nil || d.cmd.Process == nil {
		return
	}
	d.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		d.cmd.Process.Kill()
		<-done
	}
}

// startDaemon runs args in the server namespace and waits until ready()
// says it serves (or the process dies).
func (tp *dhcpTopo) startDaemon(name string, ready func(logText string) bool, env []string, args ...string) (*daemon, error) {
	logPath := filepath.Join(tp.dir, fmt.Sprintf("%s-%d.log", name, time.Now().UnixNano()))
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := tp.in(tp.srv, pinned(serverCPU, args)...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	lf.Close()
	d := &daemon{cmd: cmd, log: logPath}
	exited := make(chan struct{})
	go func() { cmd.Process.Wait(); close(exited) }()
	// A server started with 200,000 leases writes and replays its log
	// first: on a busy machine that has taken over 5 s.
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		b, _ := os.ReadFile(logPath)
		if ready(string(b)) {
			return d, nil
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("%s exited: %s", name, b)
		case <-time.After(25 * time.Millisecond):
		}
	}
	d.stop()
	b, _ := os.ReadFile(logPath)
	return nil, fmt.Errorf("%s did not become ready: %s", name, b)
}

func buildDHCPTestd(dir string) (string, error) {
	bin := filepath.Join(dir, "dhcptestd")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/netspawn/netspawn/dhcp/internal/dhcptestd").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building dhcptestd: %v: %s", err, out)
	}
	return bin, nil
}

// leaseCost matches dhcptestd's line on what the prefilled leases cost in
// memory.
var leaseCost = regexp.MustCompile(`leases (\d+) heap (-?\d+) bytes (-?[\d.]+) bytes/lease`)

func (tp *dhcpTopo) startOurs(bin string, prefix int, poolEnd string, prefill int) (*daemon, error) {
	state := filepath.Join(tp.dir, fmt.Sprintf("ours-state-%d", time.Now().UnixNano()))
	d, err := tp.startDaemon("netspawn", func(s string) bool { return strings.Contains(s, "ready") }, nil,
		bin, "-state", state, "-link", dhcpBenchLink, "-subnet", fmt.Sprintf("10.64.0.0/%d", prefix), "-server", dhcpBenchServer,
		"-pool", "10.64.0.10-"+poolEnd, "-router", dhcpBenchServer, "-dns", dhcpBenchServer,
		"-lease-time", "1h", "-prefill", strconv.Itoa(prefill), "-workers", strconv.Itoa(envInt("DHCPBENCH_WORKERS")), "-cpuprofile", profPath())
	if err == nil && prefill > 0 {
		b, _ := os.ReadFile(d.log)
		if m := leaseCost.FindStringSubmatch(string(b)); m != nil {
			v, _ := strconv.ParseFloat(m[3], 64)
			bytesPerLease[prefill] = v
		}
	}
	return d, err
}

// statsLine matches dhcptestd's line of counters at exit.
var statsLine = regexp.MustCompile(`(?m)^stats (.*)$`)

// stats is the server's own counters at its exit (dhcptestd's stats line),
// for the log; empty for the peers.
func (d *daemon) stats() string {
	b, _ := os.ReadFile(d.log)
	if m := statsLine.FindSubmatch(b); m != nil {
		return " | " + string(m[1])
	}
	return ""
}

// bytesPerLease is the heap the last server started with n prefilled leases
// held per lease (table and store together), by n.
var bytesPerLease = map[int]float64{}

func (tp *dhcpTopo) startDnsmasq(ping bool) (*daemon, error) {
	dir, err := os.MkdirTemp(tp.dir, "dnsmasq-")
	if err != nil {
		return nil, err
	}
	args := []string{"dnsmasq", "--keep-in-foreground", "--log-facility=-", "--conf-file=/dev/null", "--port=0",
		"--bind-interfaces", "--interface=" + dhcpBenchLink, "--except-interface=lo",
		"--dhcp-range=10.64.0.10,10.64.255.250,255.255.0.0,1h", "--dhcp-lease-max=200000", "--dhcp-authoritative",
		"--dhcp-leasefile=" + filepath.Join(dir, "leases"), "--pid-file=" + filepath.Join(dir, "pid"),
		"--no-resolv", "--no-hosts", "--user=root", "--group=root"}
	if !ping {
		args = append(args, "--no-ping")
	}
	return tp.startDaemon("dnsmasq", func(s string) bool { return strings.Contains(s, "DHCP, IP range") }, nil, args...)
}

func (tp *dhcpTopo) startKea() (*daemon, error) {
	dir, err := os.MkdirTemp(tp.dir, "kea-")
	if err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`{"Dhcp4": {
  "interfaces-config": {"interfaces": ["%s"]},
  "lease-database": {"type": "memfile", "persist": true, "name": "%s", "lfc-interval": 0},
  "control-socket": {"socket-type": "unix", "socket-name": "%s"},
  "valid-lifetime": 3600,
  "subnet4": [{"id": 1, "subnet": "10.64.0.0/16", "pools": [{"pool": "10.64.0.10 - 10.64.255.250"}],
               "option-data": [{"name": "routers", "data": "%s"}, {"name": "domain-name-servers", "data": "%s"}]}],
  "loggers": [{"name": "kea-dhcp4", "output_options": [{"output": "stdout"}], "severity": "INFO"}]
}}`, dhcpBenchLink, filepath.Join(dir, "leases.csv"), filepath.Join(dir, "kea.sock"), dhcpBenchServer, dhcpBenchServer)
	cf := filepath.Join(dir, "kea.json")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	env := []string{"KEA_PIDFILE_DIR=" + dir, "KEA_LOCKFILE_DIR=" + dir}
	return tp.startDaemon("kea", func(s string) bool { return strings.Contains(s, "DHCP4_STARTED") }, env, "kea-dhcp4", "-c", cf)
}

// perfResult is what perfdhcp reports for one run, and the CPU time it used.
type perfResult struct {
	discSent, offers, reqSent, acks int
	// cpu is perfdhcp's CPU time, waited the time it was ready to run but
	// waited for a CPU (the scheduler's run delay).
	cpu, waited time.Duration
}

var perfStat = regexp.MustCompile(`(?s)Statistics for: (DISCOVER-OFFER|REQUEST-ACK)\*+\s*sent packets: (\d+)\s*received packets: (\d+)`)

//go:embed testdata/rcvbuf.c
var rcvbufShim []byte

// perfPreload is the LD_PRELOAD of perfdhcp: the shim of testdata/rcvbuf.c, built
// by buildRcvbufShim (see there why).
var perfPreload string

// buildRcvbufShim compiles rcvbuf.c into dir.
func buildRcvbufShim(dir string) (string, error) {
	src, so := filepath.Join(dir, "rcvbuf.c"), filepath.Join(dir, "rcvbuf.so")
	if err := os.WriteFile(src, rcvbufShim, 0o644); err != nil {
		return "", err
	}
	if out, err := exec.Command("gcc", "-shared", "-fPIC", "-O2", "-o", so, src, "-ldl").CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the receive-buffer shim for perfdhcp (gcc): %v: %s", err, out)
	}
	return so, nil
}

func (tp *dhcpTopo) perfdhcp(ctx context.Context, rate, secs int) (perfResult, error) {
	type one struct {
		out         []byte
		err         error
		cpu, waited time.Duration
	}
	res := make(chan one, perfGenerators)
	for g := 0; g < perfGenerators; g++ {
		args := []string{"perfdhcp", "-4", "-l", "host0", "-r", strconv.Itoa(rate), "-R", "60000", "-p", strconv.Itoa(secs)}
		if perfGenerators > 1 {
			args = []string{"perfdhcp", "-4", "-l", fmt.Sprintf("10.64.0.%d", 2+g), "-b", fmt.Sprintf("mac=00:0%x:00:00:00:00", 0xc+g),
				"-r", strconv.Itoa(rate / perfGenerators), "-R", strconv.Itoa(60000 / perfGenerators), "-p", strconv.Itoa(secs), dhcpBenchServer}
		}
		cmd := tp.in(tp.cli, pinned(clientCPU, args)...)
		if perfPreload != "" {
			cmd.Env = append(os.Environ(), "LD_PRELOAD="+perfPreload)
		}
		go func() {
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				res <- one{err: err}
				return
			}
			// The run delay is read while the process lives: poll it.
			done := make(chan struct{})
			waited := make(chan time.Duration, 1)
			go func() {
				var last time.Duration
				t := time.NewTicker(20 * time.Millisecond)
				defer t.Stop()
				for {
					if d, ok := runDelay(cmd.Process.Pid); ok {
						last = d
					}
					select {
					case <-done:
						waited <- last
						return
					case <-t.C:
					}
				}
			}()
			err := cmd.Wait()
			close(done)
			o := one{out: []byte(out.String()), err: err, waited: <-waited}
			if ps := cmd.ProcessState; ps != nil {
				o.cpu = ps.UserTime() + ps.SystemTime()
			}
			res <- o
		}()
	}
	var r perfResult
	for g := 0; g < perfGenerators; g++ {
		o := <-res
		r.cpu += o.cpu
		r.waited += o.waited
		ms := perfStat.FindAllStringSubmatch(string(o.out), -1)
		if len(ms) < 2 {
			return r, fmt.Errorf("perfdhcp: %v: %s", o.err, o.out)
		}
		for _, m := range ms {
			s, _ := strconv.Atoi(m[2])
			g, _ := strconv.Atoi(m[3])
			if m[1] == "DISCOVER-OFFER" {
				r.discSent += s
				r.offers += g
			} else {
				r.reqSent += s
				r.acks += g
			}
		}
	}
	return r, nil
}

// udpCounters reads a namespace's UDP counters: datagrams received, sent,
// and dropped because a socket's receive queue was full.
func (tp *dhcpTopo) udpCounters(ns *exec.Cmd) (in, out, rcvbuf int) {
	b, err := tp.in(ns, "cat", "/proc/net/snmp").Output()
	if err != nil {
		return
	}
	var names, vals []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "Udp: ") {
			if names == nil {
				names = strings.Fields(l)
			} else {
				vals = strings.Fields(l)
			}
		}
	}
	for i := range names {
		if i >= len(vals) {
			break
		}
		v, _ := strconv.Atoi(vals[i])
		switch names[i] {
		case "InDatagrams":
			in = v
		case "OutDatagrams":
			out = v
		case "RcvbufErrors":
			rcvbuf = v
		}
	}
	return
}

// answered is the share of started exchanges that ended with an ACK.
func (r perfResult) answered() float64 {
	if r.discSent == 0 {
		return 0
	}
	return float64(r.acks) / float64(r.discSent)
}

// contender is one server under the rate ladder.
type contender struct {
	name  string
	tp    *dhcpTopo
	start func() (*daemon, error)
	// budget, when set, caps the server's CPU (see cpuBudget).
	budget *cpuBudget
	best   float64
	done   bool
	// passed is the ladder's highest step with >= 99% answered, failed the
	// first step above it without (failedTries: how its tries went).
	passed, failed int
	failedTries    []tryNote
	misses         int // failed steps in a row
	// The step being run (see step).
	stepOK    bool
	stepRate  float64
	stepTries []tryNote
}

func (c *contender) budgetTag() string {
	if c.budget == nil {
		return ""
	}
	return fmt.Sprintf(" @%d%%", c.budget.percent)
}

// dhcpTries is how many tries a contender gets at a rate step before it
// counts as failed: near its limit a server's single tries scatter by
// 10-15% on a shared machine (perfdhcp's socket dropping replies while the
// server's CPU stays under its budget), so one try decides nothing.
const dhcpTries = 3

// tryOnce runs perfdhcp at rate against a freshly started server and logs
// where the exchanges went: the server namespace's UDP counters, perfdhcp's
// socket drops and CPU time, the CPU budget's throttling, the machine's
// steal time, and the server's own counters (dhcptestd's stats line: its
// longest batch, log write and fsync, garbage-collector cycles and pauses).
func tryOnce(ctx context.Context, b *B, c *contender, rate, secs, try int) (tryNote, error) {
	d, err := c.start()
	if err != nil {
		return tryNote{}, err
	}
	tp := c.tp
	sin0, sout0, sdrop0 := tp.udpCounters(tp.srv)
	_, _, cdrop0 := tp.udpCounters(tp.cli)
	if c.budget != nil {
		if err := c.budget.add(d.cmd.Process.Pid); err != nil {
			d.stop()
			return tryNote{}, err
		}
	}
	thr0 := c.budget.throttled()
	steal0 := cpuSteal()
	cpu0 := runTime(d.cmd.Process.Pid)
	wait0, _ := runDelay(d.cmd.Process.Pid)
	r, err := tp.perfdhcp(ctx, rate, secs)
	cpu := runTime(d.cmd.Process.Pid) - cpu0
	wait1, _ := runDelay(d.cmd.Process.Pid)
	steal := cpuSteal().sub(steal0)
	thr := c.budget.throttled().sub(thr0)
	sin1, sout1, sdrop1 := tp.udpCounters(tp.srv)
	_, _, cdrop1 := tp.udpCounters(tp.cli)
	d.stop()
	if err != nil {
		return tryNote{}, err
	}
	// Kea reads a raw socket: its namespace's UDP counters stay at zero.
	b.Logf("%-13s%s -r %5d try %d: %6d DISCOVER %6d OFFER %6d ACK (%6.2f%%, %5.0f/s) | server ns UDP in %d out %d drops %d | perfdhcp drops %d CPU %v waited %v | server CPU %v (%.1f µs/lease) waited %v%s | steal %v | load %s%s",
		c.name, c.budgetTag(), rate, try+1, r.discSent, r.offers, r.acks, 100*r.answered(), float64(r.acks)/float64(secs),
		sin1-sin0, sout1-sout0, sdrop1-sdrop0, cdrop1-cdrop0, r.cpu.Round(time.Millisecond), r.waited.Round(time.Millisecond),
		cpu.Round(time.Millisecond), float64(cpu.Microseconds())/float64(max(r.acks, 1)), (wait1 - wait0).Round(time.Millisecond), thr, steal, loadavg1(), d.stats())
	return tryNote{r: r, perfDrops: cdrop1 - cdrop0, serverDrops: sdrop1 - sdrop0, unanswered: (sin1 - sin0) - (sout1 - sout0),
		short: float64(r.discSent) < 0.97*float64(rate*secs), replies: sout1 - sout0}, nil
}

// tryNote is one try's outcome and where its lost exchanges went.
type tryNote struct {
	r perfResult
	// perfDrops: replies dropped at perfdhcp's socket (it did not read
	// them in time); serverDrops: requests dropped at the server's socket;
	// unanswered: requests the server received and did not answer (the
	// last two are zero for Kea, which reads a raw socket).
	perfDrops, serverDrops, unanswered int
	// short: perfdhcp started fewer than 97% of the exchanges the rate
	// asks for (it did not get the CPU to send them).
	short bool
	// replies: the datagrams the server's namespace sent (OFFERs and
	// ACKs; zero for Kea, which sends on a raw socket).
	replies int
}

func (t tryNote) String() string {
	short := ""
	if t.short {
		short = fmt.Sprintf(", perfdhcp short: %d DISCOVER", t.r.discSent)
	}
	return fmt.Sprintf("%.1f%% (perfdhcp drops %d, server drops %d, unanswered %d%s)", 100*t.r.answered(), t.perfDrops, t.serverDrops, t.unanswered, short)
}

// step runs one rate step against every contender in cs (each at
// rateOf(c)), interleaved: a first try for each in turn, then a second for
// those that did not reach 99% answered, then a third; so that a spell of
// load on the machine falls on all of them alike rather than on one
// contender's tries back to back. A contender passes the step if one of
// its tries does (the best of up to dhcpTries); stepOK and stepRate say how
// it went and stepTries lists its tries.
func step(ctx context.Context, b *B, cs []*contender, rateOf func(*contender) int, secs int) error {
	for _, c := range cs {
		c.stepOK, c.stepRate, c.stepTries = false, 0, c.stepTries[:0]
	}
	for try := 0; try < dhcpTries; try++ {
		for _, c := range cs {
			if c.stepOK {
				continue
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			t, err := tryOnce(ctx, b, c, rateOf(c), secs, try)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			c.stepTries = append(c.stepTries, t)
			if t.r.answered() >= 0.99 {
				c.stepOK, c.stepRate = true, float64(t.r.acks)/float64(secs)
			}
		}
	}
	return nil
}

// ladder raises the rate step by step (see step for how a step is run and
// passed) and records each contender's highest rate with at least 99%
// answered; a contender leaves after misses failed steps in a row. failed
// is the first failed step above the highest passed one. One failed step
// (every try of it) can still be a minute of load from elsewhere; a second
// in a row is not, and a contender that passes a step above a failed one
// has shown that it serves that rate.
func ladder(ctx context.Context, b *B, cs []*contender, rates []int, secs, misses int) error {
	for _, c := range cs {
		// Warm up (neighbour entries, page cache), not measured.
		if d, err := c.start(); err == nil {
			c.tp.perfdhcp(ctx, 200, 1)
			d.stop()
		}
	}
	for _, rate := range rates {
		if rate < envInt("DHCPBENCH_MINRATE") {
			continue
		}
		var in []*contender
		for _, c := range cs {
			if !c.done {
				in = append(in, c)
			}
		}
		if len(in) == 0 {
			return nil
		}
		if err := step(ctx, b, in, func(*contender) int { return rate }, secs); err != nil {
			return err
		}
		for _, c := range in {
			if !c.stepOK {
				if c.misses == 0 {
					c.failed = rate
					c.failedTries = append([]tryNote(nil), c.stepTries...)
				}
				c.misses++
				c.done = c.misses >= misses
				continue
			}
			c.passed, c.failed, c.failedTries, c.misses = rate, 0, nil, 0
			c.best = max(c.best, c.stepRate)
		}
	}
	return nil
}

// refine tries, for each contender that failed a step, the rate halfway
// between its last passed step and the failed one (interleaved like the
// ladder's steps), so that the limit is known to half a step.
func refine(ctx context.Context, b *B, cs []*contender, secs int) error {
	mid := func(c *contender) int { return (c.passed + c.failed) / 2 / 10 * 10 }
	var in []*contender
	for _, c := range cs {
		if c.passed > 0 && c.failed > 0 && mid(c) > c.passed {
			in = append(in, c)
		}
	}
	if len(in) == 0 {
		return nil
	}
	if err := step(ctx, b, in, mid, secs); err != nil {
		return err
	}
	for _, c := range in {
		if c.stepOK {
			c.passed = mid(c)
			c.best = max(c.best, c.stepRate)
		}
	}
	return nil
}

// satTries is how many interleaved tries each contender gets in
// saturated.
const satTries = 5

// saturated measures each contender's own capacity: all are offered the
// same rate, above every one's limit, in satTries interleaved rounds, and
// what each served is the exchanges its namespace answered per second (its
// OFFERs and ACKs sent, halved). Where the ladder asks whether 99% of the
// exchanges completed at a rate, which a moment of load anywhere on the
// machine decides (one step is 500-1,000 leases/s at these rates), this is
// how many the server got through while it was the bottleneck. The machine's
// speed drifts by 10-20% over a minute here, so each contender's figure
// against the first's is the median of the ratios within a round (tries a
// few seconds apart), not the ratio of the medians. It returns the median
// served per contender and, per contender, that median ratio to the first.
func saturated(ctx context.Context, b *B, cs []*contender, rate, secs int) (served, ratio []float64, err error) {
	per := make([][]float64, len(cs))
	for try := 0; try < satTries; try++ {
		for i, c := range cs {
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			t, err := tryOnce(ctx, b, c, rate, secs, try)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", c.name, err)
			}
			per[i] = append(per[i], float64(t.replies)/2/float64(secs))
		}
	}
	served, ratio = make([]float64, len(cs)), make([]float64, len(cs))
	for i, c := range cs {
		served[i] = medianFloat(per[i])
		var all []string
		var rs []float64
		for k, v := range per[i] {
			all = append(all, fmt.Sprintf("%.0f", v))
			if per[0][k] > 0 {
				rs = append(rs, v/per[0][k])
			}
		}
		if len(rs) > 0 {
			ratio[i] = medianFloat(rs)
		}
		b.Logf("saturated %s%s at %d/s offered: median %.0f exchanges/s served, median ratio to %s in the same round %.3f (tries: %s)",
			c.name, c.budgetTag(), rate, served[i], cs[0].name, ratio[i], strings.Join(all, ", "))
	}
	return served, ratio, nil
}

// limitLine says where a contender's ladder ended.
func (c *contender) limitLine() string {
	var tries []string
	for _, t := range c.failedTries {
		tries = append(tries, t.String())
	}
	failed := "none failed"
	if c.failed > 0 {
		failed = fmt.Sprintf("failed %d/s: %s", c.failed, strings.Join(tries, "; "))
	}
	return fmt.Sprintf("%s%s: %.0f leases/s, passed %d/s, %s", c.name, c.budgetTag(), c.best, c.passed, failed)
}

// udhcpcTime times DISCOVER->ACK for one udhcpc client (median of n).
func (tp *dhcpTopo) udhcpcTime(n int) (time.Duration, error) {
	var ds []time.Duration
	for i := 0; i < n; i++ {
		start := time.Now()
		out, err := tp.in(tp.cli, "busybox", "udhcpc", "-f", "-q", "-n", "-i", "host0", "-s", "/bin/true", "-t", "3", "-T", "5",
			"-x", fmt.Sprintf("0x3d:01020304%04x", i)).CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("udhcpc: %v: %s", err, out)
		}
		ds = append(ds, time.Since(start))
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2], nil
}

func benchDHCP(ctx context.Context, b *B) error {
	for _, tool := range []string{"perfdhcp", "dnsmasq", "kea-dhcp4", "busybox", "nsenter", "unshare", "ip", "go", "gcc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not installed (apt-get install kea-admin kea-dhcp4-server dnsmasq busybox-static gcc)", tool)
		}
	}
	dir, err := os.MkdirTemp("", "netspawn-bench-dhcp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b.Logf("load average at start: %s", loadavg())
	defer func() { b.Logf("load average at end: %s", loadavg()) }()
	bin, err := buildDHCPTestd(dir)
	if err != nil {
		return err
	}
	if os.Getenv("DHCPBENCH_SHIM") != "0" {
		if perfPreload, err = buildRcvbufShim(dir); err != nil {
			return err
		}
	}
	tp, err := newDHCPTopo(ctx, dir, 16)
	if err != nil {
		return err
	}
	defer tp.close()
	const secs = 5
	// Ours again with 50,000 and 200,000 leases already in the table: a
	// /15 and a /14, so that the 60,000 new clients still fit next to them.
	tp15, err := newDHCPTopo(ctx, dir, 15)
	if err != nil {
		return err
	}
	defer tp15.close()
	tp14, err := newDHCPTopo(ctx, dir, 14)
	if err != nil {
		return err
	}
	defer tp14.close()
	oursOnly := os.Getenv("DHCPBENCH_OURS") == "1"
	ours := &contender{name: "netspawn", tp: tp, start: func() (*daemon, error) { return tp.startOurs(bin, 16, "10.64.255.250", 0) }}
	kea := &contender{name: "kea", tp: tp, start: tp.startKea}
	full := &contender{name: "netspawn+50k", tp: tp15, start: func() (*daemon, error) { return tp15.startOurs(bin, 15, "10.65.255.250", 50000) }}
	full200 := &contender{name: "netspawn+200k", tp: tp14, start: func() (*daemon, error) { return tp14.startOurs(bin, 14, "10.67.255.250", 200000) }}
	all := []*contender{ours, kea, full, full200}
	if oursOnly {
		all = []*contender{ours, full, full200}
	} else if err := ladder(ctx, b, all,
		// With a core each perfdhcp sets the limit (its socket drops
		// replies; the servers answer all they get): one failed step ends
		// this ladder, to keep the run short.
		[]int{1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 10000, 12000, 14000, 16000, 20000}, secs, 1); err != nil {
		return err
	}
	// The same with an equal CPU budget each: with a whole core a server
	// can be faster than perfdhcp can generate and read on the other (about
	// 20,000 new leases/s here), so the first ladder can end at the
	// generator's limit rather than the server's. The steps are fine (5% or
	// less) where the servers' limits are, and each server's limit is then
	// refined to half a step, so that the cost of a full table shows.
	budget, err := newCPUBudget(dhcpBudgetPercent)
	if err != nil {
		return err
	}
	defer budget.close()
	var capped []*contender
	for _, c := range all {
		cc := *c
		cc.budget, cc.best, cc.done, cc.passed, cc.failed, cc.misses = budget, 0, false, 0, 0, 0
		cc.failedTries, cc.stepTries = nil, nil
		capped = append(capped, &cc)
	}
	if err := ladder(ctx, b, capped, []int{250, 500, 750, 1000, 1500, 2000, 2500, 3000, 3250, 3500, 3750, 4000, 4250, 4500, 4750, 5000,
		5250, 5500, 5750, 6000, 6500, 7000, 8000, 9000, 10000, 11000, 12000, 14000}, secs, 2); err != nil {
		return err
	}
	if err := refine(ctx, b, capped, secs); err != nil {
		return err
	}
	// Each table size's own capacity at a quarter of a core: offered 15%
	// more than the empty table's limit (rounded to 250/s).
	oursCapped := []*contender{capped[0]}
	for _, c := range capped[1:] {
		if strings.HasPrefix(c.name, "netspawn") {
			oursCapped = append(oursCapped, c)
		}
	}
	satRate := max(1000, capped[0].passed*115/100/250*250)
	if r := envInt("DHCPBENCH_SATRATE"); r > 0 {
		satRate = r
	}
	sat, satRatio, err := saturated(ctx, b, oursCapped, satRate, secs)
	if err != nil {
		return err
	}
	for _, c := range append(all, capped...) {
		if !oursOnly || c.budget != nil {
			b.Logf("limit %s", c.limitLine())
		}
	}
	for _, n := range []int{50000, 200000} {
		if v, ok := bytesPerLease[n]; ok {
			b.Result(fmt.Sprintf("netspawn heap per lease with %dk leases (table + store)", n/1000), v, "bytes")
		}
	}
	tag := fmt.Sprintf(", %d%% of a core each", dhcpBudgetPercent)
	for i, c := range oursCapped {
		b.Result(fmt.Sprintf("%s exchanges/s served when saturated (%d/s offered)%s", c.name, satRate, tag), sat[i], "/s")
		if i > 0 && satRatio[i] > 0 {
			b.Result(fmt.Sprintf("%s loss against the empty table when saturated, median within a round (target <= 5%%)", c.name), 100*(1-satRatio[i]), "%")
		}
	}
	if oursOnly {
		b.Result("netspawn new leases/s"+tag, capped[0].best, "leases/s")
		for _, c := range capped[1:] {
			b.Result(c.name+" new leases/s"+tag, c.best, "leases/s")
			if capped[0].best > 0 {
				b.Result(c.name+" loss against the empty table"+tag, 100*(1-c.best/capped[0].best), "%")
			}
		}
		return nil
	}
	dm := &contender{name: "dnsmasq", tp: tp, start: func() (*daemon, error) { return tp.startDnsmasq(false) }}
	if err := ladder(ctx, b, []*contender{dm}, []int{10, 20, 40, 60, 100, 150, 200, 300}, secs, 1); err != nil {
		return err
	}
	tp.close()
	tp15.close()
	tp14.close()

	// One client, DISCOVER -> ACK, udhcpc.
	tp1, err := newDHCPTopo(ctx, dir, 16)
	if err != nil {
		return err
	}
	defer tp1.close()
	d, err := tp1.startOurs(bin, 16, "10.64.255.250", 0)
	if err != nil {
		return err
	}
	oursOne, err := tp1.udhcpcTime(5)
	d.stop()
	if err != nil {
		return err
	}
	d, err = tp1.startDnsmasq(true)
	if err != nil {
		return err
	}
	dmOne, err := tp1.udhcpcTime(3)
	d.stop()
	if err != nil {
		return err
	}

	b.Result("netspawn new leases/s (>=99% answered), a core each", ours.best, "leases/s")
	b.Result("netspawn new leases/s with 50k leases in table", full.best, "leases/s")
	b.Result("netspawn new leases/s with 200k leases in table", full200.best, "leases/s")
	b.Result("kea-dhcp4 memfile new leases/s", kea.best, "leases/s")
	b.Result("dnsmasq --no-ping new leases/s", dm.best, "leases/s")
	if kea.best > 0 {
		b.Result("ratio netspawn / kea, a core each", ours.best/kea.best, "x")
		b.Result("ratio netspawn+50k / kea, a core each", full.best/kea.best, "x")
		b.Result("ratio netspawn+200k / kea, a core each", full200.best/kea.best, "x")
	}
	b.Result("netspawn new leases/s"+tag, capped[0].best, "leases/s")
	b.Result("netspawn+50k new leases/s"+tag, capped[2].best, "leases/s")
	b.Result("netspawn+200k new leases/s"+tag, capped[3].best, "leases/s")
	b.Result("kea-dhcp4 memfile new leases/s"+tag, capped[1].best, "leases/s")
	if capped[0].best > 0 {
		b.Result("netspawn+50k loss against the empty table"+tag+" (target <= 5%)", 100*(1-capped[2].best/capped[0].best), "%")
		b.Result("netspawn+200k loss against the empty table"+tag+" (target <= 5%)", 100*(1-capped[3].best/capped[0].best), "%")
	}
	if capped[1].best > 0 {
		b.Result("ratio netspawn / kea"+tag+" (target >= 2)", capped[0].best/capped[1].best, "x")
		b.Result("ratio netspawn+50k / kea"+tag+" (target >= 2)", capped[2].best/capped[1].best, "x")
		b.Result("ratio netspawn+200k / kea"+tag+" (target >= 2)", capped[3].best/capped[1].best, "x")
	}
	if dm.best > 0 {
		b.Result("ratio netspawn / dnsmasq", ours.best/dm.best, "x")
	}
	b.Result("udhcpc DISCOVER->ACK, netspawn", float64(oursOne.Microseconds())/1000, "ms")
	b.Result("udhcpc DISCOVER->ACK, dnsmasq default (ping check)", float64(dmOne.Microseconds())/1000, "ms")
	return nil
}

// envInt reads a numeric knob (0 when unset).
func envInt(name string) int {
	v, _ := strconv.Atoi(os.Getenv(name))
	return v
}

// profPath names a CPU profile file for one run of dhcptestd when
// DHCPBENCH_PROF is set.
func profPath() string {
	if p := os.Getenv("DHCPBENCH_PROF"); p != "" {
		return fmt.Sprintf("%s-%d", p, time.Now().UnixNano())
	}
	return ""
}
