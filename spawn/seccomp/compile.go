package seccomp

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Offsets into struct seccomp_data (linux/seccomp.h), little-endian on
// every architecture supported here.
const (
	offNr   = 0
	offArch = 4
	offArg0 = 16 // low 32 bits of args[0]
	offArg1 = 24 // low 32 bits of args[1]
	offArg2 = 32 // low 32 bits of args[2]
	// oDSYNC is O_DSYNC on every ABI here (x86 and the generic one); O_SYNC
	// is __O_SYNC|O_DSYNC, so testing this bit catches both.
	oDSYNC   = 0x1000
	maxInsns = 4096 // BPF_MAXINSNS
)

// action is what one syscall number gets.
type action uint8

const (
	actUnknown action = iota // not in our tables, or newer than nspawn v255: ENOSYS
	actDeny                  // known, not allowed: Filter.Errno
	actAllow
	actSocket // allowed socket(2), but never for NETLINK_AUDIT
	// With SuppressSync:
	actSync      // the @sync family: succeeds without doing anything
	actOpenFlag1 // open(2): EINVAL with O_SYNC or O_DSYNC in args[1], else allowed
	actOpenFlag2 // openat(2): the same for args[2]
)

// span is a run of syscall numbers from start up to the next span's start.
type span struct {
	start uint32
	act   action
}

var cache sync.Map // cache key -> []unix.SockFilter

// Compile turns the filter into a seccomp BPF program for arch ("amd64" or
// "arm64"; "" is the running architecture). The program is a binary search
// over runs of syscall numbers with the same verdict, about 2·log2(runs)
// instructions per syscall. The default filters come precompiled
// (precompiled.go); other results are cached: the same filter compiles
// once per process. The returned slice must not be modified.
func (f *Filter) Compile(arch string) ([]unix.SockFilter, error) {
	arch = normArch(arch)
	abis, ok := archABIs[arch]
	if !ok {
		return nil, fmt.Errorf("seccomp: unsupported architecture %q (supported: amd64, arm64)", arch)
	}
	errno := f.Errno
	if errno == 0 || errno > unix.SECCOMP_RET_DATA {
		return nil, fmt.Errorf("seccomp: errno %d out of range", errno)
	}
	if p, ok := f.precompiled(arch); ok {
		return p, nil
	}
	key := f.cacheKey(arch)
	if p, ok := cache.Load(key); ok {
		return p.([]unix.SockFilter), nil
	}
	prog, err := f.compile(abis, errno)
	if err != nil {
		return nil, err
	}
	p, _ := cache.LoadOrStore(key, prog)
	return p.([]unix.SockFilter), nil
}

// compile builds the program, without the cache.
func (f *Filter) compile(abis []abi, errno syscall.Errno) ([]unix.SockFilter, error) {
	allowed := f.allowedSet()
	// Verdicts as return values.
	ret := map[action]uint32{
		actUnknown: unix.SECCOMP_RET_ERRNO | uint32(syscall.ENOSYS),
		actDeny:    unix.SECCOMP_RET_ERRNO | uint32(errno),
		actAllow:   unix.SECCOMP_RET_ALLOW,
		actSync:    unix.SECCOMP_RET_ERRNO, // errno 0: the call "succeeds"
	}
	// Per ABI: load the number, search it. Unknown AUDIT_ARCH: kill.
	prog := block{retK(unix.SECCOMP_RET_KILL_PROCESS)}
	for i := len(abis) - 1; i >= 0; i-- {
		a := abis[i]
		body := append(block{loadAbs(offNr)}, search(spans(a.tables, allowed, f.SuppressSync), ret)...)
		prog = ifJump(unix.BPF_JEQ, a.auditArch, body, prog)
	}
	prog = append(block{loadAbs(offArch)}, prog...)
	if len(prog) > maxInsns {
		return nil, fmt.Errorf("seccomp: program of %d instructions is longer than the kernel's limit of %d", len(prog), maxInsns)
	}
	return prog, nil
}

func (f *Filter) cacheKey(arch string) string {
	var b strings.Builder
	b.WriteString(arch)
	b.WriteByte('|')
	b.WriteString(strconv.FormatUint(f.caps, 16))
	b.WriteByte('|')
	b.WriteString(strconv.Itoa(int(f.Errno)))
	b.WriteString(strconv.FormatBool(f.SuppressSync))
	b.WriteByte('|')
	b.WriteString(strings.Join(f.allow, " "))
	b.WriteByte('|')
	b.WriteString(strings.Join(f.deny, " "))
	return b.String()
}

