package test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netspawn/netspawn/test/harness"

	"golang.org/x/sys/unix"
)

// Machine names here start with "fl-": machine cgroups are global.

// bothPaths runs f on the fast path and on the re-executed init.
func bothPaths(t *testing.T, e *harness.Env, f func(t *testing.T)) {
	t.Run("fast", f)
	t.Run("init", func(t *testing.T) {
		defer withEnv(e, "NETSPAWN_REEXEC_INIT=1")()
		f(t)
	})
}

// showLimits prints some lines of /proc/self/limits as "NAME soft hard".
const showLimits = `awk '/^Max open files/ {print "NOFILE", $4, $5} /^Max core file size/ {print "CORE", $5, $6} /^Max stack size/ {print "STACK", $4, $5} /^Max locked memory/ {print "MEMLOCK", $4, $5} /^Max cpu time/ {print "CPU", $4, $5} /^Max nice priority/ {print "NICE", $4, $5}' /proc/self/limits`

// defaultNofileMax is the hard NOFILE limit nspawn gives: fs.nr_open, at
// most 512K; without CAP_SYS_RESOURCE (as on some CI hosts) it cannot
// raise it above its own, and settles for that (setrlimit_closest).
func defaultNofileMax(t *testing.T) string {
	b, err := os.ReadFile("/proc/sys/fs/nr_open")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	n = min(n, 512*1024)
	var own unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &own); err != nil {
		t.Fatal(err)
	}
	if !hasCap(t, unix.CAP_SYS_RESOURCE) {
		n = min(n, own.Max)
	}
	return strconv.FormatUint(n, 10)
}

// hasCap reports whether this process has capability c in its effective set.
func hasCap(t *testing.T, c int) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			m, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return m&(1<<uint(c)) != 0
		}
	}
	return false
}

