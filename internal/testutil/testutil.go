// Package testutil holds what the project's tests share wherever they live:
// the rule for tests that need root or a tool (fail under CI=true, where
// every test must run; skip elsewhere) and waiting on a condition instead
// of sleeping.
package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

// Unavailable fails the test under CI (CI=true) and skips it elsewhere.
func Unavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("cannot run under CI: %s", why)
	}
	t.Skip(why)
}

// RequireRoot stops a test that needs root (why says what for) or one of
// tools, as Unavailable does.
func RequireRoot(t testing.TB, why string, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "needs root: "+why)
	}
	RequireTool(t, tools...)
}

// RequireTool stops a test when a program it drives is not installed.
func RequireTool(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			Unavailable(t, fmt.Sprintf("needs %s (make test installs the Debian packages)", n))
		}
	}
}

// Eventually calls f until it reports true or d has passed, and returns
// f's last answer. It polls often at first, then every 100 ms.
func Eventually(d time.Duration, f func() bool) bool {
	wait := time.Millisecond
	for end := time.Now().Add(d); time.Now().Before(end); wait = min(2*wait, 100*time.Millisecond) {
		if f() {
			return true
		}
		time.Sleep(wait)
	}
	return f()
}
