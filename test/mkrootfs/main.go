// Command mkrootfs builds the small busybox OS tree netspawn's demo, tests
// and benchmarks use: mkrootfs DIR.
package main

import (
	"fmt"
	"os"

	"github.com/netspawn/netspawn/test/harness"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mkrootfs DIR")
		os.Exit(2)
	}
	if err := harness.BuildBusyboxTree(os.Args[1], harness.BusyboxPath); err != nil {
		fmt.Fprintf(os.Stderr, "mkrootfs: %v\n", err)
		os.Exit(1)
	}
}
