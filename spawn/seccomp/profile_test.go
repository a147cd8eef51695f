package seccomp

import (
	"math/rand"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// nr returns the number of syscall name in the tables of one ABI.
func nr(t *testing.T, tables []sysEntry, name string) uint32 {
	t.Helper()
	for _, e := range tables {
		if e.name == name {
			return e.nr
		}
	}
	t.Fatalf("no syscall %s", name)
	return 0
}

func compileVM(t *testing.T, p *Profile, arch string) func(auditArch, nr uint32, args ...uint64) uint32 {
	t.Helper()
	prog, err := p.Compile(arch)
	if err != nil {
		t.Fatal(err)
	}
	vm := newVM(t, prog)
	return func(auditArch, nr uint32, args ...uint64) uint32 {
		return run(t, vm, seccompData(auditArch, nr, args...))
	}
}

func TestProfileBasic(t *testing.T) {
	p := &Profile{
		DefaultAction: ActAllow,
		Rules: []Rule{
			{Names: []string{"mkdir", "mkdirat"}, Action: ActErrno(uint32(unix.EACCES))},
			{Names: []string{"reboot"}, Action: ActKillProcess},
			{Names: []string{"uname"}, Action: ActionMust(t, "SCMP_ACT_ERRNO")},
		},
	}
	x := compileVM(t, p, "amd64")
	const x64 = unix.AUDIT_ARCH_X86_64
	eacces := uint32(unix.SECCOMP_RET_ERRNO) | uint32(syscall.EACCES)
	for name, want := range map[string]uint32{
		"mkdir": eacces, "mkdirat": eacces, "reboot": retKill, "uname": retEPERM,
		"read": retAllow, "open": retAllow, "fsync": retAllow,
	} {
		if got := x(x64, nr(t, sysAMD64, name)); got != want {
			t.Errorf("x86-64 %s: got %#x, want %#x", name, got, want)
		}
	}
	// Numbers no table has get the default action; x32 numbers and i386
	// kill, as their ABIs are not in the profile.
	if got := x(x64, 5000); got != retAllow {
		t.Errorf("unknown number: got %#x", got)
	}
	for _, n := range []uint32{x32Bit, x32Bit | 83, 0xffffffff} {
		if got := x(x64, n); got != retKill {
			t.Errorf("x32 number %#x without SCMP_ARCH_X32: got %#x, want kill", n, got)
		}
	}
	if got := x(unix.AUDIT_ARCH_I386, 39); got != retKill {
		t.Errorf("i386 without SCMP_ARCH_X86: got %#x, want kill", got)
	}

	p.Arches = []string{"x86", "x32", "s390x"}
	x = compileVM(t, p, "amd64")
	if got := x(unix.AUDIT_ARCH_I386, nr(t, sys386, "mkdir")); got != eacces {
		t.Errorf("i386 mkdir: got %#x", got)
	}
	if got := x(unix.AUDIT_ARCH_I386, nr(t, sys386, "read")); got != retAllow {
		t.Errorf("i386 read: got %#x", got)
	}
	if got := x(x64, nr(t, sysX32, "mkdir")); got != eacces {
		t.Errorf("x32 mkdir: got %#x", got)
	}
	if got := x(x64, x32Bit|1000); got != retAllow {
		t.Errorf("x32 unknown: got %#x", got)
	}
	if got := x(unix.AUDIT_ARCH_S390X, 1); got != retKill {
		t.Errorf("foreign arch: got %#x", got)
	}

	a := compileVM(t, p, "arm64")
	if got := a(unix.AUDIT_ARCH_AARCH64, nr(t, sysARM64, "mkdirat")); got != eacces {
		t.Errorf("arm64 mkdirat: got %#x", got)
	}
	if got := a(unix.AUDIT_ARCH_ARM, 1); got != retKill {
		t.Errorf("arm without SCMP_ARCH_ARM: got %#x", got)
	}
}

func ActionMust(t *testing.T, name string) Action {
	t.Helper()
	a, err := ActionFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestProfileAllowList is the common shape: deny by default, allow a list.
func TestProfileAllowList(t *testing.T) {
	var names []string
	for _, e := range sysAMD64 {
		if e.nr%3 != 0 && !postV255[e.name] {
			names = append(names, e.name)
		}
	}
	p := &Profile{DefaultAction: ActErrno(uint32(unix.ENOSYS)), Arches: []string{"x86", "x32"},
		Rules: []Rule{{Names: names, Action: ActAllow}}}
	prog, err := p.Compile("amd64")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d names allowed: %d instructions", len(names), len(prog))
	vm := newVM(t, prog)
	allowed := map[string]bool{}
	for _, n := range names {
		allowed[n] = true
	}
	for _, a := range []struct {
		arch uint32
		tabs []sysEntry
	}{{unix.AUDIT_ARCH_X86_64, sysAMD64}, {unix.AUDIT_ARCH_X86_64, sysX32}, {unix.AUDIT_ARCH_I386, sys386}} {
		for _, e := range a.tabs {
			want := retENOSYS
			if allowed[e.name] {
				want = retAllow
			}
			if got := run(t, vm, seccompData(a.arch, e.nr)); got != want {
				t.Errorf("arch %#x %s: got %#x, want %#x", a.arch, e.name, got, want)
			}
		}
	}
}

// eval is what a comparison means, in Go.
func eval(c ArgCmp, arg uint64, wide bool) bool {
	v, v2 := c.Value, c.ValueTwo
	if !wide {
		arg, v, v2 = uint64(uint32(arg)), uint64(uint32(v)), uint64(uint32(v2))
	}
	switch c.Op {
	case CmpNE:
		return arg != v
	case CmpLT:
		return arg < v
	case CmpLE:
		return arg <= v
	case CmpEQ:
		return arg == v
	case CmpGE:
		return arg >= v
	case CmpGT:
		return arg > v
	case CmpMaskedEQ:
		return arg&v == v2
	}
	panic("op")
}

// TestProfileArgs checks every comparison, on 64-bit and 32-bit ABIs,
// against eval with values that differ in the high word only, the low word
// only, or both.
func TestProfileArgs(t *testing.T) {
	edges := []uint64{0, 1, 2, 0xfffffffe, 0xffffffff, 1 << 32, 1<<32 | 1, 1<<32 | 0xffffffff, 2 << 32, 0xffffffff00000000, 0xfffffffffffffffe, 0xffffffffffffffff}
	rnd := rand.New(rand.NewSource(1))
	for i := 0; i < 8; i++ {
		edges = append(edges, rnd.Uint64(), uint64(rnd.Uint32()))
	}
	const target = 0xeed
	for op := CmpNE; op <= CmpMaskedEQ; op++ {
		for _, v := range edges {
			c := ArgCmp{Index: 3, Op: op, Value: v, ValueTwo: v & 0xff0000ff000000ff}
			if op == CmpMaskedEQ && v&1 == 0 {
				c.ValueTwo = 1 // unsatisfiable in the low word
			}
			p := &Profile{DefaultAction: ActAllow, Arches: []string{"x86"},
				Rules: []Rule{{Names: []string{"ioctl"}, Action: ActErrno(target), Args: []ArgCmp{c}}}}
			x := compileVM(t, p, "amd64")
			for _, arg := range edges {
				for _, abi := range []struct {
					arch, nr uint32
					wide     bool
				}{{unix.AUDIT_ARCH_X86_64, nr(t, sysAMD64, "ioctl"), true}, {unix.AUDIT_ARCH_I386, nr(t, sys386, "ioctl"), false}} {
					args := []uint64{7, 7, 7, arg, 7}
					if !abi.wide {
						args[3] = uint64(uint32(arg)) // the kernel zero-extends 32-bit arguments
					}
					want := retAllow
					if eval(c, args[3], abi.wide) {
						want = uint32(unix.SECCOMP_RET_ERRNO) | target
					}
					if got := x(abi.arch, abi.nr, args...); got != want {
						t.Errorf("op %d value %#x (two %#x) arg %#x wide=%v: got %#x, want %#x", op, c.Value, c.ValueTwo, arg, abi.wide, got, want)
					}
				}
			}
		}
	}
}

// TestProfileRuleOrder: the first rule whose comparisons all hold decides;
// several comparisons in a rule must all hold.
func TestProfileRuleOrder(t *testing.T) {
	p := &Profile{DefaultAction: ActErrno(1), Rules: []Rule{
		{Names: []string{"socket"}, Action: ActErrno(2), Args: []ArgCmp{{Index: 0, Op: CmpEQ, Value: unix.AF_INET}, {Index: 1, Op: CmpMaskedEQ, Value: 0xf, ValueTwo: unix.SOCK_RAW}}},
		{Names: []string{"socket"}, Action: ActAllow, Args: []ArgCmp{{Index: 0, Op: CmpLE, Value: unix.AF_INET6}}},
		{Names: []string{"socket", "bind"}, Action: ActErrno(3)},
		{Names: []string{"socket"}, Action: ActAllow}, // never reached
		{Names: []string{"bind"}, Action: ActAllow, Args: []ArgCmp{{Index: 0, Op: CmpEQ, Value: 0}}},
	}}
	x := compileVM(t, p, "amd64")
	const x64 = unix.AUDIT_ARCH_X86_64
	sock, bind := nr(t, sysAMD64, "socket"), nr(t, sysAMD64, "bind")
	errno := func(e uint32) uint32 { return uint32(unix.SECCOMP_RET_ERRNO) | e }
	for _, tc := range []struct {
		nr   uint32
		args []uint64
		want uint32
	}{
		{sock, []uint64{unix.AF_INET, unix.SOCK_RAW | unix.SOCK_CLOEXEC}, errno(2)},
		{sock, []uint64{unix.AF_INET, unix.SOCK_STREAM}, retAllow},
		{sock, []uint64{1<<32 | unix.AF_INET, unix.SOCK_RAW}, errno(3)}, // 64-bit: not AF_INET, not <= AF_INET6
		{sock, []uint64{unix.AF_NETLINK, unix.SOCK_RAW}, errno(3)},
		{bind, []uint64{0}, errno(3)},
		{nr(t, sysAMD64, "read"), nil, errno(1)},
	} {
		if got := x(x64, tc.nr, tc.args...); got != tc.want {
			t.Errorf("nr %d args %#x: got %#x, want %#x", tc.nr, tc.args, got, tc.want)
		}
	}
}

func TestProfileSuppressSync(t *testing.T) {
	p := &Profile{DefaultAction: ActAllow, SuppressSync: true, Rules: []Rule{{Names: []string{"fdatasync"}, Action: ActErrno(5)}}}
	x := compileVM(t, p, "amd64")
	const x64 = unix.AUDIT_ARCH_X86_64
	for _, tc := range []struct {
		name string
		args []uint64
		want uint32
	}{
		{"fsync", nil, uint32(unix.SECCOMP_RET_ERRNO)},
		{"sync", nil, uint32(unix.SECCOMP_RET_ERRNO)},
		{"fdatasync", nil, uint32(unix.SECCOMP_RET_ERRNO) | 5},
		{"openat", []uint64{0, 0, unix.O_RDWR | unix.O_DSYNC}, uint32(unix.SECCOMP_RET_ERRNO) | uint32(syscall.EINVAL)},
		{"openat", []uint64{0, 0, unix.O_RDWR}, retAllow},
		{"write", nil, retAllow},
	} {
		if got := x(x64, nr(t, sysAMD64, tc.name), tc.args...); got != tc.want {
			t.Errorf("%s: got %#x, want %#x", tc.name, got, tc.want)
		}
	}
}

func TestProfileErrors(t *testing.T) {
	for _, tc := range []struct {
		p    Profile
		want string
	}{
		{Profile{DefaultAction: Action(unix.SECCOMP_RET_TRACE)}, "default action: unsupported"},
		{Profile{DefaultAction: ActErrno(5000)}, "default action: unsupported"},
		{Profile{DefaultAction: ActAllow, Arches: []string{"vax"}}, `unknown architecture "vax"`},
		{Profile{DefaultAction: ActAllow, Rules: []Rule{{Action: ActAllow}}}, "rules[0]: the list of system call names is empty"},
		{Profile{DefaultAction: ActAllow, Rules: []Rule{{Names: []string{"read"}, Action: ActAllow}, {Names: []string{"mkdri", "read"}, Action: ActAllow}}}, `rules[1]: unknown system call "mkdri"`},
		{Profile{DefaultAction: ActAllow, Rules: []Rule{{Names: []string{"read"}, Action: ActAllow, Args: []ArgCmp{{Index: 6, Op: CmpEQ}}}}}, "rules[0]: args[0]: argument index 6 is out of range"},
		{Profile{DefaultAction: ActAllow, Rules: []Rule{{Names: []string{"read"}, Action: ActAllow, Args: []ArgCmp{{Index: 1, Op: CmpEQ}, {Index: 1, Op: CmpNE}}}}}, "rules[0]: args[1]: argument 1 is compared twice"},
		{Profile{DefaultAction: ActAllow, Rules: []Rule{{Names: []string{"read"}, Action: ActAllow, Args: []ArgCmp{{Index: 1}}}}}, "rules[0]: args[0]: unknown comparison 0"},
	} {
		_, err := tc.p.Compile("amd64")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.p, err, tc.want)
		}
	}
	for _, n := range []string{"SCMP_ACT_TRACE", "SCMP_ACT_NOTIFY", "SCMP_ACT_FOO", ""} {
		if _, err := ActionFromName(n); err == nil {
			t.Errorf("action %q accepted", n)
		}
	}
	if _, err := CmpFromName("SCMP_CMP_MASKED"); err == nil {
		t.Error("SCMP_CMP_MASKED accepted")
	}
	if a, err := ArchFromName("SCMP_ARCH_X86"); err != nil || a != "x86" {
		t.Errorf("SCMP_ARCH_X86: %q %v", a, err)
	}
	if _, err := ArchFromName("SCMP_ARCH_VAX"); err == nil {
		t.Error("SCMP_ARCH_VAX accepted")
	}
	if _, err := (&Profile{DefaultAction: ActAllow}).Compile("riscv64"); err == nil {
		t.Error("riscv64 compiled")
	}
}

