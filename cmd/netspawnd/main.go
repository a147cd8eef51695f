// Command netspawnd is a placeholder until its issue lands.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "netspawnd: not implemented yet")
	os.Exit(1)
}
