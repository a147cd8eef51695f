package spawn

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// readRandom fills b from the kernel's random pool (getrandom(2)), as
// crypto/rand does: netspawn has no other use for Go's crypto packages,
// whose initialisation every start of netspawn would otherwise pay for.
func readRandom(b []byte) error {
	for len(b) > 0 {
		n, err := unix.Getrandom(b, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("getrandom: %w", err)
		}
		b = b[n:]
	}
	return nil
}
