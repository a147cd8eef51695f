//go:build !amd64 && !arm64

package forkexec

import "syscall"

// vforkSupported: elsewhere StartInit always forks.
const vforkSupported = false

func vforkSyscall(trap, a1, a2 uintptr) (r1, errno uintptr) { return 0, uintptr(syscall.ENOSYS) }
