package seccomp

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Profile is a whole system call filter given as rules, as an OCI bundle's
// linux.seccomp describes it (libseccomp's model): a default action, the
// ABIs filtered besides the native one, and rules that give syscalls,
// optionally only with certain arguments, another action. It replaces the
// default filter (Filter) rather than editing it, as in systemd-nspawn.
//
// For each syscall the rules naming it are tried in the order given and
// the first whose argument comparisons all hold decides; when none does,
// DefaultAction applies, as it does to every syscall no rule names. A
// syscall of an ABI not in the profile kills the process.
type Profile struct {
	DefaultAction Action
	// Arches are extra ABIs to filter by libseccomp name ("x86", "x32",
	// "arm", ...; ArchFromName). The native ABI (x86-64 or AArch64) is
	// always filtered; ABIs the machine cannot run are ignored.
	Arches []string `json:",omitempty"`
	Rules  []Rule   `json:",omitempty"`
	// SuppressSync makes the @sync family succeed without doing anything
	// where the profile allows it, and refuses allowed opens with O_SYNC
	// or O_DSYNC (EINVAL), as --suppress-sync=yes does next to a bundle's
	// filter in nspawn.
	SuppressSync bool `json:",omitempty"`
}

// Action is a seccomp return value: SECCOMP_RET_* with its data (the errno
// of SECCOMP_RET_ERRNO).
type Action uint32

// Actions by libseccomp name.
const (
	ActAllow       = Action(unix.SECCOMP_RET_ALLOW)
	ActKillThread  = Action(unix.SECCOMP_RET_KILL_THREAD)
	ActKillProcess = Action(unix.SECCOMP_RET_KILL_PROCESS)
	ActTrap        = Action(unix.SECCOMP_RET_TRAP)
	ActLog         = Action(unix.SECCOMP_RET_LOG)
)

// ActErrno is the action that fails a syscall with errno (0..4095; 0 makes
// the syscall "succeed" without running).
func ActErrno(errno uint32) Action {
	return Action(unix.SECCOMP_RET_ERRNO | errno&unix.SECCOMP_RET_DATA)
}

// MaxErrno is the largest errno a syscall can fail with (the kernel's
// MAX_ERRNO).
const MaxErrno = 4095

// IsErrno reports whether a is SECCOMP_RET_ERRNO (with any errno).
func (a Action) IsErrno() bool {
	return uint32(a)&unix.SECCOMP_RET_ACTION_FULL == unix.SECCOMP_RET_ERRNO
}

// ActionFromName parses a libseccomp action name, as systemd-nspawn 252
// accepts them in OCI bundles: SCMP_ACT_ERRNO fails with EPERM (set
// another errno with ActErrno), SCMP_ACT_KILL is SCMP_ACT_KILL_THREAD.
// SCMP_ACT_TRACE and SCMP_ACT_NOTIFY are refused: they need a tracer or a
// supervisor, which a container does not have.
func ActionFromName(name string) (Action, error) {
	switch name {
	case "SCMP_ACT_ALLOW":
		return ActAllow, nil
	case "SCMP_ACT_ERRNO":
		return ActErrno(uint32(unix.EPERM)), nil
	case "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD":
		return ActKillThread, nil
	case "SCMP_ACT_KILL_PROCESS":
		return ActKillProcess, nil
	case "SCMP_ACT_TRAP":
		return ActTrap, nil
	case "SCMP_ACT_LOG":
		return ActLog, nil
	case "SCMP_ACT_TRACE", "SCMP_ACT_NOTIFY":
		return 0, fmt.Errorf("action %s is not supported: it needs a tracer or supervisor process, which netspawn (like systemd-nspawn) does not provide", name)
	}
	return 0, fmt.Errorf("unknown action %q (known: SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_KILL, SCMP_ACT_KILL_THREAD, SCMP_ACT_KILL_PROCESS, SCMP_ACT_TRAP, SCMP_ACT_LOG)", name)
}

