package seccomp

import (
	"encoding/binary"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// nspawnDefaultCaps is nspawn's default bounding set (with --private-network).
const nspawnDefaultCaps = 1<<0 | 1<<1 | 1<<2 | 1<<3 | 1<<4 | 1<<5 | 1<<6 | 1<<7 | 1<<8 | 1<<9 |
	1<<10 | 1<<11 | 1<<12 | 1<<13 | 1<<15 | 1<<18 | 1<<19 | 1<<21 | 1<<22 | 1<<23 | 1<<24 | 1<<26 |
	1<<27 | 1<<28 | 1<<29 | 1<<30 | 1<<31

func TestGroupsResolve(t *testing.T) {
	g := Groups()
	for _, want := range []string{"@default", "@basic-io", "@file-system", "@mount", "@known", "@system-service"} {
		if len(g[want]) == 0 {
			t.Errorf("group %s missing or empty", want)
		}
	}
	for name, members := range g {
		if !strings.HasPrefix(name, "@") {
			t.Errorf("group name %q lacks @", name)
		}
		if GroupHelp(name) == "" {
			t.Errorf("group %s has no help text", name)
		}
		for _, m := range members {
			if !validItem(m) {
				t.Errorf("group %s: member %q is neither a group nor a known syscall", name, m)
			}
		}
	}
	for _, it := range defaultItems {
		for _, w := range words(it.name) {
			if !validItem(w) {
				t.Errorf("default item %q unknown", w)
			}
		}
	}
}

func TestApplyErrors(t *testing.T) {
	for spec, want := range map[string][]string{
		"read foo_bar @nope":  {"foo_bar", "@nope"},
		"~mount frobnicate":   {"frobnicate"},
		"read ~write":         {"must come first"},
		"@Default":            {"@Default"},
		"reboot kexec_load x": {"unknown system call or group: x"},
	} {
		f := Default(0)
		before := f.Allowed()
		err := f.Apply(spec)
		if err == nil {
			t.Errorf("Apply(%q) = nil, want an error", spec)
			continue
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Apply(%q) = %q, want it to name %q", spec, err, w)
			}
		}
		if after := f.Allowed(); strings.Join(after, " ") != strings.Join(before, " ") {
			t.Errorf("Apply(%q) failed but changed the filter", spec)
		}
	}
	f := Default(0)
	for _, ok := range []string{"", "  ", "~", "riscv_hwprobe", "@obsolete", "~@known"} {
		if err := f.Apply(ok); err != nil {
			t.Errorf("Apply(%q) = %v", ok, err)
		}
	}
}

func allowedMap(f *Filter) map[string]bool {
	m := map[string]bool{}
	for _, n := range f.Allowed() {
		m[n] = true
	}
	return m
}

func TestDefaultAndCaps(t *testing.T) {
	none := allowedMap(Default(0))
	for _, n := range []string{"read", "execve", "mount", "pivot_root", "clone3", "socket", "ioctl", "sethostname", "io_uring_setup", "seccomp"} {
		if !none[n] {
			t.Errorf("%s should be allowed without capabilities", n)
		}
	}
	for _, n := range []string{"reboot", "kexec_load", "swapon", "init_module", "ptrace", "settimeofday", "iopl",
		"mlock", "acct", "syslog", "vhangup", "bpf", "keyctl", "perf_event_open", "open_by_handle_at", "modify_ldt", "pkey_alloc", "uselib"} {
		if none[n] {
			t.Errorf("%s should be denied without capabilities", n)
		}
	}
	for c, names := range map[int][]string{
		capSysBoot: {"reboot"}, capSysModule: {"init_module", "finit_module", "delete_module"},
		capSysTime: {"settimeofday", "clock_adjtime"}, capSysRawIO: {"iopl", "ioperm"}, capIPCLock: {"mlock", "mlockall"},
		capSysPtrace: {"ptrace", "process_vm_readv"}, capSysPacct: {"acct"}, capSyslog: {"syslog"}, capSysTTYConfig: {"vhangup"},
	} {
		m := allowedMap(Default(1 << uint(c)))
		for _, n := range names {
			if !m[n] {
				t.Errorf("%s should be allowed with capability %d", n, c)
			}
		}
		if m["kexec_load"] || m["swapon"] {
			t.Errorf("capability %d must not allow kexec_load or swapon", c)
		}
	}
	d := allowedMap(Default(nspawnDefaultCaps))
	if !d["reboot"] || !d["ptrace"] || d["init_module"] || d["settimeofday"] {
		t.Errorf("nspawn's default capabilities: reboot=%v ptrace=%v init_module=%v settimeofday=%v",
			d["reboot"], d["ptrace"], d["init_module"], d["settimeofday"])
	}
}

