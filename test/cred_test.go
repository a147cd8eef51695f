package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netspawn/netspawn/spawn/cgroup"
	"github.com/netspawn/netspawn/test/harness"
)

// Machine names here start with "cr-": machine cgroups are global.

// --set-credential= and --load-credential=: files in a read-only ramfs at
// /run/host/credentials (mode 0500, files 0400, owned by the container's
// root), named by $CREDENTIALS_DIRECTORY.
func TestCredentials(t *testing.T) {
	e := harness.NewEnv(t)
	src := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(src, []byte("from-host-file"), 0o600); err != nil {
		t.Fatal(err)
	}
	show := `echo $CREDENTIALS_DIRECTORY; cd $CREDENTIALS_DIRECTORY && stat -c '%a %u %g' . pw token && cat pw && echo && cat token && echo &&
		(echo x > pw) 2>/dev/null || echo write-refused; (touch new) 2>/dev/null || echo create-refused;
		awk '$2 == "/run/host/credentials" {print $3, substr($4, 1, 2)}' /proc/mounts`
	r := e.Netspawn("-M", "cr-cred", `--set-credential=pw:s3cr\x65t\tx`, "--load-credential=token:"+src, "sh", "-c", show)
	want(t, r, "/run/host/credentials\n500 0 0\n400 0 0\n400 0 0\ns3cret\tx\nfrom-host-file\nwrite-refused\ncreate-refused\nramfs ro")
	// In a user namespace the container's root owns them too.
	r = e.Netspawn("-M", "cr-cred", "--private-users=pick", "--private-users-ownership=chown", "--set-credential=pw:v",
		"sh", "-c", "stat -c '%a %u %g' /run/host/credentials/pw; cat /run/host/credentials/pw")
	want(t, r, "400 0 0\nv")
	// On a read-only root, and as another user, who can neither list nor
	// read them (0500 and 0400, root's), as with nspawn.
	want(t, e.Netspawn("-M", "cr-cred", "--read-only", "-u", "user", "--set-credential=pw:v", "sh", "-c",
		"echo $CREDENTIALS_DIRECTORY; ls $CREDENTIALS_DIRECTORY 2>/dev/null || echo unlistable; cat $CREDENTIALS_DIRECTORY/pw 2>/dev/null || echo unreadable"),
		"/run/host/credentials\nunlistable\nunreadable")
	// Without credentials there is no directory and no variable.
	want(t, e.Netspawn("-M", "cr-cred", "sh", "-c", "echo ${CREDENTIALS_DIRECTORY:-unset}; test -e /run/host/credentials || echo none"), "unset\nnone")

	wantFail(t, e.Netspawn("-M", "cr-cred", "--set-credential=a:1", "--set-credential=a:2", "true"), "duplicate credential 'a', refusing")
	wantFail(t, e.Netspawn("-M", "cr-cred", "--set-credential=a/b:1", "true"), `credential name is not valid: "a/b"`)
	wantFail(t, e.Netspawn("-M", "cr-cred", "--set-credential=novalue", "true"), "missing value for --set-credential=")
	wantFail(t, e.Netspawn("-M", "cr-cred", `--set-credential=a:\q`, "true"), "failed to unescape credential data")
	wantFail(t, e.Netspawn("-M", "cr-cred", "--load-credential=a:/nonexistent-cred", "true"), "failed to read credential '/nonexistent-cred'")
}

