package machine

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestJournalArgs(t *testing.T) {
	if got, err := JournalArgs(JournalSource{Leader: 42, ImageDir: "/x"}); err != nil || !reflect.DeepEqual(got, []string{"--root=/proc/42/root"}) {
		t.Errorf("running: %q %v", got, err)
	}
	if _, err := JournalArgs(JournalSource{}); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("nothing: %v", err)
	}
	base := t.TempDir()
	tree, host := filepath.Join(base, "tree"), filepath.Join(base, "journal")
	id := "0123456789abcdef0123456789abcdef"
	for _, d := range []string{filepath.Join(tree, "etc"), host} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src := JournalSource{ImageDir: tree, HostDir: host}
	if got, _ := JournalArgs(src); !reflect.DeepEqual(got, []string{"--root=" + tree}) {
		t.Errorf("no machine-id: %q", got)
	}
	if err := os.WriteFile(filepath.Join(tree, "etc/machine-id"), []byte(id+"\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	if got, _ := JournalArgs(src); !reflect.DeepEqual(got, []string{"--root=" + tree}) {
		t.Errorf("no host directory: %q", got)
	}
	// A guest link on the host: the tree is read.
	if err := os.Symlink(filepath.Join(tree, "var/log/journal", id), filepath.Join(host, id)); err != nil {
		t.Fatal(err)
	}
	if got, _ := JournalArgs(src); !reflect.DeepEqual(got, []string{"--root=" + tree}) {
		t.Errorf("guest link: %q", got)
	}
	// The host keeps it (--link-journal=host).
	if err := os.Remove(filepath.Join(host, id)); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(host, id), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, _ := JournalArgs(src); !reflect.DeepEqual(got, []string{"--directory=" + filepath.Join(host, id)}) {
		t.Errorf("host directory: %q", got)
	}
}