// --rlimit= and nspawn's defaults for the limits not given: NOFILE
// 1024:min(nr_open, 512K), CORE 0:infinity, STACK 8M:infinity, MEMLOCK 8M.
func TestRlimit(t *testing.T) {
	e := harness.NewEnv(t)
	hard := defaultNofileMax(t)
	bothPaths(t, e, func(t *testing.T) {
		want(t, e.Netspawn("-M", "fl-rlimit", "sh", "-c", showLimits),
			"CPU unlimited unlimited\nSTACK 8388608 unlimited\nCORE 0 unlimited\nNOFILE 1024 "+hard+"\nMEMLOCK 8388608 8388608\nNICE 0 0")
		// NICE's default hard limit is 0: raising it needs CAP_SYS_RESOURCE,
		// without which nspawn settles for the current one.
		nice := "NICE 25 25"
		if !hasCap(t, unix.CAP_SYS_RESOURCE) {
			nice = "NICE 0 0"
		}
		want(t, e.Netspawn("-M", "fl-rlimit", "--rlimit=NOFILE=100:200", "--rlimit=RLIMIT_CORE=infinity",
			"--rlimit=CPU=1min:infinity", "--rlimit=NICE=-5", "--rlimit=STACK=1M", "sh", "-c", showLimits+"; ulimit -n"),
			"CPU 60 unlimited\nSTACK 1048576 1048576\nCORE unlimited unlimited\nNOFILE 100 200\nMEMLOCK 8388608 8388608\n"+nice+"\n100")
		// A NOFILE limit below what the start itself needs.
		want(t, e.Netspawn("-M", "fl-rlimit", "--rlimit=NOFILE=5", "sh", "-c", "ulimit -n"), "5")
	})
	wantFail(t, e.Netspawn("-M", "fl-rlimit", "--rlimit=NOFILE=2:1", "true"), "--rlimit=NOFILE=2:1: invalid limit \"2:1\": the soft limit is above the hard limit")
	wantFail(t, e.Netspawn("-M", "fl-rlimit", "--rlimit=FILES=1", "true"), `unknown resource limit "FILES": use one of CPU, FSIZE`)

	// [Exec] LimitNOFILE= from a trusted .nspawn file; the command line wins.
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "fl-rlimit.nspawn"), "[Exec]\nLimitNOFILE=300:400\nLimitCORE=1M\n")
	defer withEnv(e, "NETSPAWN_SETTINGS_PATH="+dir)()
	want(t, e.Netspawn("-M", "fl-rlimit", "sh", "-c", showLimits+"| grep -e NOFILE -e CORE"), "CORE 1048576 1048576\nNOFILE 300 400")
	want(t, e.Netspawn("-M", "fl-rlimit", "--rlimit=NOFILE=5", "sh", "-c", showLimits+"| grep -e NOFILE -e CORE"), "CORE 1048576 1048576\nNOFILE 5 5")
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// --oom-score-adjust=, --cpu-affinity= and --personality= and their
// [Exec] keys (the re-executed init sets them).
func TestOOMAffinityPersonality(t *testing.T) {
	e := harness.NewEnv(t)
	// Raising the score needs no privilege; lowering it CAP_SYS_RESOURCE.
	want(t, e.Netspawn("-M", "fl-props", "--oom-score-adjust=321", "cat", "/proc/self/oom_score_adj"), "321")
	if hasCap(t, unix.CAP_SYS_RESOURCE) {
		want(t, e.Netspawn("-M", "fl-props", "--oom-score-adjust=-321", "cat", "/proc/self/oom_score_adj"), "-321")
	} else {
		wantFail(t, e.Netspawn("-M", "fl-props", "--oom-score-adjust=-321", "true"), "failed to adjust OOM score")
	}
	want(t, e.Netspawn("-M", "fl-props", "--cpu-affinity=0", "sh", "-c", "grep ^Cpus_allowed_list: /proc/self/status"), "Cpus_allowed_list:\t0")
	want(t, e.Netspawn("-M", "fl-props", "--personality=x86", "uname", "-m"), "i686")
	want(t, e.Netspawn("-M", "fl-props", "--personality=x86-64", "uname", "-m"), "x86_64")
	wantFail(t, e.Netspawn("-M", "fl-props", "--oom-score-adjust=1001", "true"), "--oom-score-adjust=1001: invalid OOM score adjustment \"1001\": use an integer from -1000 to 1000")
	wantFail(t, e.Netspawn("-M", "fl-props", "--cpu-affinity=zero", "true"), "--cpu-affinity=zero: invalid CPU \"zero\"")
	wantFail(t, e.Netspawn("-M", "fl-props", "--personality=sparc", "true"), "--personality=sparc: unknown or unsupported personality \"sparc\": use one of x86, x86-64")
	// A CPU the host does not have.
	wantFail(t, e.Netspawn("-M", "fl-props", "--cpu-affinity=4000", "true"), "failed to set CPU affinity")

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "fl-props.nspawn"), "[Exec]\nOOMScoreAdjust=123\nCPUAffinity=1 0\nPersonality=x86\n")
	defer withEnv(e, "NETSPAWN_SETTINGS_PATH="+dir)()
	want(t, e.Netspawn("-M", "fl-props", "sh", "-c", "cat /proc/self/oom_score_adj; grep ^Cpus_allowed_list: /proc/self/status; uname -m"),
		"123\nCpus_allowed_list:\t0-1\ni686")
}

// --share-system: nspawn 252 still accepts it with a warning, and shares
// the host's IPC, PID and UTS namespaces.
func TestShareSystem(t *testing.T) {
	e := harness.NewEnv(t)
	hostPID, _ := os.Readlink("/proc/self/ns/pid")
	hostUTS, _ := os.Readlink("/proc/self/ns/uts")
	hostIPC, _ := os.Readlink("/proc/self/ns/ipc")
	r := e.Run("netspawn", "-D", e.Tree, "-M", "fl-share", "--share-system", "sh", "-c", "for n in pid uts ipc; do readlink /proc/self/ns/$n; done")
	want(t, r, hostPID+"\n"+hostUTS+"\n"+hostIPC)
	if !strings.Contains(r.Stderr, "Please do not use --share-system anymore, use $SYSTEMD_NSPAWN_SHARE_* instead.") {
		t.Errorf("no warning: %q", r.Stderr)
	}
}

