package config

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseRlimit(t *testing.T) {
	inf := uint64(RlimInfinity)
	tests := []struct {
		arg  string
		res  int
		want Rlimit
	}{
		{"NOFILE=4096", unix.RLIMIT_NOFILE, Rlimit{4096, 4096}},
		{"RLIMIT_NOFILE=100:200", unix.RLIMIT_NOFILE, Rlimit{100, 200}},
		{"LimitNPROC=10:infinity", unix.RLIMIT_NPROC, Rlimit{10, inf}},
		{"CORE=infinity", unix.RLIMIT_CORE, Rlimit{inf, inf}},
		{"FSIZE=1K:2M", unix.RLIMIT_FSIZE, Rlimit{1024, 2 << 20}},
		{"AS=1.5G", unix.RLIMIT_AS, Rlimit{3 << 29, 3 << 29}},
		{"STACK=8M", unix.RLIMIT_STACK, Rlimit{8 << 20, 8 << 20}},
		{"CPU=90", unix.RLIMIT_CPU, Rlimit{90, 90}},
		{"CPU=5min:1h", unix.RLIMIT_CPU, Rlimit{300, 3600}},
		{"CPU=1500ms", unix.RLIMIT_CPU, Rlimit{2, 2}},
		{"RTTIME=200", unix.RLIMIT_RTTIME, Rlimit{200, 200}},
		{"RTTIME=1s:2s", unix.RLIMIT_RTTIME, Rlimit{1e6, 2e6}},
		{"NICE=+10", unix.RLIMIT_NICE, Rlimit{10, 10}},
		{"NICE=-5:40", unix.RLIMIT_NICE, Rlimit{25, 40}},
		{"NICE=0", unix.RLIMIT_NICE, Rlimit{0, 0}},
		{"MSGQUEUE=819200", unix.RLIMIT_MSGQUEUE, Rlimit{819200, 819200}},
		{"MEMLOCK=64K", unix.RLIMIT_MEMLOCK, Rlimit{65536, 65536}},
		{"SIGPENDING=5", unix.RLIMIT_SIGPENDING, Rlimit{5, 5}},
		{"LOCKS=7", unix.RLIMIT_LOCKS, Rlimit{7, 7}},
		{"RTPRIO=3", unix.RLIMIT_RTPRIO, Rlimit{3, 3}},
		{"DATA=1G", unix.RLIMIT_DATA, Rlimit{1 << 30, 1 << 30}},
		{"RSS=10", unix.RLIMIT_RSS, Rlimit{10, 10}},
	}
	for _, tt := range tests {
		c := mustParse(t, "-D/srv/t", "--rlimit="+tt.arg)
		if c.Rlimits[tt.res] == nil {
			t.Errorf("--rlimit=%s: not set", tt.arg)
			continue
		}
		eq(t, *c.Rlimits[tt.res], tt.want)
	}
	bad := []struct{ arg, want string }{
		{"NOFILE", "--rlimit= expects an assignment NAME=SOFT[:HARD]"},
		{"nofile=1", `unknown resource limit "nofile": use one of CPU, FSIZE`},
		{"NOFILE=abc", `--rlimit=NOFILE=abc: invalid limit "abc": "abc" is not a number; use SOFT[:HARD]`},
		{"NOFILE=", `invalid limit "": empty value`},
		{"NOFILE=2:1", "the soft limit is above the hard limit"},
		{"NOFILE=1:2:3", `invalid limit "1:2:3"`},
		{"NOFILE=-1", `"-1" is not a number`},
		{"NICE=41", `"41" is not a limit 0..40`},
		{"NICE=+20", `"+20" is not a nice level`},
		{"FSIZE=1Q", `"1Q" is not a size`},
		{"CPU=5 fortnights", "is not a time span"},
	}
	for _, tt := range bad {
		_, err := parseArgs([]string{"-D/srv/t", "--rlimit=" + tt.arg}, testEnv(t))
		errContains(t, err, tt.want)
	}
}

func TestEffectiveRlimits(t *testing.T) {
	c := mustParse(t, "-D/srv/t", "--rlimit=CORE=1:2")
	pid1 := func(r int) (Rlimit, error) { return Rlimit{uint64(r), 99}, nil }
	l, err := c.EffectiveRlimits(pid1, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, l[unix.RLIMIT_CORE], Rlimit{1, 2})
	eq(t, l[unix.RLIMIT_NOFILE], Rlimit{1024, HighRlimitNOFILE})
	eq(t, l[unix.RLIMIT_NPROC], Rlimit{unix.RLIMIT_NPROC, 99})
	eq(t, l[unix.RLIMIT_SIGPENDING], Rlimit{unix.RLIMIT_SIGPENDING, 99})
	eq(t, l[unix.RLIMIT_STACK], Rlimit{8 << 20, RlimInfinity})
	eq(t, l[unix.RLIMIT_MEMLOCK], Rlimit{8 << 20, 8 << 20})
	l, _ = c.EffectiveRlimits(pid1, 4096)
	eq(t, l[unix.RLIMIT_NOFILE], Rlimit{1024, 4096})
	_, err = c.EffectiveRlimits(func(int) (Rlimit, error) { return Rlimit{}, errors.New("no") }, 4096)
	errContains(t, err, "RLIMIT_NPROC of PID 1")
}

