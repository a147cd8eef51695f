package seccomp

import (
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

//go:generate go run ./internal/mktables -o zsyscalls.go

// sysEntry is one syscall of one ABI.
type sysEntry struct {
	name string
	nr   uint32
}

// x32Bit marks an x32 syscall number on x86-64 (__X32_SYSCALL_BIT).
const x32Bit = 0x40000000

// abi is one syscall ABI a filter must answer for: the AUDIT_ARCH value the
// kernel reports in seccomp_data.arch and the numbers valid with it.
type abi struct {
	auditArch uint32
	tables    [][]sysEntry // sorted by number, not overlapping
}

// archABIs lists, per Go architecture, the ABIs its kernel can enter: the
// native one first, then compat ABIs (i386 and x32 on x86-64, 32-bit ARM on
// arm64). nspawn filters all of them, so 32-bit programs in a container
// work and are filtered alike; any other AUDIT_ARCH kills the process.
var archABIs = map[string][]abi{
	"amd64": {
		{unix.AUDIT_ARCH_X86_64, [][]sysEntry{sysAMD64, sysX32}},
		{unix.AUDIT_ARCH_I386, [][]sysEntry{sys386}},
	},
	"arm64": {
		{unix.AUDIT_ARCH_AARCH64, [][]sysEntry{sysARM64}},
		{unix.AUDIT_ARCH_ARM, [][]sysEntry{sysARM}},
	},
}

// normArch maps the names people use for an architecture to Go's.
func normArch(arch string) string {
	switch arch {
	case "":
		return runtime.GOARCH
	case "x86-64", "x86_64":
		return "amd64"
	case "aarch64":
		return "arm64"
	}
	return arch
}

// knownNames is every syscall name of every table plus every name that a
// group mentions (some exist only on architectures we do not build for,
// such as riscv_hwprobe): the names --system-call-filter= accepts.
var knownNames = sync.OnceValue(func() map[string]bool {
	m := map[string]bool{}
	for _, t := range [][]sysEntry{sysAMD64, sysX32, sys386, sysARM64, sysARM} {
		for _, e := range t {
			m[e.name] = true
		}
	}
	for _, g := range groupDefs {
		for _, w := range words(g.members) {
			if w[0] != '@' {
				m[w] = true
			}
		}
	}
	return m
})
