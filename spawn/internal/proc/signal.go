package proc

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// CatchesSignal reports whether process pid handles sig: it has a handler
// (SigCgt in /proc/PID/status) or keeps it blocked to read it from a
// signalfd (SigBlk), as systemd does. Either way the kernel delivers it even
// to a namespace's init.
func CatchesSignal(pid int, sig syscall.Signal) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	return sigMaskHas(string(b), "SigCgt:", sig) || sigMaskHas(string(b), "SigBlk:", sig)
}

// sigMaskHas parses a hex signal mask line of /proc/PID/status.
func sigMaskHas(status, field string, sig syscall.Signal) bool {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			var mask uint64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%x", &mask); err != nil {
				return false
			}
			return sig >= 1 && sig <= 64 && mask&(1<<(uint(sig)-1)) != 0
		}
	}
	return false
}
