package spawn

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netspawn/netspawn/spawn/config"
)

const testJournalID = "0123456789abcdef0123456789abcdef"

// journalWorld is a host journal directory and a tree, both temporary.
func journalWorld(t *testing.T, mode string, try bool) (journalSetup, *[]string) {
	t.Helper()
	base := t.TempDir()
	host := filepath.Join(base, "host-journal")
	tree := filepath.Join(base, "tree")
	for _, d := range []string{host, tree} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var warnings []string
	return journalSetup{mode: mode, try: try, id: testJournalID, hostID: "ffffffffffffffffffffffffffffffff",
		hostDir: host, tree: tree, uid: os.Getuid(), gid: os.Getgid(),
		warn: func(f string, a ...any) { warnings = append(warnings, f) }}, &warnings
}

func TestLinkJournalGuest(t *testing.T) {
	js, _ := journalWorld(t, config.LinkJournalGuest, false)
	bind, err := linkJournal(js)
	if err != nil || bind != "" {
		t.Fatalf("linkJournal = %q, %v", bind, err)
	}
	p := filepath.Join(js.hostDir, testJournalID)
	q := filepath.Join(js.tree, "var/log/journal", testJournalID)
	if target, err := os.Readlink(p); err != nil || target != q {
		t.Errorf("host link %s -> %q (%v), want %s", p, target, err, q)
	}
	if st, err := os.Stat(q); err != nil || !st.IsDir() {
		t.Errorf("guest directory %s: %v", q, err)
	}
	// Again: the link is already right.
	if bind, err := linkJournal(js); err != nil || bind != "" {
		t.Errorf("second run: %q, %v", bind, err)
	}
	// Auto keeps a link that is right, and binds nothing.
	js.mode = config.LinkJournalAuto
	if bind, err := linkJournal(js); err != nil || bind != "" {
		t.Errorf("auto with the link: %q, %v", bind, err)
	}
	if _, err := os.Readlink(p); err != nil {
		t.Errorf("auto removed the right link: %v", err)
	}
}

