package hostsd

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestKeepNetworkdAwayWritesTheFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "network")
	did, err := KeepNetworkdAway(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, UnmanagedFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[Match]\nName=netspawn-*\n", "[Link]\nUnmanaged=yes\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %q:\n%s", UnmanagedFile, want, b)
		}
	}
	if !strings.Contains(did, UnmanagedFile) {
		t.Errorf("report %q does not name the file", did)
	}
	// Sorted before networkd's shipped container files: the first match wins.
	if UnmanagedFile >= "80-container-ve.network" {
		t.Errorf("%s does not sort before 80-container-ve.network", UnmanagedFile)
	}
	if _, err := KeepNetworkdAway(context.Background(), dir); err != nil {
		t.Fatalf("second call: %v", err)
	}
}

func TestWaitUnmanaged(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "7")
	if err := os.WriteFile(p, []byte("ADMIN_STATE=pending\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(150 * time.Millisecond) // networkd deciding
		_ = os.WriteFile(p, []byte("ADMIN_STATE=unmanaged\nOPER_STATE=carrier\n"), 0o644)
	}()
	if !waitUnmanaged(dir, 7, 5*time.Second) {
		t.Fatal("an unmanaged verdict was missed")
	}
	if waitUnmanaged(dir, 8, 100*time.Millisecond) {
		t.Fatal("no state at all taken for unmanaged")
	}
}
