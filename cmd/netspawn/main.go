// Command netspawn runs a command or boots an OS in a container.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "netspawn: not implemented yet")
	os.Exit(1)
}
