package supervisor

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/netspawn/netspawn/internal/sdnotify"
	"github.com/netspawn/netspawn/netctl/api"
)

func TestEnableDisable(t *testing.T) {
	images := t.TempDir()
	s := &Supervisor{StateDir: t.TempDir(), ImagesDir: images}
	for _, n := range []string{"web", "db"} {
		if err := os.Mkdir(filepath.Join(images, n), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := s.Enable(n); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.Enabled(); !reflect.DeepEqual(got, []string{"db", "web"}) {
		t.Errorf("Enabled = %v", got)
	}
	var ae *api.Error
	if err := s.Enable("nothere"); !errors.As(err, &ae) || ae.Code != api.CodeNotFound {
		t.Errorf("enabling a missing image: %v", err)
	}
	if err := s.Enable("../etc"); !errors.As(err, &ae) || ae.Code != api.CodeInvalid {
		t.Errorf("enabling a bad name: %v", err)
	}
	if err := s.Disable("web"); err != nil {
		t.Fatal(err)
	}
	if err := s.Disable("web"); err != nil {
		t.Errorf("disabling twice: %v", err)
	}
	if got := s.Enabled(); !reflect.DeepEqual(got, []string{"db"}) {
		t.Errorf("Enabled = %v", got)
	}
}

func TestLastLine(t *testing.T) {
	log := "Welcome\nnetspawn: error: no init found\n-- netspawnd: netspawn exited: exit status 1\n"
	if got := lastLine(log); got != "netspawn: error: no init found" {
		t.Errorf("lastLine = %q", got)
	}
	if got := lastLine("-- netspawnd: only marks\n"); got != "-- netspawnd: only marks" {
		t.Errorf("lastLine = %q", got)
	}
}

// TestMain lets the test binary stand in for netspawn: with
// SUPERVISOR_TEST_FAKE=ready it says READY=1 on $NOTIFY_SOCKET, with
// "silent" it never does; either then waits to be stopped.
func TestMain(m *testing.M) {
	switch os.Getenv("SUPERVISOR_TEST_FAKE") {
	case "":
		os.Exit(m.Run())
	case "ready":
		if err := sdnotify.Send("STATUS=Container running.\nX_NSPAWN_LEADER_PID=1"); err != nil {
			os.Exit(3)
		}
		if err := sdnotify.Send("READY=1"); err != nil {
			os.Exit(3)
		}
	}
	time.Sleep(time.Minute)
	os.Exit(0)
}

func fakeSupervisor(t *testing.T, mode string) *Supervisor {
	t.Helper()
	images := t.TempDir()
	if err := os.Mkdir(filepath.Join(images, "m"), 0o755); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SUPERVISOR_TEST_FAKE", mode)
	return &Supervisor{StateDir: t.TempDir(), ImagesDir: images, Netspawn: exe,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), StartTimeout: 5 * time.Second}
}

// Start returns once netspawn says READY=1.
func TestStartWaitsForReady(t *testing.T) {
	s := fakeSupervisor(t, "ready")
	if err := s.Start("m"); err != nil {
		t.Fatalf("Start: %v", err)
	}
	s.mu.Lock()
	p := s.procs["m"]
	s.mu.Unlock()
	if p == nil {
		t.Fatal("no process recorded")
	}
	_ = p.Kill()
}

// A machine that never reports ready is stopped after StartTimeout, and
// Start says why.
func TestStartTimeout(t *testing.T) {
	s := fakeSupervisor(t, "silent")
	s.StartTimeout = 300 * time.Millisecond
	err := s.Start("m")
	var ae *api.Error
	if !errors.As(err, &ae) || !strings.Contains(ae.Message, `machine "m" did not report ready within 300ms, and was stopped`) ||
		!strings.Contains(ae.Message, "NotifyReady=yes") {
		t.Fatalf("Start: %v", err)
	}
	s.mu.Lock()
	_, running := s.procs["m"]
	s.mu.Unlock()
	if running {
		t.Error("the machine that timed out is still recorded as running")
	}
	log, _ := os.ReadFile(LogPath(s.StateDir, "m"))
	if !strings.Contains(string(log), "-- netspawnd: m ended") {
		t.Errorf("log: %s", log)
	}
}
