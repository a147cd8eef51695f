// Command netspawnctl is a placeholder until its issue lands.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "netspawnctl: not implemented yet")
	os.Exit(1)
}