func TestParseExecProperties(t *testing.T) {
	c := mustParse(t, "-D/srv/t", "--oom-score-adjust=-500", "--cpu-affinity=0,2-3 5", "--personality=x86",
		"--background=44", "--ambient-capability=CAP_NET_RAW,CAP_CHOWN")
	eq(t, *c.OOMScoreAdjust, -500)
	eq(t, c.CPUAffinity, []int{0, 2, 3, 5})
	eq(t, c.Personality, "x86")
	p, ok := c.PersonalityValue()
	eq(t, ok, true)
	eq(t, p, uint32(perLinux32))
	eq(t, c.Background, "44")
	eq(t, c.AmbientCaps, uint64(1<<CapNetRaw|1<<0))
	c = mustParse(t, "-D/srv/t", "--cpu-affinity=3-1", "--personality=x86-64")
	eq(t, c.CPUAffinity, []int(nil))
	p, _ = c.PersonalityValue()
	eq(t, p, uint32(perLinux))

	bad := []struct {
		args []string
		want string
	}{
		{[]string{"--oom-score-adjust=1001"}, `--oom-score-adjust=1001: invalid OOM score adjustment "1001": use an integer from -1000 to 1000`},
		{[]string{"--oom-score-adjust=x"}, "use an integer from -1000 to 1000"},
		{[]string{"--cpu-affinity=a"}, `--cpu-affinity=a: invalid CPU "a" in "a": use CPU numbers and ranges such as 0,2-3`},
		{[]string{"--cpu-affinity=1-x"}, `invalid CPU "1-x"`},
		{[]string{"--cpu-affinity=99999999"}, "value out of range"},
		{[]string{"--personality=alpha"}, `--personality=alpha: unknown or unsupported personality "alpha": use one of x86, x86-64`},
		{[]string{"--background=red"}, `--background=red: invalid background color "red": use an ANSI SGR background parameter`},
		{[]string{"--ambient-capability=CAP_NOPE"}, `--ambient-capability=CAP_NOPE: unknown capability "CAP_NOPE"`},
		{[]string{"--ambient-capability=all"}, "--ambient-capability=all (AmbientCapability=all) is not supported"},
		{[]string{"--ambient-capability=CAP_SYS_TIME"}, "not fully covered by the container's capabilities: add CAP_SYS_TIME with --capability="},
		{[]string{"--ambient-capability=CAP_CHOWN", "-b"}, "is not useful with -b/--boot"},
		{[]string{"--ambient-capability=CAP_CHOWN", "-a"}, "with -a/--as-pid2 is not supported by netspawn yet"},
	}
	for _, tt := range bad {
		_, err := parseArgs(append([]string{"-D/srv/t", "--settings=no"}, tt.args...), testEnv(t))
		errContains(t, err, tt.want)
	}
	// Covered once the capability is added.
	c = mustParse(t, "-D/srv/t", "--settings=no", "--capability=CAP_SYS_TIME", "--ambient-capability=CAP_SYS_TIME")
	eq(t, c.AmbientCaps, uint64(1<<CapSysTime))
}

func TestShareSystem(t *testing.T) {
	c := mustParse(t, "-D/srv/t", "--share-system")
	eq(t, c.ShareIPC && c.SharePID && c.ShareUTS, true)
	eq(t, c.Warnings, []string{"Please do not use --share-system anymore, use $SYSTEMD_NSPAWN_SHARE_* instead."})
}

func TestSettingsExecProperties(t *testing.T) {
	file := "[Exec]\nLimitNOFILE=100:200\nLimitCPU=infinity\nOOMScoreAdjust=300\nCPUAffinity=1-2\nPersonality=x86\nAmbientCapability=CAP_CHOWN\n"
	c := mustApply(t, mustParse(t, "-D/srv/web"), file, true, "yes")
	eq(t, *c.Rlimits[unix.RLIMIT_NOFILE], Rlimit{100, 200})
	eq(t, *c.Rlimits[unix.RLIMIT_CPU], Rlimit{RlimInfinity, RlimInfinity})
	eq(t, *c.OOMScoreAdjust, 300)
	eq(t, c.CPUAffinity, []int{1, 2})
	eq(t, c.Personality, "x86")
	eq(t, c.AmbientCaps, uint64(1<<0))
	// The command line wins, per limit.
	c = mustApply(t, mustParse(t, "-D/srv/web", "--rlimit=NOFILE=5", "--oom-score-adjust=1", "--cpu-affinity=0", "--personality=x86-64"), file, true, "yes")
	eq(t, *c.Rlimits[unix.RLIMIT_NOFILE], Rlimit{5, 5})
	eq(t, *c.Rlimits[unix.RLIMIT_CPU], Rlimit{RlimInfinity, RlimInfinity})
	eq(t, *c.OOMScoreAdjust, 1)
	eq(t, c.CPUAffinity, []int{0})
	eq(t, c.Personality, "x86-64")
	// Untrusted: limits, OOM score, affinity and ambient caps are ignored; personality is not privileged.
	c = mustApply(t, mustParse(t, "-D/srv/web"), file, false, "yes")
	eq(t, c.Rlimits[unix.RLIMIT_NOFILE] == nil, true)
	eq(t, c.OOMScoreAdjust == nil, true)
	eq(t, c.CPUAffinity, []int(nil))
	eq(t, c.AmbientCaps, uint64(0))
	eq(t, c.Personality, "x86")
	eq(t, c.Warnings, []string{
		"web.nspawn:7: ignoring AmbientCapability= setting, file is not trusted",
		"web.nspawn:3: ignoring LimitCPU= setting, file is not trusted", // by RLIMIT_* number, as nspawn
		"web.nspawn:2: ignoring LimitNOFILE= setting, file is not trusted",
		"web.nspawn:4: ignoring OOMScoreAdjust= setting, file is not trusted",
		"web.nspawn:5: ignoring CPUAffinity= setting, file is not trusted",
	})
}
