package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netspawn/netspawn/internal/testutil"
	"github.com/netspawn/netspawn/test/harness"
)

// Machine names here start with "jrn": machine cgroups are global. The
// host's journal directory is a temporary one (NETSPAWN_HOST_JOURNAL_DIR):
// nothing is made in the machine's own /var/log/journal.

const jrnUUID = "0123456789abcdef0123456789abcdef"

// journalEnv is a test world whose host journal directory is hostDir.
func journalEnv(t *testing.T) (e *harness.Env, hostDir string) {
	e = harness.NewEnv(t)
	hostDir = filepath.Join(t.TempDir(), "journal")
	if err := os.Mkdir(hostDir, 0o755); err != nil {
		t.Fatal(err)
	}
	e.Vars = append(e.Vars, "NETSPAWN_HOST_JOURNAL_DIR="+hostDir)
	return e, hostDir
}

// --link-journal= on a container that does not boot: the links and binds
// are made as nspawn makes them, and the errors are nspawn's.
func TestLinkJournalModes(t *testing.T) {
	e, hostDir := journalEnv(t)
	p := filepath.Join(hostDir, jrnUUID)
	q := filepath.Join(e.Tree, "var/log/journal", jrnUUID)
	inside := "awk '$5 == \"/var/log/journal/" + jrnUUID + "\" {print \"bound\"}' /proc/self/mountinfo; test -d /var/log/journal/" + jrnUUID + " && echo dir"

	// host: a directory on the host, bound inside.
	want(t, e.Netspawn("-M", "jrn-modes", "--uuid="+jrnUUID, "--link-journal=host", "sh", "-c",
		inside+"; echo from-inside > /var/log/journal/"+jrnUUID+"/marker"), "bound\ndir")
	if b, err := os.ReadFile(filepath.Join(p, "marker")); err != nil || string(b) != "from-inside\n" {
		t.Fatalf("the host's %s does not hold what the container wrote: %q %v", p, b, err)
	}
	// auto (the default): the host's directory is there, so it is bound.
	want(t, e.Netspawn("-M", "jrn-modes", "--uuid="+jrnUUID, "sh", "-c", "cat /var/log/journal/"+jrnUUID+"/marker"), "from-inside")
	// no: nothing.
	want(t, e.Netspawn("-M", "jrn-modes", "--uuid="+jrnUUID, "--link-journal=no", "sh", "-c",
		"test -e /var/log/journal/"+jrnUUID+"/marker || echo absent"), "absent")

	// [Exec] LinkJournal= of a trusted .nspawn file; the command line wins.
	settings := t.TempDir()
	writeFile(t, filepath.Join(settings, "jrn-modes.nspawn"), "[Exec]\nLinkJournal=no\n")
	restore := withEnv(e, "NETSPAWN_SETTINGS_PATH="+settings)
	want(t, e.Netspawn("-M", "jrn-modes", "--uuid="+jrnUUID, "sh", "-c",
		"test -e /var/log/journal/"+jrnUUID+"/marker || echo absent"), "absent")
	want(t, e.Netspawn("-M", "jrn-modes", "--uuid="+jrnUUID, "--link-journal=try-host", "sh", "-c", "cat /var/log/journal/"+jrnUUID+"/marker"), "from-inside")
	restore()

	// guest: the host directory is not empty, so it cannot become a link.
	wantFail(t, e.Netspawn("-M", "jrn-modes", "--uuid="+jrnUUID, "--link-journal=guest", "true"), "removing "+p)
	if err := os.Remove(filepath.Join(p, "marker")); err != nil {
		t.Fatal(err)
	}
	// -j (try-guest): the empty directory gives way to a link to the tree.
	want(t, e.Netspawn("-M", "jrn-modes", "--uuid="+jrnUUID, "-j", "sh", "-c",
		"test -d /var/log/journal/"+jrnUUID+" && echo dir; echo guest > /var/log/journal/"+jrnUUID+"/marker"), "dir")
	if target, err := os.Readlink(p); err != nil || target != q {
		t.Fatalf("%s -> %q (%v), want a link to %s", p, target, err, q)
	}
	if b, err := os.ReadFile(filepath.Join(p, "marker")); err != nil || string(b) != "guest\n" {
		t.Errorf("through the host's link: %q %v", b, err)
	}

	// A file in the way of a guest link.
	other := "fedcba9876543210fedcba9876543210"
	if err := os.WriteFile(filepath.Join(hostDir, other), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wantFail(t, e.Netspawn("-M", "jrn-modes", "--uuid="+other, "--link-journal=guest", "true"), "already exists and is neither a symlink nor a directory")

	// The tree's /etc/machine-id names the journal, as nspawn's does.
	if err := os.WriteFile(filepath.Join(e.Tree, "etc/machine-id"), []byte(other+"\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(hostDir, other)); err != nil {
		t.Fatal(err)
	}
	want(t, e.Netspawn("-M", "jrn-modes", "--uuid="+jrnUUID, "--link-journal=host", "sh", "-c",
		"awk '$5 ~ /^\\/var\\/log\\/journal\\// {print $5}' /proc/self/mountinfo"), "/var/log/journal/"+other)
	// The host's own machine ID is refused.
	host, err := os.ReadFile("/etc/machine-id")
	if id := strings.TrimSpace(string(host)); err == nil && len(id) == 32 {
		if err := os.WriteFile(filepath.Join(e.Tree, "etc/machine-id"), host, 0o444); err != nil {
			t.Fatal(err)
		}
		wantFail(t, e.Netspawn("-M", "jrn-modes", "--link-journal=guest", "true"), "host and machine ids are equal")
		want(t, e.Netspawn("-M", "jrn-modes", "-j", "echo", "ok"), "ok")
	}
	if err := os.Remove(filepath.Join(e.Tree, "etc/machine-id")); err != nil {
		t.Fatal(err)
	}

	// Without the host's journal directory: guest and host fail, try- and
	// auto go on.
	e.Vars = append(e.Vars, "NETSPAWN_HOST_JOURNAL_DIR="+filepath.Join(hostDir, "missing"))
	wantFail(t, e.Netspawn("-M", "jrn-modes", "--link-journal=guest", "true"), "use --link-journal=try-guest")
	wantFail(t, e.Netspawn("-M", "jrn-modes", "--link-journal=host", "true"), "use --link-journal=try-host")
	want(t, e.Netspawn("-M", "jrn-modes", "--link-journal=try-host", "echo", "ok"), "ok")
	want(t, e.Netspawn("-M", "jrn-modes", "-j", "echo", "ok"), "ok")
	wantFail(t, e.Netspawn("-M", "jrn-modes", "-x", "--link-journal=host", "true"), "--ephemeral and --link-journal={host,guest} may not be combined")
	if _, err := os.Stat(filepath.Join(hostDir, "missing")); err == nil {
		t.Error("the host's journal directory was created")
	}
}

// A booted Debian keeps its journal in its tree (-j), linked from the host,
// and netspawnctl journal reads it, running and stopped; with
// --link-journal=host the host keeps it. With -U too.
func TestJournalBoot(t *testing.T) {
	e, hostDir := journalEnv(t)
	harness.RequireTool(t, "journalctl")
	tree := debianTree(t, e)
	// The stopped machine is found by name among the images.
	if err := os.Symlink(tree, filepath.Join(e.ImagesDir, "jrnboot")); err != nil {
		t.Fatal(err)
	}
	// The last with a user namespace: the directories made in the tree
	// belong to the container's root, so its journald writes there.
	for _, mode := range []string{"-j", "--link-journal=host", "-U -j"} {
		t.Run(mode, func(t *testing.T) {
			if mode == "-U -j" {
				// The host's directory of the last run is not empty: a
				// guest link cannot replace it (as with nspawn).
				hostDir = filepath.Join(t.TempDir(), "journal")
				if err := os.Mkdir(hostDir, 0o755); err != nil {
					t.Fatal(err)
				}
				e.Vars = append(e.Vars, "NETSPAWN_HOST_JOURNAL_DIR="+hostDir)
			}
			b := boot(t, e, tree, "jrnboot", append([]string{"--private-network"}, strings.Fields(mode)...)...)
			b.waitRunning()
			id, _ := b.exec("cat", "/etc/machine-id")
			if len(id) != 32 {
				t.Fatalf("machine-id %q", id)
			}
			p := filepath.Join(hostDir, id)
			fi, err := os.Lstat(p)
			if strings.HasSuffix(mode, "-j") && (err != nil || fi.Mode()&os.ModeSymlink == 0) {
				t.Fatalf("%s: %v %v, want a link to the guest's journal", p, fi, err)
			}
			if !strings.HasSuffix(mode, "-j") && (err != nil || !fi.IsDir()) {
				t.Fatalf("%s: %v %v, want the host's directory", p, fi, err)
			}
			// journald writes the persistent journal there.
			if !testutil.Eventually(30*time.Second, func() bool {
				m, _ := filepath.Glob(filepath.Join(p, "system*.journal"))
				return len(m) > 0
			}) {
				out, _ := b.exec("journalctl", "--header", "-n0")
				t.Fatalf("no journal file in %s; inside: %s", p, out)
			}
			r := e.Run("netspawnctl", "journal", "jrnboot", "-n", "5", "--no-pager")
			if r.Code != 0 || len(strings.Split(strings.TrimSpace(r.Stdout), "\n")) < 5 || strings.Contains(r.Stdout, "No entries") {
				t.Fatalf("netspawnctl journal -n 5: %d %q %q", r.Code, r.Stdout, r.Stderr)
			}
			t.Logf("netspawnctl journal %s -n 5:\n%s", b.name, r.Stdout)
			r = e.Run("netspawnctl", "journal", "jrnboot", "--no-pager", "-o", "cat", "-t", "systemd")
			if r.Code != 0 || !strings.Contains(r.Stdout, "Reached target") {
				t.Fatalf("netspawnctl journal -t systemd: %d %q", r.Code, lastN(r.Stdout+r.Stderr, 10))
			}
			b.ctl("poweroff")
			if code := b.waitExit(60 * time.Second); code != 0 {
				t.Fatalf("poweroff: netspawn exited %d", code)
			}
			// Stopped: from the image (or the host's directory).
			r = e.Run("netspawnctl", "journal", "jrnboot", "--no-pager", "-o", "cat", "-t", "systemd")
			if r.Code != 0 || !strings.Contains(r.Stdout, "Reached target") {
				t.Fatalf("netspawnctl journal of the stopped machine: %d %q", r.Code, lastN(r.Stdout+r.Stderr, 10))
			}
		})
	}
}

// netspawnctl journal without journalctl says what to install; an unknown
// machine is named.
func TestJournalctlMissing(t *testing.T) {
	e := harness.NewEnv(t)
	empty := t.TempDir()
	cmd := e.Command("netspawnctl", "journal", "jrn-none", "-n", "1")
	cmd.Env = append(cmd.Env, "PATH="+empty)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "journalctl not found") || !strings.Contains(string(out), "apt-get install systemd") {
		t.Errorf("without journalctl: %v %q", err, out)
	}
	harness.RequireTool(t, "journalctl")
	r := e.Run("netspawnctl", "journal", "jrn-none")
	if r.Code == 0 || !strings.Contains(r.Stderr, "jrn-none is not running") {
		t.Errorf("unknown machine: %d %q", r.Code, r.Stderr)
	}
}
