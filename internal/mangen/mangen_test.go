package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netspawn/netspawn/internal/ctlcmd"
	"github.com/netspawn/netspawn/internal/mandoc"
	"github.com/netspawn/netspawn/internal/testutil"
	"github.com/netspawn/netspawn/netctl/daemonflags"
	"github.com/netspawn/netspawn/spawn/config"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// The test binary stands in for netspawnctl when the completion scripts
// call it (netspawnctl __complete ...): see TestBashCompletionNetspawnctl.
func TestMain(m *testing.M) {
	if os.Getenv("MANGEN_TEST_AS_NETSPAWNCTL") == "1" {
		root := ctlcmd.NewRoot(os.Stdout)
		root.SetArgs(os.Args[1:])
		if err := root.Execute(); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func render(t *testing.T, p *mandoc.Page) string {
	t.Helper()
	var b bytes.Buffer
	if err := p.Render(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// Every option, key and verb of the tables is on its page.
func TestPagesHaveEveryOption(t *testing.T) {
	m := meta{date: "2026-12-07", version: "test"}
	page := render(t, netspawnPage(m))
	for _, d := range config.FlagDocs() {
		for _, n := range []string{d.Long, d.Short} {
			dash := "--"
			if n == d.Short {
				dash = "-"
			}
			if n != "" && !strings.Contains(page, `\fB\%`+mandoc.Escape(dash+n)+`\fR`) {
				t.Errorf("netspawn.1 lacks %s%s", dash, n)
			}
		}
		if d.Group != "" && !strings.Contains(page, `.SS "`+mandoc.Escape(d.Group)+`"`) {
			t.Errorf("netspawn.1 lacks the group %q", d.Group)
		}
	}
	page = render(t, nspawnPage(m))
	for _, d := range config.SettingDocs() {
		if !strings.Contains(page, `\fB\%`+d.Key+`=\fR`) {
			t.Errorf("netspawn.nspawn.5 lacks %s=", d.Key)
		}
	}
	for _, s := range config.SettingSections {
		if !strings.Contains(page, `.SH "[`+strings.ToUpper(s)+`] SECTION OPTIONS"`) {
			t.Errorf("netspawn.nspawn.5 lacks [%s]", s)
		}
	}
	page = render(t, netspawndPage(m))
	fl, _ := daemonflags.New()
	fl.VisitAll(func(f *pflag.Flag) {
		if !strings.Contains(page, `\fB\%`+mandoc.Escape("--"+f.Name)+`\fR`) {
			t.Errorf("netspawnd.8 lacks --%s", f.Name)
		}
	})
	page = render(t, netspawnctlPage(m))
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, s := range c.Commands() {
			if s.Hidden || s.Name() == "help" {
				continue
			}
			if s.Runnable() && !strings.Contains(page, `\fB\%`+mandoc.Escape(s.Name())+`\fR`) {
				t.Errorf("netspawnctl.1 lacks the verb %q", s.Name())
			}
			s.LocalFlags().VisitAll(func(f *pflag.Flag) {
				if f.Name != "help" && !strings.Contains(page, `\fB\%`+mandoc.Escape("--"+f.Name)+`\fR`) {
					t.Errorf("netspawnctl.1 lacks %s --%s", s.Name(), f.Name)
				}
			})
			walk(s)
		}
	}
	walk(ctlcmd.NewRoot(nil))
	if !strings.Contains(page, `.TH "NETSPAWNCTL" "1" "2026\-12\-07" "netspawn test" "netspawn manual"`) {
		t.Errorf("netspawnctl.1 header: %q", strings.SplitN(page, "\n", 3)[1])
	}
}

// groff renders every page without a warning (-ww: all of them), as
// man -l does.
func TestPagesRenderWithoutWarnings(t *testing.T) {
	testutil.RequireTool(t, "groff")
	for _, f := range manPages(meta{date: "2026-12-07"}) {
		var page bytes.Buffer
		if err := f.write(&page); err != nil {
			t.Fatal(err)
		}
		// On a narrow terminal, an 80-column one (man's default) and a wide one.
		for _, width := range []string{"60n", "78n", "120n"} {
			cmd := exec.Command("groff", "-ww", "-man", "-Tutf8", "-rLL="+width)
			cmd.Stdin = bytes.NewReader(page.Bytes())
			var out, errs bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errs
			if err := cmd.Run(); err != nil || errs.Len() > 0 {
				t.Errorf("%s at %s: groff: %v\n%s", f.path, width, err, errs.String())
			}
			if out.Len() < 1000 {
				t.Errorf("%s: only %d bytes rendered", f.path, out.Len())
			}
		}
	}
}

// generated writes every file into a temporary directory and returns it.
func generated(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := generate(dir, meta{}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// bashComplete sources script, sets COMP_WORDS to words (the last the word
// being completed), calls fn and returns COMPREPLY.
func bashComplete(t *testing.T, env []string, script, fn string, words ...string) []string {
	t.Helper()
	prog := `[[ -n $BASH_COMPLETION ]] && source "$BASH_COMPLETION"; source "$1"; shift; fn=$1; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1));
COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; $fn; printf '%s\n' "${COMPREPLY[@]}"`
	cmd := exec.Command("bash", append([]string{"-c", prog, "bash", script, fn}, words...)...)
	cmd.Env = append(os.Environ(), env...)
	var errs bytes.Buffer
	cmd.Stderr = &errs
	out, err := cmd.Output()
	// compopt, which cobra's script calls, only works under a real
	// completion; anything else on stderr is an error in the script.
	var stderr []string
	for _, l := range strings.Split(strings.TrimSpace(errs.String()), "\n") {
		if l != "" && !strings.Contains(l, "compopt: not currently executing completion function") {
			stderr = append(stderr, l)
		}
	}
	if err != nil || len(stderr) > 0 {
		t.Fatalf("completing %q: %v\n%s", words, err, strings.Join(stderr, "\n"))
	}
	var got []string
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			got = append(got, l)
		}
	}
	return got
}

func imageDir(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		p := filepath.Join(dir, n)
		var err error
		if strings.HasSuffix(n, ".raw") {
			err = os.WriteFile(p, nil, 0o644)
		} else {
			err = os.Mkdir(p, 0o755)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestBashCompletionNetspawn(t *testing.T) {
	testutil.RequireTool(t, "bash")
	script := filepath.Join(generated(t), "completion", "bash", "netspawn")
	images := "NETSPAWN_IMAGES_DIR=" + imageDir(t, "web", "db", "disk.raw", ".hidden")
	for _, lib := range []string{"", bashCompletion(t)} {
		testNetspawnBash(t, script, []string{images, "BASH_COMPLETION=" + lib})
	}
}

// bashCase is a command line and the candidates bash must complete it
// with, joined by spaces.
type bashCase struct {
	words []string
	want  string
}

// checkBash completes each case with join and checks what it gets.
func checkBash(t *testing.T, join func(...string) string, cases []bashCase) {
	t.Helper()
	for _, c := range cases {
		if got := join(c.words...); got != c.want {
			t.Errorf("%q: got %q, want %q", c.words, got, c.want)
		}
	}
}

// testNetspawnBash runs netspawn's bash completion cases, with or without
// the bash-completion library loaded (env).
func testNetspawnBash(t *testing.T, script string, env []string) {
	join := func(words ...string) string {
		return strings.Join(bashComplete(t, env, script, "_netspawn", words...), " ")
	}
	checkBash(t, join, []bashCase{
		{[]string{"netspawn", "--con"}, "--console"},
		{[]string{"netspawn", "--console=pi"}, "--console=pipe"},
		{[]string{"netspawn", "--console", "=", "a"}, "autopipe"},
		{[]string{"netspawn", "--console", "="}, "interactive read-only passive pipe autopipe"},
		{[]string{"netspawn", "--link-journal", "try"}, "try-guest try-host"},
		{[]string{"netspawn", "--resolv-conf=bind-s"}, "--resolv-conf=bind-static --resolv-conf=bind-stub"},
		{[]string{"netspawn", "--timezone", "s"}, "symlink"},
		{[]string{"netspawn", "-M", ""}, "db web"},
		{[]string{"netspawn", "--machine", "w"}, "web"},
		{[]string{"netspawn", "-qbM", ""}, "db web"},
		{[]string{"netspawn", "--machine=d"}, "--machine=db"},
		{[]string{"netspawn", "-U"}, "-U"},
		{[]string{"netspawn", "--register", ""}, "yes no"},
		// After the command, options are the command's.
		{[]string{"netspawn", "-M", "web", "ls", "--con"}, ""},
		{[]string{"netspawn", "--", "--con"}, ""},
		// An optional value goes with "=" only: the next word is the command.
		{[]string{"netspawn", "--volatile", "ls", "--con"}, ""},
		{[]string{"netspawn", "--volatile", "--con"}, "--console"},
		{[]string{"netspawn", "--volatile=o"}, "--volatile=overlay"},
	})
	// Every option of the table is offered.
	all := " " + join("netspawn", "-") + " "
	for _, d := range config.FlagDocs() {
		if d.Long != "" && !strings.Contains(all, " --"+d.Long+" ") {
			t.Errorf("--%s is not offered", d.Long)
		}
		if d.Short != "" && !strings.Contains(all, " -"+d.Short+" ") {
			t.Errorf("-%s is not offered", d.Short)
		}
	}
}

// bashCompletion is the bash-completion package's library, which cobra's
// scripts use (every system that loads completions from
// share/bash-completion/completions has it).
func bashCompletion(t *testing.T) string {
	t.Helper()
	const p = "/usr/share/bash-completion/bash_completion"
	if _, err := os.Stat(p); err != nil {
		testutil.Unavailable(t, "needs "+p+" (Debian package bash-completion; make test installs it)")
	}
	return p
}

func TestBashCompletionNetspawnd(t *testing.T) {
	testutil.RequireTool(t, "bash")
	script := filepath.Join(generated(t), "completion", "bash", "netspawnd")
	join := func(words ...string) string {
		return strings.Join(bashComplete(t, nil, script, "_netspawnd", words...), " ")
	}
	checkBash(t, join, []bashCase{
		{[]string{"netspawnd", "--log-l"}, "--log-level"},
		{[]string{"netspawnd", "--log-level", "w"}, "warn"},
		{[]string{"netspawnd", "--ipv6-masquerade=a"}, "--ipv6-masquerade=auto"},
		{[]string{"netspawnd", "--dhcp=f"}, "--dhcp=false"},
	})
	all := " " + join("netspawnd", "--") + " "
	fl, _ := daemonflags.New()
	fl.VisitAll(func(f *pflag.Flag) {
		if !strings.Contains(all, " --"+f.Name+" ") {
			t.Errorf("--%s is not offered", f.Name)
		}
	})
}

// selfAsNetspawnctl links this test binary as netspawnctl into a new
// directory, for PATH, and returns it.
func selfAsNetspawnctl(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(self, filepath.Join(bin, "netspawnctl")); err != nil {
		t.Fatal(err)
	}
	return bin
}

// netspawnctl's script asks the program (here this test binary, as
// netspawnctl in PATH) for verbs and image names.
func TestBashCompletionNetspawnctl(t *testing.T) {
	testutil.RequireTool(t, "bash")
	script := filepath.Join(generated(t), "completion", "bash", "netspawnctl")
	bin := selfAsNetspawnctl(t)
	env := []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "MANGEN_TEST_AS_NETSPAWNCTL=1", "BASH_COMPLETION=" + bashCompletion(t),
		"NETSPAWN_IMAGES_DIR=" + imageDir(t, "web", "db"), "NETSPAWN_RUNTIME_DIR=" + t.TempDir()}
	join := func(words ...string) string {
		return strings.Join(bashComplete(t, env, script, "__start_netspawnctl", words...), " ")
	}
	checkBash(t, join, []bashCase{
		{[]string{"netspawnctl", "list-"}, "list-images"},
		{[]string{"netspawnctl", "start", ""}, "db web"},
		{[]string{"netspawnctl", "remove", "db", ""}, "web"},
		{[]string{"netspawnctl", "-o", ""}, "table json"},
		// No netspawnd: no running machine, and none was started.
		{[]string{"netspawnctl", "shell", ""}, ""},
	})
}

// zsh and fish check their scripts' syntax, and fish completes from them
// (TestZshCompletion runs zsh's). Both are in the Makefile's TEST_PKGS.
func TestZshFishScripts(t *testing.T) {
	testutil.RequireTool(t, "zsh", "fish")
	dir := generated(t)
	for _, n := range []string{"_netspawn", "_netspawnd", "_netspawnctl"} {
		if out, err := exec.Command("zsh", "-n", filepath.Join(dir, "completion", "zsh", n)).CombinedOutput(); err != nil {
			t.Errorf("zsh -n %s: %v\n%s", n, err, out)
		}
	}
	for _, n := range []string{"netspawn.fish", "netspawnd.fish", "netspawnctl.fish"} {
		if out, err := exec.Command("fish", "-n", filepath.Join(dir, "completion", "fish", n)).CombinedOutput(); err != nil {
			t.Errorf("fish -n %s: %v\n%s", n, err, out)
		}
	}
	cmd := exec.Command("fish", "--no-config", "-c", `source $argv[1]; complete -C "netspawn --console=pi"; complete -C "netspawn -M "`,
		filepath.Join(dir, "completion", "fish", "netspawn.fish"))
	cmd.Env = append(os.Environ(), "NETSPAWN_IMAGES_DIR="+imageDir(t, "web", "disk.raw"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("fish: %v\n%s", err, out)
	}
	got := string(out)
	if !strings.Contains(got, "--console=pipe\t") || !strings.Contains(got, "web\t") || strings.Contains(got, "disk") {
		t.Errorf("fish completions:\n%s", got)
	}
}

// zshCapture completes lines in an interactive zsh: run on a
// pseudo-terminal (zpty) and sourced there, it completes each line of
// $ZCASES with complete-word from its zle-line-init widget, writes the
// candidates the completion system is given for the Nth to $ZOUT/N, and
// exits. Nothing is typed ahead of the shell and nothing waits for a time.
const zshCapture = `fpath=($ZDIR $fpath); autoload -Uz compinit; compinit -u -D
PROMPT=''; zstyle ':completion:*' list-prompt ''; LISTMAX=100000; unsetopt beep
compadd() { local -a hits; builtin compadd -O hits "$@"; (( $#hits )) && print -rl -- $hits >> $HITS; builtin compadd "$@" }
cases=("${(@f)ZCASES}"); i=0
zcap-line-init() {
  if (( i == $#cases )); then BUFFER=exit; zle accept-line; return; fi
  i=$((i + 1)); HITS=$ZOUT/$i
  BUFFER=$cases[i]; CURSOR=$#BUFFER
  zle complete-word
  BUFFER=; zle accept-line
}
zle -N zle-line-init zcap-line-init
`

// zshDriver starts zsh on a pseudo-terminal, has it source $1 and reads
// its output until it exits.
const zshDriver = `zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "source ${(q)1}"
while zpty -r z line; do :; done
zpty -d z
`

// zsh completes from the generated scripts as a user's shell would.
func TestZshCompletion(t *testing.T) {
	testutil.RequireTool(t, "zsh")
	dir := generated(t)
	bin := selfAsNetspawnctl(t)
	env := append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "MANGEN_TEST_AS_NETSPAWNCTL=1",
		"NETSPAWN_IMAGES_DIR="+imageDir(t, "web", "db", "disk.raw", ".hidden"), "NETSPAWN_RUNTIME_DIR="+t.TempDir())
	cases := map[string]string{
		"netspawn --console=":                   "interactive read-only passive pipe autopipe",
		"netspawn -M ":                          "db web",
		"netspawn -qM w":                        "web",
		"netspawn --reso":                       "--resolv-conf",
		"netspawn -b -M web --link-journal=try": "try-guest try-host",
		"netspawnd --log-level ":                "debug info warn error",
		"netspawnctl list-":                     "list-images",
		"netspawnctl start ":                    "db disk web", // raw images are images to netspawnctl
	}
	var lines []string
	for l := range cases {
		lines = append(lines, l)
	}
	hits := t.TempDir()
	capture := filepath.Join(hits, "capture.zsh")
	if err := os.WriteFile(capture, []byte(zshCapture), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "zsh", "-f", "-c", zshDriver, "zsh", capture)
	cmd.Env = append(env, "ZDIR="+filepath.Join(dir, "completion", "zsh"), "ZOUT="+hits, "ZCASES="+strings.Join(lines, "\n"))
	if out, err := cmd.CombinedOutput(); err != nil || ctx.Err() != nil {
		t.Fatalf("zsh: %v\n%s", err, out)
	}
	for i, line := range lines {
		b, _ := os.ReadFile(filepath.Join(hits, strconv.Itoa(i+1)))
		seen := map[string]bool{}
		var got []string
		for _, h := range strings.Fields(string(b)) {
			if !seen[h] {
				seen[h] = true
				got = append(got, h)
			}
		}
		if want := cases[line]; strings.Join(got, " ") != want {
			t.Errorf("zsh %q: got %q, want %q", line, got, want)
		}
	}
}
