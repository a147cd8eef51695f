package spawn

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/netspawn/netspawn/spawn/config"
)

func TestEphemeralNames(t *testing.T) {
	if got := ephemeralMachineName("web", "0123456789abcdef"); got != "web-0123456789abcdef" {
		t.Errorf("%q", got)
	}
	long := ephemeralMachineName(string(make([]byte, 80)), "0123456789abcdef")
	if len(long) != 64 {
		t.Errorf("length %d", len(long))
	}
	if got := snapshotName("/var/lib/machines/web", "00ff"); got != "/var/lib/machines/.#machine.web00ff" {
		t.Errorf("%q", got)
	}
	cfg := &config.Config{Directory: "/m/web", Machine: "web"}
	cfg.Ephemeral = true
	if err := prepareImage(cfg); err != nil || len(cfg.Machine) != len("web-")+16 {
		t.Errorf("machine %q %v", cfg.Machine, err)
	}
	cfg = &config.Config{Directory: "/m/web", Machine: "chosen"}
	cfg.Ephemeral = true
	if err := prepareImage(cfg); err != nil || cfg.Machine != "chosen" {
		t.Errorf("explicit name changed: %q", cfg.Machine)
	}
	cfg.Volatile = config.VolatileYes
	if err := prepareImage(cfg); err == nil {
		t.Error("-x with --volatile accepted")
	}
}

func TestReapStaleRunDirs(t *testing.T) {
	base := t.TempDir()
	t.Setenv("NETSPAWN_TMPDIR", base)
	live, err := newRunDir()
	if err != nil {
		t.Fatal(err)
	}
	defer live.remove()
	dead, err := newRunDir()
	if err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "work")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	dead.note(outside)
	dead.lock.Close() // its netspawn died
	reapStaleRunDirs()
	if _, err := os.Stat(dead.path); err == nil {
		t.Error("stale run directory not removed")
	}
	if _, err := os.Stat(outside); err == nil {
		t.Error("directory listed by the stale run not removed")
	}
	if _, err := os.Stat(live.path); err != nil {
		t.Errorf("live run directory removed: %v", err)
	}
}