// TestProfileLarge: many rules with argument comparisons still fit, and
// long branches jump correctly.
func TestProfileLarge(t *testing.T) {
	var rules []Rule
	for i, e := range sysAMD64 {
		if i%2 == 0 {
			rules = append(rules, Rule{Names: []string{e.name}, Action: ActErrno(uint32(i % 4000)), Args: []ArgCmp{{Index: uint8(i % 6), Op: CmpEQ, Value: uint64(i) << 31}}})
		}
	}
	p := &Profile{DefaultAction: ActAllow, Rules: rules}
	prog, err := p.Compile("amd64")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d rules: %d instructions", len(rules), len(prog))
	vm := newVM(t, prog)
	for i, e := range sysAMD64 {
		if i%2 != 0 {
			continue
		}
		args := make([]uint64, 6)
		args[i%6] = uint64(i) << 31
		want := uint32(unix.SECCOMP_RET_ERRNO) | uint32(i%4000)
		if got := run(t, vm, seccompData(unix.AUDIT_ARCH_X86_64, e.nr, args...)); got != want {
			t.Errorf("%s match: got %#x, want %#x", e.name, got, want)
		}
		args[i%6]++
		if got := run(t, vm, seccompData(unix.AUDIT_ARCH_X86_64, e.nr, args...)); got != retAllow {
			t.Errorf("%s no match: got %#x", e.name, got)
		}
	}
	// Too many for the kernel: a clear error.
	for i := 0; i < 4; i++ {
		p.Rules = append(p.Rules, rules...)
	}
	if _, err := p.Compile("amd64"); err == nil || !strings.Contains(err.Error(), "limit of 4096") {
		t.Errorf("huge profile: %v", err)
	}
}
