package spawn

// Temporary stand-ins until the flags branch lands (deleted on merge).

import (
	"fmt"
	"path/filepath"
	"syscall"

	"github.com/spf13/pflag"
)

// Capabilities is temporary.
func (c *Config) Capabilities() uint64 {
	m := uint64(0)
	for _, n := range []uint{30, 29, 0, 1, 2, 3, 4, 15, 5, 28, 9, 27, 10, 11, 13, 31, 6, 8, 7, 21, 22, 18, 23, 19, 24, 26} {
		m |= 1 << n
	}
	if c.Network.Private {
		m |= 1 << 12
	}
	return (m | c.CapAdd) &^ c.CapDrop
}

// SignalName is temporary.
func SignalName(s syscall.Signal) string { return fmt.Sprintf("signal %d", int(s)) }

// ErrVersion is temporary.
var ErrVersion = fmt.Errorf("version requested")

// Usage is temporary.
func Usage() string { return "usage: netspawn [OPTIONS] [COMMAND [ARGS...]]\n" }

// LoadSettings is temporary.
func (c *Config) LoadSettings() error { return nil }

// ParseArgs is a temporary minimal parser.
func ParseArgs(args []string) (*Config, error) {
	c := &Config{}
	fs := pflag.NewFlagSet("netspawn", pflag.ContinueOnError)
	fs.SetInterspersed(false)
	fs.StringVarP(&c.Directory, "directory", "D", "", "")
	fs.StringVarP(&c.Machine, "machine", "M", "", "")
	fs.BoolVarP(&c.Quiet, "quiet", "q", false, "")
	fs.BoolVarP(&c.AsPid2, "as-pid2", "a", false, "")
	fs.BoolVar(&c.Network.Private, "private-network", false, "")
	fs.StringArrayVarP(&c.Env, "setenv", "E", nil, "")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	c.Command = fs.Args()
	if c.Machine == "" {
		c.Machine = filepath.Base(c.Directory)
	}
	return c, nil
}
