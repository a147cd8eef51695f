// Command netspawnctl manages netspawn machines and networks, like
// machinectl. It talks to netspawnd and starts it on demand; its verbs are
// internal/ctlcmd's. See docs/netspawnctl.md.
package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/netspawn/netspawn/internal/ctlcmd"
)

// The main goroutine keeps the main thread to itself. Work that enters a
// container's namespaces runs on locked threads that end with their
// goroutine; were one of them the main thread, the runtime could not end it
// and would park it inside the container, and /proc/PID/ns/* (which show the
// main thread) would name the container's namespaces.
func init() { runtime.LockOSThread() }

func main() {
	if err := ctlcmd.NewRoot(os.Stdout).Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "netspawnctl:", err)
		os.Exit(1)
	}
}
