package hostsd

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