// archNames maps libseccomp architecture names to the ones a Profile keeps.
var archNames = map[string]string{
	"SCMP_ARCH_NATIVE": "native", "SCMP_ARCH_X86_64": "x86_64", "SCMP_ARCH_X86": "x86", "SCMP_ARCH_X32": "x32",
	"SCMP_ARCH_AARCH64": "aarch64", "SCMP_ARCH_ARM": "arm",
	"SCMP_ARCH_MIPS": "mips", "SCMP_ARCH_MIPS64": "mips64", "SCMP_ARCH_MIPS64N32": "mips64n32",
	"SCMP_ARCH_MIPSEL": "mipsel", "SCMP_ARCH_MIPSEL64": "mipsel64", "SCMP_ARCH_MIPSEL64N32": "mipsel64n32",
	"SCMP_ARCH_PARISC": "parisc", "SCMP_ARCH_PARISC64": "parisc64",
	"SCMP_ARCH_PPC": "ppc", "SCMP_ARCH_PPC64": "ppc64", "SCMP_ARCH_PPC64LE": "ppc64le",
	"SCMP_ARCH_RISCV64": "riscv64", "SCMP_ARCH_S390": "s390", "SCMP_ARCH_S390X": "s390x",
}

// ArchFromName parses a libseccomp architecture name (SCMP_ARCH_X86 and
// the like, the list systemd-nspawn 252 accepts) into a Profile.Arches
// entry.
func ArchFromName(name string) (string, error) {
	if a, ok := archNames[name]; ok {
		return a, nil
	}
	known := make([]string, 0, len(archNames))
	for n := range archNames {
		known = append(known, n)
	}
	sort.Strings(known)
	return "", fmt.Errorf("unknown architecture %q (known: %s)", name, strings.Join(known, ", "))
}

// Rule gives the syscalls Names the action Action when all of Args hold.
type Rule struct {
	Names  []string
	Action Action
	Args   []ArgCmp `json:",omitempty"`
}

// CmpOp is a libseccomp argument comparison.
type CmpOp uint8

// The comparisons, unsigned, of a whole argument with ArgCmp.Value (for
// CmpMaskedEQ: whether the argument masked with Value equals ValueTwo).
const (
	CmpNE CmpOp = iota + 1
	CmpLT
	CmpLE
	CmpEQ
	CmpGE
	CmpGT
	CmpMaskedEQ
)

var cmpNames = map[string]CmpOp{
	"SCMP_CMP_NE": CmpNE, "SCMP_CMP_LT": CmpLT, "SCMP_CMP_LE": CmpLE, "SCMP_CMP_EQ": CmpEQ,
	"SCMP_CMP_GE": CmpGE, "SCMP_CMP_GT": CmpGT, "SCMP_CMP_MASKED_EQ": CmpMaskedEQ,
}

// CmpFromName parses a libseccomp comparison name (SCMP_CMP_EQ and the
// like).
func CmpFromName(name string) (CmpOp, error) {
	if op, ok := cmpNames[name]; ok {
		return op, nil
	}
	return 0, fmt.Errorf("unknown comparison %q (known: SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_EQ, SCMP_CMP_GE, SCMP_CMP_GT, SCMP_CMP_MASKED_EQ)", name)
}

// MaxArgs is the number of syscall arguments seccomp sees.
const MaxArgs = 6

// ArgCmp compares argument Index (0..5) of a syscall. On 64-bit ABIs the
// whole 64-bit register is compared, as libseccomp does (so a negative
// int argument must be given as its 64-bit two's complement, and its upper
// half is whatever the caller left there); on 32-bit ABIs (i386, ARM) only
// the low 32 bits of Value and ValueTwo count.
type ArgCmp struct {
	Index    uint8
	Op       CmpOp
	Value    uint64
	ValueTwo uint64 `json:",omitempty"`
}

// KnownName reports whether name is a syscall netspawn knows on some
// architecture.
func KnownName(name string) bool { return knownNames()[name] }

// Check validates the profile: known actions, syscall names, argument
// indexes and comparisons, at most one comparison per argument in a rule.
// Errors name the rule (rules[N]) and, where it helps, the argument
// (args[N]).
func (p *Profile) Check() error {
	if err := checkAction(p.DefaultAction); err != nil {
		return fmt.Errorf("default action: %w", err)
	}
	for _, a := range p.Arches {
		found := false
		for _, n := range archNames {
			found = found || n == a
		}
		if !found {
			return fmt.Errorf("unknown architecture %q", a)
		}
	}
	for i, r := range p.Rules {
		if err := r.check(); err != nil {
			return fmt.Errorf("rules[%d]: %w", i, err)
		}
	}
	return nil
}

func checkAction(a Action) error {
	switch a {
	case ActAllow, ActKillThread, ActKillProcess, ActTrap, ActLog:
		return nil
	}
	if a.IsErrno() && uint32(a)&unix.SECCOMP_RET_DATA <= MaxErrno {
		return nil
	}
	return fmt.Errorf("unsupported action %#x", uint32(a))
}