// --pivot-root=NEW[:OLD]: the image's NEW becomes /, its old root goes to
// OLD or away.
func TestPivotRoot(t *testing.T) {
	e := harness.NewEnv(t)
	alt := filepath.Join(t.TempDir(), "alt")
	if err := harness.CopyTree(e.Tree, alt); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(alt, filepath.Join(e.Tree, "alt")); err != nil {
		t.Fatal(err)
	}
	for p, data := range map[string]string{"alt/marker": "new root\n", "oldmarker": "old root\n"} {
		if err := os.WriteFile(filepath.Join(e.Tree, p), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(e.Tree, "alt/oldroot"), 0o755); err != nil {
		t.Fatal(err)
	}
	want(t, e.Netspawn("-M", "cr-pivot", "--pivot-root=/alt:/oldroot", "sh", "-c",
		"cat /marker /oldroot/oldmarker; test -e /alt || echo no-alt; test -d /oldroot/alt/oldroot && echo old-has-alt"),
		"new root\nold root\nno-alt\nold-has-alt")
	want(t, e.Netspawn("-M", "cr-pivot", "--pivot-root=/alt", "sh", "-c",
		"cat /marker; ls -A /oldroot | wc -l; test -e /oldmarker || echo old-gone"),
		"new root\n0\nold-gone")
	// On an ephemeral snapshot too.
	want(t, e.Netspawn("-M", "cr-pivot", "-x", "--pivot-root=/alt:/oldroot", "sh", "-c", "cat /marker /oldroot/oldmarker"),
		"new root\nold root")
	wantFail(t, e.Netspawn("-M", "cr-pivot", "--pivot-root=/nonexistent", "true"), "/nonexistent/usr is missing")
	wantFail(t, e.Netspawn("-M", "cr-pivot", "--pivot-root=/alt:/missing", "true"), "/missing is not a directory in /alt")
	wantFail(t, e.Netspawn("-M", "cr-pivot", "--pivot-root=alt", "true"), `"alt" is not an absolute path`)
}

// -S/--slice=: the machine's scope goes under that slice, nested by the
// slice name's '-' prefixes.
func TestSlice(t *testing.T) {
	e := harness.NewEnv(t)
	root := cgroup.V2Root()
	if root == "" {
		harness.Unavailable(t, "needs a cgroup v2 hierarchy")
	}
	top := filepath.Join(root, "cr.slice")
	t.Cleanup(func() { _ = cgroup.RemoveTree(top) })
	payload := filepath.Join(root, cgroup.ScopePathIn("cr-t1.slice", "cr-slice"), "payload")
	if want := filepath.Join(root, `cr.slice/cr-t1.slice/machine-cr\x2dslice.scope/payload`); payload != want {
		t.Fatalf("payload cgroup %s, want %s", payload, want)
	}
	cmd := e.Command("netspawn", "-q", "-D", e.Tree, "-M", "cr-slice", "-S", "cr-t1", "sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	found := false
	for i := 0; i < 100 && !found; i++ {
		b, _ := os.ReadFile(filepath.Join(payload, "cgroup.procs"))
		found = strings.TrimSpace(string(b)) != ""
		if !found {
			time.Sleep(50 * time.Millisecond)
		}
	}
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	if !found {
		t.Fatalf("no processes in %s while the machine ran", payload)
	}
	if _, err := os.Stat(filepath.Dir(payload)); err == nil {
		t.Errorf("%s left after the machine stopped", filepath.Dir(payload))
	}
	wantFail(t, e.Netspawn("-M", "cr-slice", "--slice=web.service", "true"), `invalid slice name "web.service"`)
	wantFail(t, e.Netspawn("-M", "cr-slice", "--slice=a--b.slice", "true"), `invalid slice name "a--b.slice"`)
}

// TestCredentialsBoot: a booted systemd takes the credentials netspawn
// passes ($CREDENTIALS_DIRECTORY of PID 1) as the system's: systemd 252
// imports them into /run/credentials/@system, where units find them
// (ImportCredential=, systemd-creds --system).
func TestCredentialsBoot(t *testing.T) {
	e := harness.NewEnv(t)
	tree := debianTree(t, e)
	b := boot(t, e, tree, "cr-boot", "--private-network", "--set-credential=netspawn.test:from-the-host")
	b.waitRunning()
	if out, err := b.exec("cat", "/run/credentials/@system/netspawn.test"); err != nil || out != "from-the-host" {
		ls, _ := b.exec("sh", "-c", "ls -la /run/credentials/@system /run/host/credentials 2>&1; systemd-creds --system list 2>&1")
		t.Errorf("the booted system's credential: %q (%v)\n%s", out, err, ls)
	}
}