func TestApplyAllowDeny(t *testing.T) {
	a := Default(0)
	b := Default(0)
	specs := []string{"swapon @keyring", "~@mount uname swapoff", "~keyctl"}
	for _, s := range specs {
		if err := a.Apply(s); err != nil {
			t.Fatal(err)
		}
	}
	for i := len(specs) - 1; i >= 0; i-- {
		if err := b.Apply(specs[i]); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []*Filter{a, b} {
		m := allowedMap(f)
		for n, want := range map[string]bool{"swapon": true, "add_key": true, "keyctl": false, "mount": false,
			"umount2": false, "uname": false, "swapoff": false, "read": true} {
			if m[n] != want {
				t.Errorf("%s allowed=%v, want %v", n, m[n], want)
			}
		}
	}
}

// seccompData lays out struct seccomp_data for x/net/bpf's VM, which loads
// 32-bit words big-endian: each word is stored so the VM reads the value the
// kernel would.
func seccompData(arch, nr uint32, args ...uint64) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[0:], nr)
	binary.BigEndian.PutUint32(b[4:], arch)
	for i, a := range args {
		binary.BigEndian.PutUint32(b[16+8*i:], uint32(a))
		binary.BigEndian.PutUint32(b[20+8*i:], uint32(a>>32))
	}
	return b
}

func newVM(t *testing.T, prog []unix.SockFilter) *bpf.VM {
	t.Helper()
	raw := make([]bpf.RawInstruction, len(prog))
	for i, p := range prog {
		raw[i] = bpf.RawInstruction{Op: p.Code, Jt: p.Jt, Jf: p.Jf, K: p.K}
	}
	insns, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatalf("program does not disassemble")
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatalf("program rejected by the BPF VM: %v", err)
	}
	return vm
}

func run(t *testing.T, vm *bpf.VM, data []byte) uint32 {
	t.Helper()
	r, err := vm.Run(data)
	if err != nil {
		t.Fatalf("VM: %v", err)
	}
	return uint32(r)
}

var (
	retAllow  = uint32(unix.SECCOMP_RET_ALLOW)
	retEPERM  = uint32(unix.SECCOMP_RET_ERRNO) | uint32(syscall.EPERM)
	retENOSYS = uint32(unix.SECCOMP_RET_ERRNO) | uint32(syscall.ENOSYS)
	retNoAF   = uint32(unix.SECCOMP_RET_ERRNO) | uint32(syscall.EAFNOSUPPORT)
	retKill   = uint32(unix.SECCOMP_RET_KILL_PROCESS)
)

