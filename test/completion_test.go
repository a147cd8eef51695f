package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netspawn/netspawn/internal/testutil"
	"github.com/netspawn/netspawn/test/harness"
)

// The bash completions, loaded as bash-completion loads them, list the
// images for netspawn -M and netspawnctl start, and the running machines
// for netspawnctl shell, from the real programs and a real netspawnd.
func TestCompletionListsMachines(t *testing.T) {
	e := harness.NewEnv(t)
	testutil.RequireTool(t, "bash", "go")
	const lib = "/usr/share/bash-completion/bash_completion"
	if _, err := os.Stat(lib); err != nil {
		testutil.Unavailable(t, "needs bash-completion (make test installs it)")
	}
	e.ShareTree()
	if err := os.Mkdir(filepath.Join(e.ImagesDir, "man-image"), 0o755); err != nil {
		t.Fatal(err)
	}
	gen := t.TempDir()
	if out, err := exec.Command("go", "run", "../internal/mangen", "-o", gen).CombinedOutput(); err != nil {
		t.Fatalf("mangen: %v\n%s", err, out)
	}
	background(t, e, "man-web", "sleep", "1000")

	// complete runs a completion function in the test's namespace, with the
	// programs of e.Bin first in PATH and the test's directories.
	complete := func(script, fn string, words ...string) string {
		t.Helper()
		prog := `source "$1"; source "$2"; fn=$3; shift 3; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1));
COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; $fn 2>/dev/null; printf '%s\n' "${COMPREPLY[@]}"`
		cmd := e.NS.Command("bash", append([]string{"-c", prog, "bash", lib, filepath.Join(gen, "completion", "bash", script), fn}, words...)...)
		cmd.Env = append(append(os.Environ(), e.Vars...), "PATH="+e.Bin+":"+os.Getenv("PATH"))
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("completing %q: %v", words, err)
		}
		return strings.Join(strings.Fields(string(out)), " ")
	}
	if got := complete("netspawnctl", "__start_netspawnctl", "netspawnctl", "shell", "man-"); got != "man-web" {
		t.Errorf("netspawnctl shell man-: %q, want the running machine man-web", got)
	}
	if got := complete("netspawnctl", "__start_netspawnctl", "netspawnctl", "start", ""); got != "man-image" {
		t.Errorf("netspawnctl start: %q, want the image man-image", got)
	}
	if got := complete("netspawn", "_netspawn", "netspawn", "-M", "man"); got != "man-image" {
		t.Errorf("netspawn -M man: %q, want man-image", got)
	}
	if got := complete("netspawnd", "_netspawnd", "netspawnd", "--log-level", "d"); got != "debug" {
		t.Errorf("netspawnd --log-level d: %q", got)
	}
}
