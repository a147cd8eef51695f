package config

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

func TestCunescape(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{in: "plain", want: "plain"},
		{in: `a\nb\tc\\d\"e\'f\sg`, want: "a\nb\tc\\d\"e'f g"},
		{in: `\x41\x00z`, want: "A\x00z"},
		{in: `\101\000`, want: "A\x00"},
		{in: `\u00e9\U0001F600`, want: "é😀"},
		{in: `\a\b\f\v\r`, want: "\a\b\f\v\r"},
		{in: `bad\q`, err: `invalid escape \q`},
		{in: `trail\`, err: "trailing backslash"},
		{in: `\x4`, err: "invalid escape"},
		{in: `\777`, err: "above 255"},
		{in: `\U00110000`, err: "invalid code point"},
	}
	for _, tt := range tests {
		got, err := Cunescape(tt.in)
		if tt.err != "" {
			errContains(t, err, tt.err)
			continue
		}
		if err != nil || string(got) != tt.want {
			t.Errorf("Cunescape(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestCredentialNameValid(t *testing.T) {
	for s, want := range map[string]bool{"db.password": true, "a-b_c@1": true, "": false, ".": false, "..": false,
		"a/b": false, "a:b": false, "tab\tx": false, "é": false, string(make([]byte, 256)): false} {
		if got := CredentialNameValid(s); got != want {
			t.Errorf("CredentialNameValid(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestCredentialFlags(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte("from\x00file"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, "-D/x/y", `--set-credential=a:one\ntwo:three`, "--load-credential=b:"+file, "--set-credential=empty:")
	eq(t, c.Credentials, []Credential{{"a", []byte("one\ntwo:three")}, {"b", []byte("from\x00file")}, {"empty", []byte{}}})

	// A relative path is a credential netspawn got itself.
	if err := os.WriteFile(filepath.Join(dir, "inherited"), []byte("inh"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := testEnv(t)
	env.getenv = func(k string) string {
		if k == "CREDENTIALS_DIRECTORY" {
			return dir
		}
		return ""
	}
	c2, err := parseArgs([]string{"-D/x/y", "--load-credential=i:inherited"}, env)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, string(c2.Credentials[0].Data), "inh")

	// An AF_UNIX stream socket is connected to and read to its end.
	sock := filepath.Join(dir, "s")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		conn, err := l.Accept()
		if err == nil {
			_, _ = conn.Write([]byte("via socket"))
			conn.Close()
		}
	}()
	c3 := mustParse(t, "-D/x/y", "--load-credential=s:"+sock)
	eq(t, string(c3.Credentials[0].Data), "via socket")

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--set-credential=novalue"}, "missing value for --set-credential=: novalue"},
		{[]string{"--set-credential=a/b:x"}, `credential name is not valid: "a/b"`},
		{[]string{"--set-credential=..:x"}, `credential name is not valid: ".."`},
		{[]string{"--set-credential=a:1", "--load-credential=a:" + file}, "duplicate credential 'a', refusing"},
		{[]string{`--set-credential=a:\z`}, `failed to unescape credential data "\\z": invalid escape \z`},
		{[]string{"--load-credential=b:" + dir + "/missing"}, "failed to read credential '" + dir + "/missing'"},
		{[]string{"--load-credential=b:" + dir}, "not a regular file or AF_UNIX socket"},
		{[]string{"--load-credential=b:rel"}, "no credentials passed at all"},
	} {
		_, err := parseArgs(append([]string{"-D/x/y"}, tt.args...), testEnv(t))
		errContains(t, err, tt.want)
	}
}

func TestPivotRootAndSlice(t *testing.T) {
	c := mustParse(t, "-D/x/y", "--pivot-root=/sysroot/a/:/oldroot", "-S", "tenants-web")
	eq(t, c.PivotRoot, "/sysroot/a")
	eq(t, c.PivotRootOld, "/oldroot")
	eq(t, c.Slice, "tenants-web.slice")
	c = mustParse(t, "-D/x/y", "--pivot-root=/sysroot", "--slice=-.slice")
	eq(t, c.PivotRootOld, "")
	eq(t, c.Slice, "-.slice")

	for _, tt := range []struct{ arg, want string }{
		{"--pivot-root=sysroot", `"sysroot" is not an absolute path`},
		{"--pivot-root=/a:old", `"old" is not an absolute path`},
		{"--pivot-root=/a/../..", "leaves the image"},
		{"--pivot-root=/", "not / itself"},
		{"--pivot-root=/a:/", "old root cannot go to /"},
		{"--slice=web.service", `invalid slice name "web.service": a slice unit name ends in .slice`},
		{"--slice=a--b.slice", `invalid slice name "a--b.slice"`},
		{"--slice=-a.slice", `invalid slice name "-a.slice"`},
		{"--slice=a b", `character ' ' is not allowed`},
		{"--slice=.slice", `invalid slice name ".slice"`},
		{"--slice=", "needs a slice name"},
	} {
		_, err := parseArgs([]string{"-D/x/y", tt.arg}, testEnv(t))
		errContains(t, err, tt.want)
	}

	// [Exec] PivotRoot= applies unless the command line set it.
	c = mustParse(t, "-D/srv/web")
	mustApply(t, c, "[Exec]\nPivotRoot=/ostree/deploy:/sysroot\n", false, "yes")
	eq(t, c.PivotRoot, "/ostree/deploy")
	eq(t, c.PivotRootOld, "/sysroot")
	c = mustParse(t, "-D/srv/web", "--pivot-root=/mine")
	mustApply(t, c, "[Exec]\nPivotRoot=/ostree/deploy:/sysroot\n", false, "yes")
	eq(t, c.PivotRoot, "/mine")
	eq(t, c.PivotRootOld, "")
}
