// Package packaging holds the Arch PKGBUILD and the RPM spec (the Debian
// package is built by packaging/deb). makepkg and rpmbuild are not on the
// Debian machines the tests run on, so these tests check what can be
// checked without them: the shell syntax, and that each package lists
// exactly what `make install` installs with the variables it passes
// (`make -n`, nothing is built); namcap, rpmspec and rpmlint run where
// installed.
package packaging

import (
	"bytes"
	"os"
	"os/exec"
	"path"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/netspawn/netspawn/internal/testutil"
)

// installed runs `make -n install VARS` at the top of the repository and
// returns the files its install commands would write, with dest's
// DESTDIR prefix removed.
func installed(t *testing.T, vars []string, destdir string) map[string]bool {
	t.Helper()
	args := append([]string{"-C", "..", "-n", "install", "DESTDIR=" + destdir}, vars...)
	out, err := exec.Command("make", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("make %q: %v\n%s", args, err, out)
	}
	files := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		for _, cmd := range strings.Split(line, "&&") {
			for dst := range installCmd(cmd) {
				files[strings.TrimPrefix(dst, destdir)] = true
			}
		}
	}
	if len(files) == 0 {
		t.Fatalf("make -n install wrote nothing:\n%s", out)
	}
	return files
}

// installCmd reads one install(1) command that copies files (not -d) and
// returns the files it writes.
func installCmd(cmd string) map[string]bool {
	f := strings.Fields(cmd)
	if len(f) < 3 || f[0] != "install" {
		return nil
	}
	var args []string
	for i := 1; i < len(f); i++ {
		switch {
		case f[i] == "-d":
			return nil
		case f[i] == "-m" || f[i] == "-o" || f[i] == "-g":
			i++
		case strings.HasPrefix(f[i], "-"):
			if strings.Contains(f[i], "d") && !strings.Contains(f[i], "D") {
				return nil
			}
			if strings.HasSuffix(f[i], "m") && !strings.HasPrefix(f[i], "--") {
				i++ // -Dpm MODE
			}
		default:
			args = append(args, strings.Trim(f[i], `"`))
		}
	}
	if len(args) < 2 {
		return nil
	}
	dst := args[len(args)-1]
	srcs := args[:len(args)-1]
	dirTarget := strings.HasSuffix(dst, "/") || len(srcs) > 1
	out := map[string]bool{}
	for _, s := range srcs {
		if dirTarget {
			out[path.Join(dst, path.Base(s))] = true
		} else {
			out[path.Clean(dst)] = true
		}
	}
	return out
}

func sorted(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// The files every package must carry, as paths under PREFIX=/usr.
var wantFiles = []string{
	"netspawn", "netspawnctl", "netspawnd", "libnss_netspawn.so.2",
	"man1/netspawn.1", "man1/netspawnctl.1", "man5/netspawn.nspawn.5", "man8/netspawnd.8",
	"completions/netspawn", "completions/netspawnctl", "completions/netspawnd",
	"_netspawn", "_netspawnctl", "_netspawnd", "netspawn.fish", "netspawnctl.fish", "netspawnd.fish",
	"system/netspawnd.service", "etc/netspawn/netspawnd.conf",
}

func hasSuffix(files map[string]bool, suffix string) bool {
	for f := range files {
		if strings.HasSuffix(f, "/"+suffix) {
			return true
		}
	}
	return false
}

func TestPKGBUILD(t *testing.T) {
	testutil.RequireTool(t, "bash", "make")
	for _, f := range []string{"arch/PKGBUILD", "arch/netspawn.install"} {
		if out, err := exec.Command("bash", "-n", f).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", f, err, out)
		}
	}
	// Its variables, as makepkg sources them.
	out, err := exec.Command("bash", "-c", `set -eu; source arch/PKGBUILD
printf '%s\n' "$pkgname" "$pkgver" "$install" "${backup[*]}" "${depends[*]}" "${arch[*]}"
declare -F build package >/dev/null`).CombinedOutput()
	if err != nil {
		t.Fatalf("sourcing the PKGBUILD: %v\n%s", err, out)
	}
	v := strings.Split(string(out), "\n")
	if v[0] != "netspawn" || v[1] == "" || v[2] != "netspawn.install" || !strings.Contains(v[3], "etc/netspawn/netspawnd.conf") ||
		!strings.Contains(v[4], "glibc") || !strings.Contains(v[5], "x86_64") {
		t.Errorf("PKGBUILD variables: %q", v)
	}
	if _, err := os.Stat("arch/" + v[2]); err != nil {
		t.Errorf("install script: %v", err)
	}
	// What package() installs: make install with its variables, then its
	// own install -D lines.
	text, err := os.ReadFile("arch/PKGBUILD")
	if err != nil {
		t.Fatal(err)
	}
	const dest = "/PKGDIR"
	src := strings.ReplaceAll(string(text), `"$pkgdir"`, dest)
	src = strings.ReplaceAll(src, `$pkgdir`, dest)
	mk := regexp.MustCompile(`(?m)^\s*make install (.*)$`).FindStringSubmatch(src)
	if mk == nil {
		t.Fatal("package() does not run make install")
	}
	var vars []string
	for _, w := range strings.Fields(mk[1]) {
		if !strings.HasPrefix(w, "DESTDIR=") {
			vars = append(vars, w)
		}
	}
	files := installed(t, vars, dest)
	for _, l := range regexp.MustCompile(`(?m)^\s*(install -D.*)$`).FindAllStringSubmatch(src, -1) {
		for f := range installCmd(l[1]) {
			files[strings.TrimPrefix(f, dest)] = true
		}
	}
	for _, w := range wantFiles {
		if !hasSuffix(files, w) {
			t.Errorf("the package lacks %s; it has %q", w, sorted(files))
		}
	}
	for f := range files {
		// Arch: everything under /usr (or /etc), nothing in /usr/sbin (a link to bin).
		if !strings.HasPrefix(f, "/usr/") && !strings.HasPrefix(f, "/etc/") || strings.HasPrefix(f, "/usr/sbin/") || strings.HasPrefix(f, "/usr/local/") {
			t.Errorf("%s: not where an Arch package may put files", f)
		}
	}
	if !files["/usr/share/zsh/site-functions/_netspawn"] || !files["/usr/lib/systemd/system/netspawnd.service"] {
		t.Errorf("zsh completion or unit not in Arch's directories: %q", sorted(files))
	}
	if _, err := exec.LookPath("namcap"); err == nil {
		if out, err := exec.Command("namcap", "arch/PKGBUILD").CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("namcap: %v\n%s", err, out)
		}
	} else {
		t.Log("namcap is not installed (not packaged for Debian): only bash -n and the file list were checked")
	}
}