// --ambient-capability=: a payload running as a user other than root
// keeps the ambient capabilities (also with --no-new-privileges=yes);
// they must be in the container's set, and not with -b.
func TestAmbientCapability(t *testing.T) {
	e := harness.NewEnv(t)
	caps := "grep -e ^CapInh -e ^CapPrm -e ^CapEff -e ^CapAmb /proc/self/status"
	// CAP_CHOWN is bit 0, CAP_NET_RAW bit 13.
	const amb = "0000000000002001"
	want(t, e.Netspawn("-M", "fl-amb", "-u", "user", "sh", "-c", caps),
		"CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapAmb:\t0000000000000000")
	for _, nnp := range []string{"no", "yes"} {
		want(t, e.Netspawn("-M", "fl-amb", "-u", "user", "--no-new-privileges="+nnp, "--ambient-capability=CAP_NET_RAW,CAP_CHOWN", "sh", "-c", caps+"; grep ^NoNewPrivs /proc/self/status; touch /tmp/f && chown 0 /tmp/f && echo chowned"),
			"CapInh:\t"+amb+"\nCapPrm:\t"+amb+"\nCapEff:\t"+amb+"\nCapAmb:\t"+amb+"\nNoNewPrivs:\t"+map[string]string{"no": "0", "yes": "1"}[nnp]+"\nchowned")
	}
	// The re-executed init too (the fast path leaves ambient capabilities to it anyway).
	func() {
		defer withEnv(e, "NETSPAWN_REEXEC_INIT=1")()
		want(t, e.Netspawn("-M", "fl-amb", "-u", "user", "--ambient-capability=CAP_CHOWN", "sh", "-c", "grep ^CapAmb /proc/self/status"), "CapAmb:\t0000000000000001")
	}()
	// Root keeps its capabilities and gets the ambient ones.
	want(t, e.Netspawn("-M", "fl-amb", "--ambient-capability=CAP_CHOWN", "sh", "-c", "grep ^CapAmb /proc/self/status"), "CapAmb:\t0000000000000001")
	wantFail(t, e.Netspawn("-M", "fl-amb", "--ambient-capability=CAP_SYS_TIME", "true"), "not fully covered by the container's capabilities: add CAP_SYS_TIME with --capability=")
	want(t, e.Netspawn("-M", "fl-amb", "-u", "user", "--capability=CAP_SYS_TIME", "--ambient-capability=CAP_SYS_TIME", "sh", "-c", "grep ^CapAmb /proc/self/status"), "CapAmb:\t0000000002000000")
	wantFail(t, e.Netspawn("-M", "fl-amb", "-b", "--ambient-capability=CAP_CHOWN"), "is not useful with -b/--boot")
	wantFail(t, e.Netspawn("-M", "fl-amb", "--ambient-capability=all", "true"), "--ambient-capability=all (AmbientCapability=all) is not supported")

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "fl-amb.nspawn"), "[Exec]\nAmbientCapability=CAP_NET_RAW\nUser=user\n")
	defer withEnv(e, "NETSPAWN_SETTINGS_PATH="+dir)()
	want(t, e.Netspawn("-M", "fl-amb", "sh", "-c", "grep ^CapAmb /proc/self/status"), "CapAmb:\t0000000000002000")
}

// --background=COLOR: the ANSI background escape on netspawn's terminal
// while the container runs, reset at the end; nothing without a terminal.
func TestBackground(t *testing.T) {
	e := harness.NewEnv(t)
	cmd := e.Command("netspawn", "-q", "-D", e.Tree, "-M", "fl-bg", "--background=44", "sh", "-c", "echo hello-bg")
	out, ok := onTerminal(t, cmd, 30*time.Second,
		step{want: "\x1b[44m\x1b[K"}, step{want: "hello-bg"}, step{want: "\x1b[0m\x1b[K"})
	if !ok {
		t.Fatalf("terminal did not show the background and its reset: %q", out)
	}
	r := e.Netspawn("-M", "fl-bg", "--background=48;5;17", "echo", "plain")
	if r.Code != 0 || r.Stdout != "plain\n" {
		t.Fatalf("without a terminal: exit %d, output %q (want no escapes)", r.Code, r.Stdout)
	}
	wantFail(t, e.Netspawn("-M", "fl-bg", "--background=blue", "true"), `--background=blue: invalid background color "blue"`)
}