func (r *Rule) check() error {
	if len(r.Names) == 0 {
		return errors.New("the list of system call names is empty")
	}
	var unknown []string
	for _, n := range r.Names {
		if !knownNames()[n] {
			unknown = append(unknown, fmt.Sprintf("%q", n))
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("unknown system call %s", strings.Join(unknown, ", "))
	}
	if err := checkAction(r.Action); err != nil {
		return err
	}
	var seen [MaxArgs]bool
	for i, c := range r.Args {
		if c.Index >= MaxArgs {
			return fmt.Errorf("args[%d]: argument index %d is out of range 0..%d", i, c.Index, MaxArgs-1)
		}
		if seen[c.Index] {
			return fmt.Errorf("args[%d]: argument %d is compared twice in one rule (as libseccomp, netspawn takes one comparison per argument: write two rules)", i, c.Index)
		}
		seen[c.Index] = true
		if c.Op < CmpNE || c.Op > CmpMaskedEQ {
			return fmt.Errorf("args[%d]: unknown comparison %d", i, c.Op)
		}
	}
	return nil
}

// profileABI is one ABI a profile filters, with whether its syscall
// arguments are 64 bits wide.
type profileABI struct {
	abi
	wide bool
	// badFrom, when not 0, starts the numbers that belong to an ABI the
	// profile leaves out (x32 on x86-64): they kill, as a foreign
	// AUDIT_ARCH does.
	badFrom uint32
}

func (p *Profile) abis(arch string) ([]profileABI, error) {
	has := map[string]bool{}
	for _, a := range p.Arches {
		has[a] = true
	}
	switch arch {
	case "amd64":
		x64 := profileABI{abi: abi{unix.AUDIT_ARCH_X86_64, [][]sysEntry{sysAMD64}}, wide: true, badFrom: x32Bit}
		if has["x32"] {
			x64.tables, x64.badFrom = [][]sysEntry{sysAMD64, sysX32}, 0
		}
		out := []profileABI{x64}
		if has["x86"] {
			out = append(out, profileABI{abi: abi{unix.AUDIT_ARCH_I386, [][]sysEntry{sys386}}})
		}
		return out, nil
	case "arm64":
		out := []profileABI{{abi: abi{unix.AUDIT_ARCH_AARCH64, [][]sysEntry{sysARM64}}, wide: true}}
		if has["arm"] {
			out = append(out, profileABI{abi: abi{unix.AUDIT_ARCH_ARM, [][]sysEntry{sysARM}}})
		}
		return out, nil
	}
	return nil, fmt.Errorf("seccomp: unsupported architecture %q (supported: amd64, arm64)", arch)
}

// Compile checks the profile and turns it into a seccomp BPF program for
// arch ("amd64", "arm64"; "" is the running one): per ABI, a binary search
// over the syscall numbers as Filter.Compile does, whose leaves test the
// arguments where rules compare them.
func (p *Profile) Compile(arch string) ([]unix.SockFilter, error) {
	if err := p.Check(); err != nil {
		return nil, fmt.Errorf("seccomp profile: %w", err)
	}
	abis, err := p.abis(normArch(arch))
	if err != nil {
		return nil, err
	}
	prog := block{retK(unix.SECCOMP_RET_KILL_PROCESS)}
	for i := len(abis) - 1; i >= 0; i-- {
		a := abis[i]
		body := append(block{loadAbs(offNr)}, p.abiSearch(a)...)
		prog = ifJump(unix.BPF_JEQ, a.auditArch, body, prog)
	}
	prog = append(block{loadAbs(offArch)}, prog...)
	if len(prog) > maxInsns {
		return nil, fmt.Errorf("seccomp profile: program of %d instructions is longer than the kernel's limit of %d: use fewer rules with argument comparisons", len(prog), maxInsns)
	}
	return prog, nil
}

// leafSpan is a run of syscall numbers from start up to the next one's
// start, decided by leaves[leaf].
type leafSpan struct {
	start uint32
	leaf  int
}

// abiSearch is the search over one ABI's numbers, A holding the number.
func (p *Profile) abiSearch(a profileABI) block {
	rules := map[uint32][]*Rule{} // per number, in order
	names := map[uint32]string{}
	byName := map[string][]uint32{}
	for _, t := range a.tables {
		for _, e := range t {
			byName[e.name] = append(byName[e.name], e.nr)
			names[e.nr] = e.name
		}
	}
	for i := range p.Rules {
		r := &p.Rules[i]
		for _, n := range r.Names {
			for _, nr := range byName[n] {
				rules[nr] = append(rules[nr], r)
			}
		}
	}
	if p.SuppressSync {
		// Their treatment depends on the verdict: give them leaves.
		for _, n := range append(slices.Collect(maps.Keys(syncCalls)), "open", "openat") {
			for _, nr := range byName[n] {
				if _, ok := rules[nr]; !ok {
					rules[nr] = nil
				}
			}
		}
	}
	nrs := make([]uint32, 0, len(rules))
	for nr := range rules {
		nrs = append(nrs, nr)
	}
	sort.Slice(nrs, func(i, j int) bool { return nrs[i] < nrs[j] })

	var leaves []block
	shared := map[string]int{} // leaf index by code
	addLeaf := func(b block) int {
		key := fmt.Sprint(b)
		if i, ok := shared[key]; ok {
			return i
		}
		leaves = append(leaves, b)
		shared[key] = len(leaves) - 1
		return len(leaves) - 1
	}
	def := addLeaf(p.verdict(p.DefaultAction, ""))
	kill := addLeaf(block{retK(unix.SECCOMP_RET_KILL_PROCESS)})
	var spans []leafSpan
	add := func(start uint32, leaf int) {
		if n := len(spans); n > 0 && spans[n-1].leaf == leaf {
			return
		}
		spans = append(spans, leafSpan{start, leaf})
	}
	next := uint64(0)
	for _, nr := range nrs {
		if a.badFrom != 0 && nr >= a.badFrom {
			break
		}
		if uint64(nr) > next {
			add(uint32(next), def)
		}
		// Leaves jump only within themselves: equal ones are shared.
		add(nr, addLeaf(p.syscallCode(rules[nr], names[nr], a.wide)))
		next = uint64(nr) + 1
	}
	if a.badFrom != 0 {
		if uint64(a.badFrom) > next {
			add(uint32(next), def)
		}
		add(a.badFrom, kill)
	} else if next <= 0xffffffff {
		add(uint32(next), def)
	}
	out := make(block, 0, leafSearchSize(spans, leaves))
	return emitLeafSearch(out, spans, leaves)
}

// verdict is the code that returns action for syscall name: a return,
// except that with SuppressSync an allowed sync call succeeds without
// running and an allowed open checks its flags.
func (p *Profile) verdict(act Action, name string) block {
	if p.SuppressSync && act == ActAllow {
		switch {
		case syncCalls[name]:
			return block{retK(unix.SECCOMP_RET_ERRNO)}
		case name == "open":
			return openFlagCheck(offArg1, unix.SECCOMP_RET_ALLOW)
		case name == "openat":
			return openFlagCheck(offArg2, unix.SECCOMP_RET_ALLOW)
		}
	}
	return block{retK(uint32(act))}
}

// syscallCode decides one syscall: each rule in turn, the first whose
// comparisons all hold returning its action, else the default action. It
// is built from the end, so that a failed comparison jumps forward to the
// next rule over code already laid out.
func (p *Profile) syscallCode(rs []*Rule, name string, wide bool) block {
	code := p.verdict(p.DefaultAction, name)
	for i := len(rs) - 1; i >= 0; i-- {
		r := rs[i]
		if len(r.Args) == 0 {
			code = p.verdict(r.Action, name) // later rules are never reached
			continue
		}
		rule := p.verdict(r.Action, name)
		for j := len(r.Args) - 1; j >= 0; j-- {
			// On failure skip the rest of this rule: its later
			// comparisons and its verdict.
			rule = append(argCmp(r.Args[j], wide, len(rule)), rule...)
		}
		code = append(rule, code...)
	}
	return code
}

// Offsets of the halves of an argument in struct seccomp_data
// (little-endian).
func argLo(i uint8) uint32 { return offArg0 + 8*uint32(i) }
func argHi(i uint8) uint32 { return argLo(i) + 4 }

func jmp(op uint16, k uint32, jt, jf int) unix.SockFilter {
	return unix.SockFilter{Code: uint16(unix.BPF_JMP | op | unix.BPF_K), Jt: uint8(jt), Jf: uint8(jf), K: k}
}

func andK(k uint32) unix.SockFilter {
	return unix.SockFilter{Code: unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, K: k}
}

// argCmp is the code of one comparison: it falls through when c holds and
// otherwise jumps over its own end and then rest more instructions. With
// wide, the 64-bit argument is compared as its high and then low word.
func argCmp(c ArgCmp, wide bool, rest int) block {
	lo, hi := uint32(c.Value), uint32(c.Value>>32)
	lo2, hi2 := uint32(c.ValueTwo), uint32(c.ValueTwo>>32)
	// fail(n) is the jump offset from an instruction with n instructions
	// after it in this comparison.
	fail := func(n int) int { return n + rest }
	if !wide {
		ld := loadAbs(argLo(c.Index))
		switch c.Op {
		case CmpEQ:
			return block{ld, jmp(unix.BPF_JEQ, lo, 0, fail(0))}
		case CmpNE:
			return block{ld, jmp(unix.BPF_JEQ, lo, fail(0), 0)}
		case CmpGT:
			return block{ld, jmp(unix.BPF_JGT, lo, 0, fail(0))}
		case CmpGE:
			return block{ld, jmp(unix.BPF_JGE, lo, 0, fail(0))}
		case CmpLT:
			return block{ld, jmp(unix.BPF_JGE, lo, fail(0), 0)}
		case CmpLE:
			return block{ld, jmp(unix.BPF_JGT, lo, fail(0), 0)}
		case CmpMaskedEQ:
			return block{ld, andK(lo), jmp(unix.BPF_JEQ, lo2, 0, fail(0))}
		}
		return nil
	}
	ldHi, ldLo := loadAbs(argHi(c.Index)), loadAbs(argLo(c.Index))
	switch c.Op {
	case CmpEQ: // hi == vhi && lo == vlo
		return block{ldHi, jmp(unix.BPF_JEQ, hi, 0, fail(2)), ldLo, jmp(unix.BPF_JEQ, lo, 0, fail(0))}
	case CmpNE: // hi != vhi || lo != vlo
		return block{ldHi, jmp(unix.BPF_JEQ, hi, 0, 2), ldLo, jmp(unix.BPF_JEQ, lo, fail(0), 0)}
	case CmpGT: // hi > vhi || (hi == vhi && lo > vlo)
		return block{ldHi, jmp(unix.BPF_JGT, hi, 3, 0), jmp(unix.BPF_JEQ, hi, 0, fail(2)), ldLo, jmp(unix.BPF_JGT, lo, 0, fail(0))}
	case CmpGE: // hi > vhi || (hi == vhi && lo >= vlo)
		return block{ldHi, jmp(unix.BPF_JGT, hi, 3, 0), jmp(unix.BPF_JEQ, hi, 0, fail(2)), ldLo, jmp(unix.BPF_JGE, lo, 0, fail(0))}
	case CmpLT: // hi < vhi || (hi == vhi && lo < vlo)
		return block{ldHi, jmp(unix.BPF_JGT, hi, fail(3), 0), jmp(unix.BPF_JEQ, hi, 0, 2), ldLo, jmp(unix.BPF_JGE, lo, fail(0), 0)}
	case CmpLE: // hi < vhi || (hi == vhi && lo <= vlo)
		return block{ldHi, jmp(unix.BPF_JGT, hi, fail(3), 0), jmp(unix.BPF_JEQ, hi, 0, 2), ldLo, jmp(unix.BPF_JGT, lo, fail(0), 0)}
	case CmpMaskedEQ: // (arg & Value) == ValueTwo, word by word
		return block{ldHi, andK(hi), jmp(unix.BPF_JEQ, hi2, 0, fail(3)), ldLo, andK(lo), jmp(unix.BPF_JEQ, lo2, 0, fail(0))}
	}
	return nil
}

func leafSearchSize(s []leafSpan, leaves []block) int {
	if len(s) == 1 {
		return len(leaves[s[0].leaf])
	}
	mid := len(s) / 2
	no := leafSearchSize(s[:mid], leaves)
	n := 1 + no + leafSearchSize(s[mid:], leaves)
	if no > 255 {
		n++
	}
	return n
}

// emitLeafSearch is emitSearch with the leaves given as code.
func emitLeafSearch(out block, s []leafSpan, leaves []block) block {
	if len(s) == 1 {
		return append(out, leaves[s[0].leaf]...)
	}
	mid := len(s) / 2
	no := leafSearchSize(s[:mid], leaves)
	code := uint16(unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K)
	if no <= 255 {
		out = append(out, unix.SockFilter{Code: code, Jt: uint8(no), K: s[mid].start})
	} else {
		out = append(out,
			unix.SockFilter{Code: code, Jt: 0, Jf: 1, K: s[mid].start},
			unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JA, K: uint32(no)})
	}
	out = emitLeafSearch(out, s[:mid], leaves)
	return emitLeafSearch(out, s[mid:], leaves)
}
