//go:build amd64 || arm64

package forkexec

// vforkSupported: this architecture has vforkSyscall.
const vforkSupported = true

// vforkSyscall makes a system call that returns twice on the caller's
// stack (clone3 with CLONE_VM|CLONE_VFORK); see vfork_GOARCH.s.
//
//go:noescape
func vforkSyscall(trap, a1, a2 uintptr) (r1, errno uintptr)