// spans turns the tables of one ABI into runs covering all 2^32 numbers.
// The tables are sorted by number and each lies above the one before it
// (checked by a test), so they are walked in order without copying.
func spans(tables [][]sysEntry, allowed map[string]bool, suppressSync bool) []span {
	out := make([]span, 0, 256)
	add := func(start uint32, a action) {
		if n := len(out); n > 0 && out[n-1].act == a && a != actSocket {
			return // same verdict as the run before: extend it
		}
		out = append(out, span{start, a})
	}
	next := uint64(0) // first number not yet covered
	for _, t := range tables {
		for _, e := range t {
			if uint64(e.nr) > next {
				add(uint32(next), actUnknown)
			}
			a := actDeny
			if postV255[e.name] {
				a = actUnknown
			}
			if allowed[e.name] {
				a = actAllow
				switch {
				case e.name == "socket":
					a = actSocket
				case !suppressSync:
				case syncCalls[e.name]:
					a = actSync
				case e.name == "open":
					a = actOpenFlag1
				case e.name == "openat":
					a = actOpenFlag2
				}
			}
			add(e.nr, a)
			next = uint64(e.nr) + 1
		}
	}
	if next <= 0xffffffff {
		add(uint32(next), actUnknown)
	}
	return out
}

// block is straight-line BPF whose every path ends in a return, so blocks
// compose by concatenation.
type block []unix.SockFilter

func loadAbs(off uint32) unix.SockFilter {
	return unix.SockFilter{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: off}
}

func retK(v uint32) unix.SockFilter {
	return unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: v}
}

// ifJump returns code for "if A <op> k then yes else no". Conditional jumps
// reach at most 255 instructions; past that the true branch goes through
// an unconditional jump, which reaches anywhere.
func ifJump(op uint16, k uint32, yes, no block) block {
	code := unix.BPF_JMP | op | unix.BPF_K
	out := make(block, 0, len(yes)+len(no)+2)
	if len(no) <= 255 {
		out = append(out, unix.SockFilter{Code: uint16(code), Jt: uint8(len(no)), Jf: 0, K: k})
	} else {
		out = append(out,
			unix.SockFilter{Code: uint16(code), Jt: 0, Jf: 1, K: k},
			unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JA, K: uint32(len(no))})
	}
	out = append(out, no...)
	return append(out, yes...)
}

// search emits a binary search over the runs, A holding the number. The
// code is written into one buffer: the size of each subtree is computed
// first, so that jumps are known before the code they skip.
func search(s []span, ret map[action]uint32) block {
	out := make(block, 0, searchSize(s))
	return emitSearch(out, s, ret)
}

// leaf is the code that decides a run's verdict: a return, or for the
// calls whose arguments matter, a check of them.
func leaf(a action, ret map[action]uint32) block {
	switch a {
	case actSocket:
		return socketCheck(ret[actAllow])
	case actOpenFlag1:
		return openFlagCheck(offArg1, ret[actAllow])
	case actOpenFlag2:
		return openFlagCheck(offArg2, ret[actAllow])
	}
	return block{retK(ret[a])}
}

// leafSize is the length of each action's leaf (the verdicts do not change
// it).
var leafSize = map[action]int{
	actSocket:    len(leaf(actSocket, map[action]uint32{})),
	actOpenFlag1: len(leaf(actOpenFlag1, map[action]uint32{})),
	actOpenFlag2: len(leaf(actOpenFlag2, map[action]uint32{})),
}

func searchSize(s []span) int {
	if len(s) == 1 {
		if n, ok := leafSize[s[0].act]; ok {
			return n
		}
		return 1
	}
	mid := len(s) / 2
	no := searchSize(s[:mid])
	n := 1 + no + searchSize(s[mid:])
	if no > 255 {
		n++ // the unconditional jump of a long false branch
	}
	return n
}

func emitSearch(out block, s []span, ret map[action]uint32) block {
	if len(s) == 1 {
		return append(out, leaf(s[0].act, ret)...)
	}
	// Same layout as ifJump: test, false branch (lower runs), true branch.
	mid := len(s) / 2
	no := searchSize(s[:mid])
	code := uint16(unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K)
	if no <= 255 {
		out = append(out, unix.SockFilter{Code: code, Jt: uint8(no), K: s[mid].start})
	} else {
		out = append(out,
			unix.SockFilter{Code: code, Jt: 0, Jf: 1, K: s[mid].start},
			unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JA, K: uint32(no)})
	}
	out = emitSearch(out, s[:mid], ret)
	return emitSearch(out, s[mid:], ret)
}

// openFlagCheck refuses opens asking for synchronous writes (O_SYNC,
// O_DSYNC) with EINVAL, as nspawn's --suppress-sync does, and allows the
// rest. The flags are the low word of the argument at off.
func openFlagCheck(off uint32, allow uint32) block {
	sync := block{retK(unix.SECCOMP_RET_ERRNO | uint32(syscall.EINVAL))}
	return append(block{loadAbs(off)}, ifJump(unix.BPF_JSET, oDSYNC, sync, block{retK(allow)})...)
}

// socketCheck refuses audit netlink sockets and allows every other socket.
func socketCheck(allow uint32) block {
	audit := block{retK(unix.SECCOMP_RET_ERRNO | uint32(syscall.EAFNOSUPPORT))}
	other := block{retK(allow)}
	isAudit := append(block{loadAbs(offArg2)}, ifJump(unix.BPF_JEQ, unix.NETLINK_AUDIT, audit, other)...)
	return append(block{loadAbs(offArg0)}, ifJump(unix.BPF_JEQ, unix.AF_NETLINK, isAudit, other)...)
}
