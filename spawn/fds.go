package spawn

import (
	"math"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// closeInheritedFDs marks every descriptor above standard error
// close-on-exec, as systemd-nspawn does with what its caller left open:
// the container's first process and payload get their standard input,
// output and error and nothing else of the host (a caller's pipe or
// directory descriptor would otherwise cross into the container).
// Descriptors netspawn itself hands on are made after this and placed
// explicitly.
func closeInheritedFDs() {
	if unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC) == nil {
		return
	}
	// Kernels before 5.11: one by one.
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
}