// TestCompileVM runs every syscall number of every ABI through the compiled
// program and checks its verdict against the allow-list.
func TestCompileVM(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64"} {
		for _, tc := range []struct {
			name string
			caps uint64
			spec []string
		}{
			{"nocaps", 0, nil},
			{"nspawn-default-caps", nspawnDefaultCaps, nil},
			{"edited", nspawnDefaultCaps, []string{"swapon @keyring", "~@mount ptrace"}},
			{"deny-socket", 0, []string{"~socket"}},
		} {
			t.Run(arch+"/"+tc.name, func(t *testing.T) {
				f := Default(tc.caps)
				for _, s := range tc.spec {
					if err := f.Apply(s); err != nil {
						t.Fatal(err)
					}
				}
				prog, err := f.Compile(arch)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%d instructions", len(prog))
				if len(prog) > 1500 {
					t.Errorf("program of %d instructions: the search is not compact", len(prog))
				}
				allowed := allowedMap(f)
				vm := newVM(t, prog)
				for _, a := range archABIs[arch] {
					known := map[uint32]bool{}
					for _, tab := range a.tables {
						for _, e := range tab {
							known[e.nr] = true
							want := retEPERM
							if postV255[e.name] {
								want = retENOSYS
							}
							if allowed[e.name] {
								want = retAllow
							}
							if got := run(t, vm, seccompData(a.auditArch, e.nr)); got != want {
								t.Errorf("arch %#x %s (%d): got %#x, want %#x", a.auditArch, e.name, e.nr, got, want)
							}
						}
					}
					for _, nr := range []uint32{600, 1000, 0x3fffffff, 0x40000400, 0x7fffffff, 0xffffffff} {
						if known[nr] {
							continue
						}
						if got := run(t, vm, seccompData(a.auditArch, nr)); got != retENOSYS {
							t.Errorf("arch %#x unknown number %#x: got %#x, want ENOSYS", a.auditArch, nr, got)
						}
					}
					for _, tab := range a.tables {
						for _, e := range tab {
							if e.name != "socket" {
								continue
							}
							audit := run(t, vm, seccompData(a.auditArch, e.nr, unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_AUDIT))
							route := run(t, vm, seccompData(a.auditArch, e.nr, unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_ROUTE))
							inet := run(t, vm, seccompData(a.auditArch, e.nr, 1<<40|unix.AF_INET, unix.SOCK_STREAM, unix.NETLINK_AUDIT))
							wantAudit, wantOther := retNoAF, retAllow
							if !allowed["socket"] {
								wantAudit, wantOther = retEPERM, retEPERM
							}
							if audit != wantAudit || route != wantOther || inet != wantOther {
								t.Errorf("arch %#x socket: audit %#x route %#x inet %#x", a.auditArch, audit, route, inet)
							}
						}
					}
				}
				for _, foreign := range []uint32{unix.AUDIT_ARCH_PPC64LE, unix.AUDIT_ARCH_RISCV64, unix.AUDIT_ARCH_AARCH64, unix.AUDIT_ARCH_X86_64} {
					native := false
					for _, a := range archABIs[arch] {
						native = native || a.auditArch == foreign
					}
					if got := run(t, vm, seccompData(foreign, 0)); !native && got != retKill {
						t.Errorf("foreign arch %#x: got %#x, want KILL_PROCESS", foreign, got)
					}
				}
			})
		}
	}
}

