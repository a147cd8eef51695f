package devpolicy

import (
	"encoding/binary"
	"fmt"
)

// Insn is one eBPF instruction as the kernel reads it (struct bpf_insn).
type Insn struct {
	Code uint8
	Regs uint8 // the destination register in one nibble, the source in the other
	Off  int16
	Imm  int32
}

// The opcodes the program uses (linux/bpf.h).
const (
	opLoadW  = 0x61 // BPF_LDX | BPF_MEM | BPF_W: dst = *(u32 *)(src + off)
	opMovX   = 0xbf // BPF_ALU64 | BPF_MOV | BPF_X: dst = src
	opMovK   = 0xb7 // BPF_ALU64 | BPF_MOV | BPF_K: dst = imm
	opAndK   = 0x57 // BPF_ALU64 | BPF_AND | BPF_K: dst &= imm
	opRshK   = 0x77 // BPF_ALU64 | BPF_RSH | BPF_K: dst >>= imm
	opJneK   = 0x55 // BPF_JMP | BPF_JNE | BPF_K: if dst != imm goto +off
	opJsetK  = 0x45 // BPF_JMP | BPF_JSET | BPF_K: if dst & imm goto +off
	opExit   = 0x95 // BPF_JMP | BPF_EXIT: return r0
	devBlock = 1    // BPF_DEVCG_DEV_BLOCK
	devChar  = 2    // BPF_DEVCG_DEV_CHAR
)

// Registers the program keeps the request in.
const (
	rRet    = 0
	rCtx    = 1 // struct bpf_cgroup_dev_ctx *
	rAccess = 2 // BPF_DEVCG_ACC_* bits
	rType   = 3 // BPF_DEVCG_DEV_*
	rMajor  = 4
	rMinor  = 5
)

// bitfield order of bpf_insn's dst_reg:4, src_reg:4 on this host.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

func regs(dst, src uint8) uint8 {
	if littleEndian {
		return dst | src<<4
	}
	return dst<<4 | src
}

func (in Insn) dst() uint8 {
	if littleEndian {
		return in.Regs & 0xf
	}
	return in.Regs >> 4
}

func (in Insn) src() uint8 {
	if littleEndian {
		return in.Regs >> 4
	}
	return in.Regs & 0xf
}

// Program compiles rules into a cgroup device program: it returns 1 (allow)
// when a rule allows the request, 0 (refuse: EPERM) otherwise. The kernel
// hands it struct bpf_cgroup_dev_ctx { u32 access_type (access << 16 |
// type); u32 major; u32 minor; }.
func Program(rules []Rule) ([]Insn, error) {
	p := []Insn{
		{Code: opLoadW, Regs: regs(rAccess, rCtx), Off: 0},
		{Code: opMovX, Regs: regs(rType, rAccess)},
		{Code: opAndK, Regs: regs(rType, 0), Imm: 0xffff},
		{Code: opRshK, Regs: regs(rAccess, 0), Imm: 16},
		{Code: opLoadW, Regs: regs(rMajor, rCtx), Off: 4},
		{Code: opLoadW, Regs: regs(rMinor, rCtx), Off: 8},
	}
	for _, r := range rules {
		if err := r.Validate(); err != nil {
			return nil, err
		}
		if r.Access == 0 {
			continue // allows nothing
		}
		var block []Insn
		switch r.Type {
		case Char:
			block = append(block, Insn{Code: opJneK, Regs: regs(rType, 0), Imm: devChar})
		case Block:
			block = append(block, Insn{Code: opJneK, Regs: regs(rType, 0), Imm: devBlock})
		}
		if r.Major != AnyNumber {
			block = append(block, Insn{Code: opJneK, Regs: regs(rMajor, 0), Imm: int32(r.Major)})
		}
		if r.Minor != AnyNumber {
			block = append(block, Insn{Code: opJneK, Regs: regs(rMinor, 0), Imm: int32(r.Minor)})
		}
		if denied := RWM &^ r.Access; denied != 0 {
			// Any access the rule does not give: not this rule.
			block = append(block, Insn{Code: opJsetK, Regs: regs(rAccess, 0), Imm: int32(denied)})
		}
		block = append(block, Insn{Code: opMovK, Regs: regs(rRet, 0), Imm: 1}, Insn{Code: opExit})
		for i := range block {
			if block[i].Code == opJneK || block[i].Code == opJsetK {
				block[i].Off = int16(len(block) - i - 1) // to the next rule
			}
		}
		p = append(p, block...)
	}
	p = append(p, Insn{Code: opMovK, Regs: regs(rRet, 0), Imm: 0}, Insn{Code: opExit})
	if len(p) > 4096 {
		return nil, fmt.Errorf("device policy of %d rules is too long for one program", len(rules))
	}
	return p, nil
}

// Run interprets prog (only the instructions Program emits) for one
// request, as the kernel would: for tests.
func Run(prog []Insn, t Type, major, minor uint32, access Access) (uint64, error) {
	typ := uint32(devChar)
	if t == Block {
		typ = devBlock
	}
	ctx := [3]uint32{uint32(access)<<16 | typ, major, minor}
	var r [11]uint64
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		d, s := in.dst(), in.src()
		if d > 10 || s > 10 {
			return 0, fmt.Errorf("instruction %d: bad register", pc)
		}
		switch in.Code {
		case opLoadW:
			if s != rCtx || in.Off%4 != 0 || in.Off < 0 || int(in.Off/4) >= len(ctx) {
				return 0, fmt.Errorf("instruction %d: load outside the context", pc)
			}
			r[d] = uint64(ctx[in.Off/4])
		case opMovX:
			r[d] = r[s]
		case opMovK:
			r[d] = uint64(int64(in.Imm))
		case opAndK:
			r[d] &= uint64(int64(in.Imm))
		case opRshK:
			r[d] >>= uint(in.Imm)
		case opJneK:
			if r[d] != uint64(int64(in.Imm)) {
				pc += int(in.Off)
			}
		case opJsetK:
			if r[d]&uint64(int64(in.Imm)) != 0 {
				pc += int(in.Off)
			}
		case opExit:
			return r[rRet], nil
		default:
			return 0, fmt.Errorf("instruction %d: opcode %#x not interpreted", pc, in.Code)
		}
	}
	return 0, fmt.Errorf("the program ran off its end")
}
