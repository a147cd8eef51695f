package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netspawn/netspawn/test/harness"
)

// installDeps runs test/install-deps.sh with a fake apt-get that records its
// calls (and, on install, whether the policy file forbade starting services)
// and a policy file of the test's own.
type installDeps struct {
	dir, policy, calls string
}

func newInstallDeps(t *testing.T, aptGet string) *installDeps {
	t.Helper()
	harness.RequireRoot(t)
	d := &installDeps{dir: t.TempDir()}
	d.policy = filepath.Join(d.dir, "policy-rc.d")
	d.calls = filepath.Join(d.dir, "calls")
	writeExec(t, filepath.Join(d.dir, "apt-get"), aptGet)
	return d
}

func writeExec(t *testing.T, path, script string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

func (d *installDeps) run(t *testing.T, pkgs ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("sh", append([]string{"install-deps.sh"}, pkgs...)...)
	cmd.Env = append(os.Environ(), "APT_GET="+filepath.Join(d.dir, "apt-get"), "POLICY_RC_D="+d.policy, "CALLS="+d.calls)
	cmd.Stdin = nil
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// fakeApt succeeds, and on install records what the policy file answers.
const fakeApt = `#!/bin/sh
echo "$*" >> "$CALLS"
if [ "$1" = install ]; then
	"$POLICY_RC_D" kea-dhcp4-server start; echo "policy=$?" >> "$CALLS"
fi
exit 0
`

const absentPkg = "netspawn-test-no-such-package"

// The first `make test` on a machine that already has a policy-rc.d (as
// container images do) exited 1 with no message after a good install: the
// EXIT trap's last test became the script's status.
func TestInstallDepsKeepsAForeignPolicy(t *testing.T) {
	d := newInstallDeps(t, fakeApt)
	docker := "#!/bin/sh\n# the image's own\nexit 101\n"
	writeExec(t, d.policy, docker)
	out, code := d.run(t, "busybox-static", absentPkg)
	if code != 0 {
		t.Fatalf("install with a pre-existing policy-rc.d: exit %d\n%s", code, out)
	}
	calls, _ := os.ReadFile(d.calls)
	if !strings.Contains(string(calls), "install -y -qq --no-install-recommends "+absentPkg+"\npolicy=101") {
		t.Errorf("apt-get was not asked for the missing package alone, with services forbidden:\n%s", calls)
	}
	if b, _ := os.ReadFile(d.policy); string(b) != docker {
		t.Errorf("the pre-existing policy-rc.d was changed to %q", b)
	}
}

func TestInstallDepsPolicyThatAllows(t *testing.T) {
	d := newInstallDeps(t, fakeApt)
	allows := "#!/bin/sh\nexit 0\n"
	writeExec(t, d.policy, allows)
	if out, code := d.run(t, absentPkg); code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if calls, _ := os.ReadFile(d.calls); !strings.Contains(string(calls), "policy=101") {
		t.Errorf("services were not forbidden during the install:\n%s", calls)
	}
	if b, err := os.ReadFile(d.policy); err != nil || string(b) != allows {
		t.Errorf("the policy that allows was not put back: %q %v", b, err)
	}
	if _, err := os.Stat(d.policy + ".netspawn-saved"); err == nil {
		t.Error("the moved-aside policy was left behind")
	}
}

func TestInstallDepsNoPolicy(t *testing.T) {
	d := newInstallDeps(t, fakeApt)
	if out, code := d.run(t, absentPkg); code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if calls, _ := os.ReadFile(d.calls); !strings.Contains(string(calls), "policy=101") {
		t.Errorf("services were not forbidden during the install:\n%s", calls)
	}
	if _, err := os.Stat(d.policy); err == nil {
		t.Error("the policy-rc.d made for the install was left behind")
	}
	// Nothing missing: apt-get is not run at all.
	os.Remove(d.calls)
	if out, code := d.run(t, "busybox-static"); code != 0 {
		t.Fatalf("nothing missing: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(d.calls); err == nil {
		t.Error("apt-get ran although nothing was missing")
	}
}

// A failed install says what failed, in apt-get's words: the real apt-get,
// asked for a package no repository has (the update is skipped).
func TestInstallDepsFailureSaysWhy(t *testing.T) {
	harness.RequireTool(t, "apt-get")
	d := newInstallDeps(t, "#!/bin/sh\n[ \"$1\" = update ] && exit 0\nexec apt-get \"$@\"\n")
	writeExec(t, d.policy, "#!/bin/sh\nexit 101\n")
	out, code := d.run(t, absentPkg)
	if code == 0 {
		t.Fatalf("install of an unknown package succeeded:\n%s", out)
	}
	if !strings.Contains(out, "apt-get install -y -qq --no-install-recommends "+absentPkg+" failed") ||
		!strings.Contains(out, "Unable to locate package "+absentPkg) {
		t.Errorf("the failure does not say what failed:\n%s", out)
	}
	if b, _ := os.ReadFile(d.policy); string(b) != "#!/bin/sh\nexit 101\n" {
		t.Errorf("policy changed: %q", b)
	}
}

// The repository's root holds what the layout names and nothing else.
func TestRepositoryRoot(t *testing.T) {
	harness.RequireTool(t, "git")
	out, err := exec.Command("git", "-C", "..", "ls-files").Output()
	if err != nil {
		harness.Unavailable(t, "not a git checkout: "+err.Error())
	}
	allowed := map[string]bool{"README.md": true, "Makefile": true, "go.mod": true, "go.sum": true,
		".gitignore": true, "LICENSE": true}
	for _, f := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if !strings.Contains(f, "/") && !allowed[f] {
			t.Errorf("%s at the repository root: move it into the room it belongs to, or remove it", f)
		}
	}
}
