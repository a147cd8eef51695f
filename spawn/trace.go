package spawn

import (
	"fmt"
	"os"
	"time"
)

// traceStart is when this process started its work; NETSPAWN_TRACE=1 prints
// the time each step of a container start was reached, for profiling.
var (
	traceOn    = os.Getenv("NETSPAWN_TRACE") == "1"
	traceStart = time.Now()
)

func trace(step string) {
	if traceOn {
		fmt.Fprintf(os.Stderr, "netspawn trace: %8.3f ms  %s\n", float64(time.Since(traceStart).Microseconds())/1000, step)
	}
}
