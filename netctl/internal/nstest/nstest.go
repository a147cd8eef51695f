// Package nstest gives root tests throwaway network namespaces (named with
// `ip netns add`, removed in t.Cleanup) and helpers to run commands in them.
// Tests that need root fail when CI=true and skip otherwise.
package nstest

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/netspawn/netspawn/internal/testutil"
)

// RequireRoot skips (or fails under CI=true) unless running as root with the
// given tools in PATH.
func RequireRoot(t testing.TB, tools ...string) {
	t.Helper()
	testutil.RequireRoot(t, "it creates network namespaces", append([]string{"ip", "nsenter"}, tools...)...)
}

var seq atomic.Int64

// NetNS is a named network namespace.
type NetNS struct {
	Name string
	Path string
}

// New creates a network namespace with lo up, deleted when the test ends.
func New(t testing.TB, tag string) *NetNS {
	t.Helper()
	name := fmt.Sprintf("nsp%s%d-%d", tag, os.Getpid()%100000, seq.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	ns := &NetNS{Name: name, Path: "/run/netns/" + name}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	ns.MustRun(t, "ip", "link", "set", "lo", "up")
	return ns
}

// Cmd returns a command that runs in the namespace (through nsenter, so the
// mount namespace and /sys stay the caller's).
func (n *NetNS) Cmd(name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + n.Path, "--", name}, args...)...)
}

// Run runs a command in the namespace and returns its combined output.
func (n *NetNS) Run(name string, args ...string) (string, error) {
	out, err := n.Cmd(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// MustRun is Run that fails the test on error.
func (n *NetNS) MustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := n.Run(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Fd opens the namespace file (closed at cleanup).
func (n *NetNS) Fd(t testing.TB) int {
	t.Helper()
	f, err := os.Open(n.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return int(f.Fd())
}
