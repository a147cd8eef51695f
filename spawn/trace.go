package spawn

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// NETSPAWN_TRACE=1 prints the time each step of a container start was
// reached, for profiling. Times are CLOCK_MONOTONIC milliseconds since the
// netspawn process started its work; the container's first process gets
// that origin in NETSPAWN_TRACE_T0, so its steps read on the same timeline.
var (
	traceOn     = os.Getenv("NETSPAWN_TRACE") == "1"
	traceOrigin = traceT0()
)

func monotonicNS() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

func traceT0() int64 {
	if v, err := strconv.ParseInt(os.Getenv("NETSPAWN_TRACE_T0"), 10, 64); err == nil {
		return v
	}
	return monotonicNS()
}

// traceEnv is the environment that carries tracing to the container's
// first process.
func traceEnv() []string {
	if !traceOn {
		return nil
	}
	return []string{"NETSPAWN_TRACE=1", "NETSPAWN_TRACE_T0=" + strconv.FormatInt(traceOrigin, 10)}
}

func trace(step string) {
	if traceOn {
		fmt.Fprintf(os.Stderr, "netspawn trace: %8.3f ms  %s\n", float64(monotonicNS()-traceOrigin)/1e6, step)
	}
}

// Trace prints step on the NETSPAWN_TRACE timeline (for the runtime's
// hooks, such as the network client).
func Trace(step string) { trace(step) }