func TestLinkJournalHost(t *testing.T) {
	js, warns := journalWorld(t, config.LinkJournalHost, false)
	bind, err := linkJournal(js)
	p := filepath.Join(js.hostDir, testJournalID)
	if err != nil || bind != p {
		t.Fatalf("linkJournal = %q, %v; want %s", bind, err, p)
	}
	if st, err := os.Lstat(p); err != nil || !st.IsDir() {
		t.Errorf("host directory %s: %v", p, err)
	}
	q := filepath.Join(js.tree, "var/log/journal", testJournalID)
	if st, err := os.Stat(q); err != nil || !st.IsDir() {
		t.Errorf("mount point %s: %v", q, err)
	}
	// Auto binds the host's directory when it is there.
	js.mode = config.LinkJournalAuto
	if bind, err := linkJournal(js); err != nil || bind != p {
		t.Errorf("auto with the host directory: %q, %v", bind, err)
	}
	// A guest link replaces an empty host directory.
	js.mode = config.LinkJournalGuest
	if bind, err := linkJournal(js); err != nil || bind != "" {
		t.Errorf("guest over an empty directory: %q, %v", bind, err)
	}
	// Host mode replaces the guest link with a directory.
	js.mode = config.LinkJournalHost
	if err := os.WriteFile(filepath.Join(q, "x.journal"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if bind, err := linkJournal(js); err != nil || bind != p {
		t.Errorf("host over the guest link: %q, %v", bind, err)
	}
	if len(*warns) == 0 || !strings.Contains((*warns)[len(*warns)-1], "not empty") {
		t.Errorf("no warning about a non-empty guest directory: %q", *warns)
	}
}

func TestLinkJournalErrors(t *testing.T) {
	// No host journal directory: guest and host fail, try- and auto do not.
	for _, tt := range []struct {
		mode string
		try  bool
		err  string
	}{
		{config.LinkJournalGuest, false, "create it, or use --link-journal=try-guest"},
		{config.LinkJournalHost, false, "create it, or use --link-journal=try-host"},
		{config.LinkJournalGuest, true, ""},
		{config.LinkJournalHost, true, ""},
		{config.LinkJournalAuto, false, ""},
	} {
		js, _ := journalWorld(t, tt.mode, tt.try)
		js.hostDir = filepath.Join(js.hostDir, "missing")
		bind, err := linkJournal(js)
		if tt.err == "" && (err != nil || bind != "") || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("%s try=%v without a host journal: %q, %v", tt.mode, tt.try, bind, err)
		}
	}

	js, _ := journalWorld(t, config.LinkJournalGuest, false)
	p := filepath.Join(js.hostDir, testJournalID)
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := linkJournal(js); err == nil || !strings.Contains(err.Error(), "neither a symlink nor a directory") {
		t.Errorf("a file in the way: %v", err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(p, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := linkJournal(js); err == nil || !strings.Contains(err.Error(), "removing") {
		t.Errorf("a non-empty host directory in the way of a guest link: %v", err)
	}

	// Equal machine IDs.
	js, warns := journalWorld(t, config.LinkJournalGuest, false)
	js.hostID = testJournalID
	if _, err := linkJournal(js); err == nil || !strings.Contains(err.Error(), "host and machine ids are equal") {
		t.Errorf("equal ids: %v", err)
	}
	js.try = true
	if bind, err := linkJournal(js); err != nil || bind != "" || len(*warns) != 1 {
		t.Errorf("equal ids, try: %q %v %q", bind, err, *warns)
	}

	// A symbolic link in the tree is not followed out of it.
	js, _ = journalWorld(t, config.LinkJournalGuest, false)
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(js.tree, "var")); err != nil {
		t.Fatal(err)
	}
	if _, err := linkJournal(js); err == nil || !strings.Contains(err.Error(), "symbolic link in the tree is not followed") {
		t.Errorf("followed /var out of the tree: %v", err)
	}
	js.mode = config.LinkJournalAuto // the default gives up, with a warning
	if bind, err := linkJournal(js); err != nil || bind != "" {
		t.Errorf("auto with /var a link: %q %v", bind, err)
	}
	if _, err := os.Stat(filepath.Join(outside, "log")); err == nil {
		t.Error("made directories outside the tree")
	}

	// Read-only: missing directories cannot be made; try- gives up.
	js, _ = journalWorld(t, config.LinkJournalHost, false)
	js.readOnly = true
	if _, err := linkJournal(js); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("read-only host mode: %v", err)
	}
	js.try = true
	if bind, err := linkJournal(js); err != nil || bind != "" {
		t.Errorf("read-only try-host: %q, %v", bind, err)
	}

	// No: nothing at all.
	js, _ = journalWorld(t, config.LinkJournalNo, false)
	if bind, err := linkJournal(js); err != nil || bind != "" {
		t.Errorf("no: %q %v", bind, err)
	}
	if _, err := os.Stat(filepath.Join(js.tree, "var")); err == nil {
		t.Error("--link-journal=no made /var")
	}
}

func TestJournalMachineID(t *testing.T) {
	tree := t.TempDir()
	uuid := "01234567-89ab-cdef-0123-456789abcdef"
	if got := journalMachineID(tree, uuid); got != testJournalID {
		t.Errorf("no machine-id: %q", got)
	}
	if err := os.MkdirAll(filepath.Join(tree, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "etc/machine-id"), []byte("\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := journalMachineID(tree, uuid); got != testJournalID {
		t.Errorf("empty machine-id: %q", got)
	}
	if err := os.WriteFile(filepath.Join(tree, "etc/machine-id"), []byte("FEDCBA9876543210FEDCBA9876543210\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := journalMachineID(tree, uuid); got != "fedcba9876543210fedcba9876543210" {
		t.Errorf("the tree's machine-id: %q", got)
	}
}
