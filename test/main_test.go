package test

import (
	"os"
	"testing"

	"github.com/netspawn/netspawn/test/harness"
)

// TestMain removes what the tests built once for all of them (the
// binaries unless NETSPAWN_BIN names them, cnitool) after the last test.
func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }
