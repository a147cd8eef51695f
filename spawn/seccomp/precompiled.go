package seccomp

import (
	"syscall"

	"golang.org/x/sys/unix"
)

//go:generate env NETSPAWN_UPDATE_PRECOMPILED=1 go test -run ^TestPrecompiledCurrent$ .

// precompiledProg is the program of a default filter (no
// --system-call-filter=, no --suppress-sync=, EPERM) for one architecture
// and capability set, compiled ahead (zprecompiled.go): compiling it at
// each start cost a millisecond and a few hundred kilobytes of fresh
// memory on the start's critical path. prog holds the instructions as
// struct sock_filter in little-endian order; a string keeps the table in
// read-only data, with no code run at start-up.
type precompiledProg struct {
	arch string
	caps uint64
	prog string
}

// precompiled returns f's program when it is one of the precompiled ones.
// The result is a fresh slice.
func (f *Filter) precompiled(arch string) ([]unix.SockFilter, bool) {
	if len(f.allow) > 0 || len(f.deny) > 0 || f.SuppressSync || f.Errno != syscall.EPERM {
		return nil, false
	}
	for i := range precompiledProgs {
		p := &precompiledProgs[i]
		if p.arch == arch && p.caps == f.caps {
			return decodeProg(p.prog), true
		}
	}
	return nil, false
}

func decodeProg(s string) []unix.SockFilter {
	out := make([]unix.SockFilter, len(s)/8)
	for i := range out {
		b := s[8*i : 8*i+8]
		out[i] = unix.SockFilter{
			Code: uint16(b[0]) | uint16(b[1])<<8,
			Jt:   b[2],
			Jf:   b[3],
			K:    uint32(b[4]) | uint32(b[5])<<8 | uint32(b[6])<<16 | uint32(b[7])<<24,
		}
	}
	return out
}