// rpmMacros are Fedora's values of the macros the spec uses.
var rpmMacros = map[string]string{
	"name": "netspawn", "version": "0.1.0", "buildroot": "/BUILDROOT",
	"_prefix": "/usr", "_bindir": "/usr/bin", "_sbindir": "/usr/sbin", "_libdir": "/usr/lib64",
	"_libexecdir": "/usr/libexec", "_datadir": "/usr/share", "_mandir": "/usr/share/man",
	"_sysconfdir": "/etc", "_unitdir": "/usr/lib/systemd/system", "_docdir": "/usr/share/doc",
}

var macroRef = regexp.MustCompile(`%\{([A-Za-z_][A-Za-z0-9_]*)\}`)

func expand(t *testing.T, s string, macros map[string]string) string {
	t.Helper()
	for i := 0; i < 10 && macroRef.MatchString(s); i++ {
		s = macroRef.ReplaceAllStringFunc(s, func(m string) string {
			name := macroRef.FindStringSubmatch(m)[1]
			v, ok := macros[name]
			if !ok {
				t.Errorf("unknown macro %s", m)
			}
			return v
		})
	}
	return s
}

func TestRPMSpec(t *testing.T) {
	testutil.RequireTool(t, "make")
	text, err := os.ReadFile("rpm/netspawn.spec")
	if err != nil {
		t.Fatal(err)
	}
	spec := string(text)
	macros := map[string]string{}
	for k, v := range rpmMacros {
		macros[k] = v
	}
	// The spec's fallbacks for the completion directories.
	for _, m := range regexp.MustCompile(`%\{!\?(\w+):\s*%global\s+\w+\s+(\S+)\}`).FindAllStringSubmatch(spec, -1) {
		macros[m[1]] = m[2]
	}
	for _, k := range []string{"bash_completions_dir", "zsh_completions_dir", "fish_completions_dir"} {
		if macros[k] == "" {
			t.Errorf("no fallback for %%{%s}", k)
		}
	}
	section := func(name string) string {
		i := strings.Index(spec, "\n"+name+"\n")
		if i < 0 {
			t.Fatalf("no %s section", name)
		}
		rest := spec[i+len(name)+2:]
		if j := regexp.MustCompile(`(?m)^%(prep|build|install|check|post|preun|postun|files|changelog)\b`).FindStringIndex(rest); j != nil {
			rest = rest[:j[0]]
		}
		return rest
	}
	inst := expand(t, section("%install"), macros)
	mk := regexp.MustCompile(`(?m)^make install (.*)$`).FindStringSubmatch(inst)
	if mk == nil {
		t.Fatal("%install does not run make install")
	}
	dest := macros["buildroot"]
	var vars []string
	for _, w := range strings.Fields(mk[1]) {
		if !strings.HasPrefix(w, "DESTDIR=") {
			vars = append(vars, w)
		}
	}
	files := installed(t, vars, dest)
	for _, l := range regexp.MustCompile(`(?m)^(install -D.*)$`).FindAllStringSubmatch(inst, -1) {
		for f := range installCmd(l[1]) {
			files[strings.TrimPrefix(f, dest)] = true
		}
	}
	// %files must list every installed file, and only those (rpmbuild
	// fails on both "unpackaged" and "not found").
	var entries []string
	for _, l := range strings.Split(expand(t, section("%files"), macros), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "%doc") || strings.HasPrefix(l, "%dir") || strings.HasPrefix(l, "#") {
			continue
		}
		l = strings.TrimSpace(strings.TrimPrefix(l, "%config(noreplace)"))
		entries = append(entries, l)
	}
	matched := map[string]bool{}
	for f := range files {
		ok := false
		for _, e := range entries {
			if m, _ := path.Match(e, f); m || strings.HasSuffix(e, "*") && strings.HasPrefix(f, strings.TrimSuffix(e, "*")) {
				ok, matched[e] = true, true
			}
		}
		if !ok {
			t.Errorf("installed but not in %%files: %s", f)
		}
	}
	for _, e := range entries {
		if !matched[e] {
			t.Errorf("in %%files but not installed: %s", e)
		}
	}
	for _, w := range wantFiles {
		if !hasSuffix(files, w) {
			t.Errorf("the package lacks %s", w)
		}
	}
	for _, tool := range [][]string{{"rpmspec", "-P", "rpm/netspawn.spec"}, {"rpmlint", "rpm/netspawn.spec"}} {
		if _, err := exec.LookPath(tool[0]); err != nil {
			t.Logf("%s is not installed: the spec was checked against make install only", tool[0])
			continue
		}
		if out, err := exec.Command(tool[0], tool[1:]...).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", strings.Join(tool, " "), err, out)
		}
	}
}
