package config

import (
	"strings"
	"testing"

	"github.com/netspawn/netspawn/spawn/seccomp"

	"golang.org/x/sys/unix"
)

func TestParseOCISeccomp(t *testing.T) {
	const js = `{"ociVersion": "1.0.2", "process": {"args": ["sh"]}, "linux": {"seccomp": {
		"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
		"architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
		"flags": [],
		"syscalls": [
			{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
			{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
			{"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
			{"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}, {"index": 1, "value": 18446744073709551615, "op": "SCMP_CMP_NE"}]},
			{"names": ["reboot"], "action": "SCMP_ACT_KILL_PROCESS"},
			{"names": ["kill"], "action": "SCMP_ACT_LOG"}
		]}}}`
	b, err := ParseOCIConfig([]byte(js), "/b")
	if err != nil {
		t.Fatal(err)
	}
	want := &seccomp.Profile{
		DefaultAction: seccomp.ActErrno(38),
		Arches:        []string{"x86_64", "x86", "x32"},
		Rules: []seccomp.Rule{
			{Names: []string{"read", "write"}, Action: seccomp.ActAllow},
			{Names: []string{"mkdir"}, Action: seccomp.ActErrno(13)},
			{Names: []string{"personality"}, Action: seccomp.ActAllow, Args: []seccomp.ArgCmp{{Index: 0, Op: seccomp.CmpEQ, Value: 8}}},
			{Names: []string{"clone"}, Action: seccomp.ActAllow, Args: []seccomp.ArgCmp{{Index: 0, Op: seccomp.CmpMaskedEQ, Value: 2114060288}, {Index: 1, Op: seccomp.CmpNE, Value: 1<<64 - 1}}},
			{Names: []string{"reboot"}, Action: seccomp.ActKillProcess},
			{Names: []string{"kill"}, Action: seccomp.ActLog},
		},
	}
	eq(t, b.Seccomp, want)
	if _, err := b.Seccomp.Compile("amd64"); err != nil {
		t.Fatal(err)
	}
	// SCMP_ACT_ERRNO without errnoRet is EPERM, as in nspawn.
	b, err = ParseOCIConfig([]byte(`{"ociVersion": "1.0.0", "process": {"args": ["sh"]}, "linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}}}`), "/b")
	if err != nil {
		t.Fatal(err)
	}
	eq(t, b.Seccomp.Rules[0].Action, seccomp.ActErrno(uint32(unix.EPERM)))
	eq(t, b.Seccomp.DefaultAction, seccomp.ActAllow)
}

func TestParseOCISeccompBad(t *testing.T) {
	const pre = `{"ociVersion": "1.0.0", "process": {"args": ["sh"]}, "linux": {"seccomp": `
	for _, c := range []struct{ json, want string }{
		{`{}`, "linux.seccomp.defaultAction: missing"},
		{`{"defaultAction": "SCMP_ACT_ALLOWED"}`, `linux.seccomp.defaultAction: unknown action "SCMP_ACT_ALLOWED"`},
		{`{"defaultAction": "SCMP_ACT_TRACE"}`, "linux.seccomp.defaultAction: action SCMP_ACT_TRACE is not supported"},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}`, "linux.seccomp.defaultErrnoRet: only SCMP_ACT_ERRNO takes an errno"},
		{`{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 5000}`, "linux.seccomp.defaultErrnoRet: 5000 is out of range 0..4095"},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_PDP11"]}`, `linux.seccomp.architectures[1]: unknown architecture "SCMP_ARCH_PDP11"`},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG"]}`, "linux.seccomp.flags: seccomp filter flags (SECCOMP_FILTER_FLAG_LOG) are not supported"},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/x"}`, "linux.seccomp.listenerPath: unknown field"},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ERRNO"}]}`, "linux.seccomp.syscalls[0].names: missing"},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]}`, "linux.seccomp.syscalls[0].names: the list of system call names is empty"},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}, {"names": ["mkdir", "mkdri"], "action": "SCMP_ACT_ERRNO"}]}`, `linux.seccomp.syscalls[1].names[1]: unknown system call "mkdri"`},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"]}]}`, "linux.seccomp.syscalls[0].action: missing"},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}`, "linux.seccomp.syscalls[0].action: action SCMP_ACT_NOTIFY is not supported"},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]}`, "linux.seccomp.syscalls[0].errnoRet: only SCMP_ACT_ERRNO takes an errno, not SCMP_ACT_KILL"},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "comment": "x"}]}`, "linux.seccomp.syscalls[0].comment: unknown field"},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}`, "linux.seccomp.syscalls[0].args[0].index: 6 is out of range 0..5"},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "op": "SCMP_CMP_EQ"}]}]}`, "linux.seccomp.syscalls[0].args[0].value: missing"},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": -1, "op": "SCMP_CMP_EQ"}]}]}`, "linux.seccomp.syscalls[0].args[0].value: must not be negative"},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 1, "op": "SCMP_CMP_EQUAL"}]}]}`, `linux.seccomp.syscalls[0].args[0].op: unknown comparison "SCMP_CMP_EQUAL"`},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 1}]}]}`, "linux.seccomp.syscalls[0].args[0].op: missing"},
		{`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}]}]}`, "linux.seccomp.syscalls[0].args[1].index: argument 1 is compared twice"},
		{`[]`, "linux.seccomp: expected an object"},
	} {
		_, err := ParseOCIConfig([]byte(pre+c.json+`}}`), "/b")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n got %v\nwant %q", c.json, err, c.want)
		}
	}
}

// The bundle's filter replaces the default one, unless the command line
// edits the default filter with --system-call-filter=, as in nspawn.
func TestOCIBundleSeccompMerge(t *testing.T) {
	files := map[string]string{"/b/config.json": `{"ociVersion": "1.0.0", "process": {"args": ["sh"]}, "root": {"path": "rootfs"},
		"linux": {"namespaces": [{"type": "mount"}], "seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}}}`}
	c, err := parseArgs([]string{"--oci-bundle=/b", "-q"}, bundleEnv(t, files))
	if err != nil {
		t.Fatal(err)
	}
	if c.SeccompProfile == nil || len(c.SeccompProfile.Rules) != 1 {
		t.Fatalf("SeccompProfile = %+v", c.SeccompProfile)
	}
	c, err = parseArgs([]string{"--oci-bundle=/b", "-q", "--system-call-filter=~mkdir"}, bundleEnv(t, files))
	if err != nil {
		t.Fatal(err)
	}
	if c.SeccompProfile != nil {
		t.Errorf("SeccompProfile set despite --system-call-filter=")
	}
	if !strings.Contains(strings.Join(c.Warnings, "\n"), "linux.seccomp: ignored, as --system-call-filter= is given") {
		t.Errorf("no warning: %q", c.Warnings)
	}
}