// TestX32 checks that on x86-64 an x32 number is judged by the x32 table.
func TestX32(t *testing.T) {
	prog, err := Default(0).Compile("amd64")
	if err != nil {
		t.Fatal(err)
	}
	vm := newVM(t, prog)
	for nr, want := range map[uint32]uint32{
		x32Bit:       retAllow,  // read (0)
		x32Bit | 169: retEPERM,  // reboot
		x32Bit | 246: retENOSYS, // kexec_load is 528 on x32; 246 is no x32 syscall
		x32Bit | 528: retEPERM,  // kexec_load
		x32Bit | 512: retAllow,  // rt_sigaction
		169:          retEPERM,  // reboot, 64-bit
	} {
		if got := run(t, vm, seccompData(unix.AUDIT_ARCH_X86_64, nr)); got != want {
			t.Errorf("x86-64 nr %#x: got %#x, want %#x", nr, got, want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	if _, err := Default(0).Compile("mips"); err == nil || !strings.Contains(err.Error(), "mips") {
		t.Errorf("Compile(mips) = %v", err)
	}
	f := Default(0)
	f.Errno = 0
	if _, err := f.Compile("amd64"); err == nil {
		t.Error("Compile with errno 0 succeeded")
	}
	f.Errno = syscall.EACCES
	prog, err := f.Compile("arm64")
	if err != nil {
		t.Fatal(err)
	}
	if got := run(t, newVM(t, prog), seccompData(unix.AUDIT_ARCH_AARCH64, 142)); got != uint32(unix.SECCOMP_RET_ERRNO)|uint32(syscall.EACCES) {
		t.Errorf("reboot with Errno=EACCES: got %#x", got)
	}
}

func TestCacheDistinguishes(t *testing.T) {
	a, _ := Default(0).Compile("amd64")
	b, _ := Default(1 << capSysBoot).Compile("amd64")
	c, _ := Default(0).Compile("amd64")
	if &a[0] == &b[0] {
		t.Error("different filters share a cached program")
	}
	if &a[0] != &c[0] {
		t.Error("the same filter was compiled twice")
	}
}

func BenchmarkCompileDefault(b *testing.B) {
	abis := archABIs[normArch("")]
	for b.Loop() {
		if _, err := Default(nspawnDefaultCaps).compile(abis, syscall.EPERM); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompileCached(b *testing.B) {
	for b.Loop() {
		if _, err := Default(nspawnDefaultCaps).Compile(""); err != nil {
			b.Fatal(err)
		}
	}
}

func TestAvailable(t *testing.T) {
	t.Setenv("SYSTEMD_SECCOMP", "0")
	if Available() {
		t.Error("Available with SYSTEMD_SECCOMP=0")
	}
	t.Setenv("NETSPAWN_SECCOMP", "1")
	if !Available() {
		t.Error("NETSPAWN_SECCOMP=1 should win over SYSTEMD_SECCOMP=0 (and this kernel has seccomp)")
	}
	t.Setenv("NETSPAWN_SECCOMP", "off")
	if Available() {
		t.Error("Available with NETSPAWN_SECCOMP=off")
	}
}

// step runs prog on little-endian seccomp_data as the kernel lays it out,
// for the instructions the compiler emits, and counts the instructions
// executed. It is a second, independent interpreter next to x/net/bpf's.
func step(t *testing.T, prog []unix.SockFilter, data []byte) (ret uint32, steps int) {
	t.Helper()
	var a uint32
	for pc := 0; pc < len(prog); pc++ {
		steps++
		in := prog[pc]
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			a = binary.LittleEndian.Uint32(data[in.K:])
		case unix.BPF_JMP | unix.BPF_JA:
			pc += int(in.K)
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K:
			cond := a == in.K
			if in.Code&0xf0 == unix.BPF_JGE {
				cond = a >= in.K
			}
			if cond {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case unix.BPF_RET | unix.BPF_K:
			return in.K, steps
		default:
			t.Fatalf("instruction %d: unexpected opcode %#x", pc, in.Code)
		}
	}
	t.Fatal("program ran off its end")
	return 0, 0
}

func TestPathLength(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64"} {
		prog, err := Default(nspawnDefaultCaps).Compile(arch)
		if err != nil {
			t.Fatal(err)
		}
		vm := newVM(t, prog)
		worst := 0
		for _, a := range archABIs[arch] {
			for _, tab := range a.tables {
				for _, e := range tab {
					d := make([]byte, 64)
					binary.LittleEndian.PutUint32(d[0:], e.nr)
					binary.LittleEndian.PutUint32(d[4:], a.auditArch)
					got, n := step(t, prog, d)
					if want := run(t, vm, seccompData(a.auditArch, e.nr)); got != want {
						t.Errorf("%s %s: interpreters disagree: %#x vs %#x", arch, e.name, got, want)
					}
					worst = max(worst, n)
				}
			}
		}
		t.Logf("%s: %d instructions, at most %d executed per syscall", arch, len(prog), worst)
		if worst > 24 {
			t.Errorf("%s: a syscall runs %d instructions: the search is not logarithmic", arch, worst)
		}
	}
}

// TestTablesOrdered checks what spans relies on: each table is sorted, and
// each table of an ABI lies above the one before it.
func TestTablesOrdered(t *testing.T) {
	for arch, abis := range archABIs {
		for _, a := range abis {
			last := int64(-1)
			for _, tab := range a.tables {
				for _, e := range tab {
					if int64(e.nr) <= last {
						t.Errorf("%s %#x: %s (%d) not above %d", arch, a.auditArch, e.name, e.nr, last)
					}
					last = int64(e.nr)
				}
			}
		}
	}
	for a, n := range leafSize {
		if got := len(leaf(a, map[action]uint32{actAllow: 1})); got != n {
			t.Errorf("leaf of action %d is %d instructions, leafSize says %d", a, got, n)
		}
	}
}

// TestPostV255 checks that syscalls newer than nspawn v255 fail with ENOSYS
// unless allowed by name.
func TestPostV255(t *testing.T) {
	nr := uint32(0)
	for _, e := range sysAMD64 {
		if e.name == "getxattrat" {
			nr = e.nr
		}
	}
	if nr == 0 {
		t.Fatal("getxattrat missing from the amd64 table")
	}
	for spec, want := range map[string]uint32{"": retENOSYS, "getxattrat": retAllow, "~getxattrat": retENOSYS} {
		f := Default(0)
		if err := f.Apply(spec); err != nil {
			t.Fatal(err)
		}
		prog, err := f.Compile("amd64")
		if err != nil {
			t.Fatal(err)
		}
		if got := run(t, newVM(t, prog), seccompData(unix.AUDIT_ARCH_X86_64, nr)); got != want {
			t.Errorf("spec %q: getxattrat got %#x, want %#x", spec, got, want)
		}
	}
	for n := range postV255 {
		if !knownNames()[n] {
			t.Errorf("postV255 lists %s, which no table has", n)
		}
	}
}

// TestSuppressSync checks --suppress-sync: the @sync family succeeds
// without running, opens with O_SYNC or O_DSYNC fail with EINVAL, other
// opens and every other verdict are what they are without it, and a sync
// call the filter denies stays denied.
func TestSuppressSync(t *testing.T) {
	retOK := uint32(unix.SECCOMP_RET_ERRNO)
	retEINVAL := uint32(unix.SECCOMP_RET_ERRNO) | uint32(syscall.EINVAL)
	for _, arch := range []string{"amd64", "arm64"} {
		plain, err := Default(nspawnDefaultCaps).Compile(arch)
		if err != nil {
			t.Fatal(err)
		}
		f := Default(nspawnDefaultCaps)
		f.SuppressSync = true
		prog, err := f.Compile(arch)
		if err != nil {
			t.Fatal(err)
		}
		denied := Default(nspawnDefaultCaps)
		denied.SuppressSync = true
		if err := denied.Apply("~fsync"); err != nil {
			t.Fatal(err)
		}
		deniedProg, err := denied.Compile(arch)
		if err != nil {
			t.Fatal(err)
		}
		vm, plainVM, deniedVM := newVM(t, prog), newVM(t, plain), newVM(t, deniedProg)
		for _, a := range archABIs[arch] {
			seen := map[string]bool{}
			for _, tab := range a.tables {
				for _, e := range tab {
					d := seccompData(a.auditArch, e.nr, 3, unix.O_WRONLY|unix.O_SYNC, unix.O_WRONLY|unix.O_DSYNC)
					got := run(t, vm, d)
					switch {
					case syncCalls[e.name]:
						seen[e.name] = true
						if got != retOK {
							t.Errorf("%s %#x %s: %#x, want success without the call", arch, a.auditArch, e.name, got)
						}
						if e.name == "fsync" && run(t, deniedVM, d) != retEPERM {
							t.Errorf("%s %#x: a denied fsync was let through", arch, a.auditArch)
						}
					case e.name == "open" || e.name == "openat":
						seen[e.name] = true
						if got != retEINVAL {
							t.Errorf("%s %#x %s with O_SYNC/O_DSYNC: %#x, want EINVAL", arch, a.auditArch, e.name, got)
						}
						if ok := run(t, vm, seccompData(a.auditArch, e.nr, 3, unix.O_RDWR|unix.O_CREAT, unix.O_RDWR|unix.O_CREAT)); ok != retAllow {
							t.Errorf("%s %#x %s without sync flags: %#x, want allowed", arch, a.auditArch, e.name, ok)
						}
					default:
						if want := run(t, plainVM, d); got != want {
							t.Errorf("%s %#x %s: %#x with --suppress-sync, %#x without", arch, a.auditArch, e.name, got, want)
						}
					}
				}
			}
			if !seen["fsync"] || !seen["openat"] {
				t.Errorf("%s %#x: fsync or openat not in the tables", arch, a.auditArch)
			}
		}
	}
}
