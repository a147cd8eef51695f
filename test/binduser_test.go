package test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netspawn/netspawn/test/harness"
)

// Machine names here start with "jrn" (machine cgroups are global).

// bindUserEnv runs netspawn in a private mount namespace whose /etc/passwd
// and /etc/group are the host's plus a test user jrnuser (UID and GID
// 4711) with a home directory in the test's temporary directory: the
// machine's own user database is never touched.
type bindUserEnv struct {
	e             *harness.Env
	passwd, group string
	home          string
	tree          string // the container's tree (default e.Tree)
}

const jrnUserID = 4711

func newBindUserEnv(t *testing.T) *bindUserEnv {
	e := harness.NewEnv(t)
	harness.RequireTool(t, "unshare")
	base := t.TempDir()
	b := &bindUserEnv{e: e, passwd: filepath.Join(base, "passwd"), group: filepath.Join(base, "group"), home: filepath.Join(base, "home", "jrnuser"), tree: e.Tree}
	for f, extra := range map[string]string{
		"/etc/passwd": "jrnuser:x:4711:4711:Journal Test:" + b.home + ":/bin/sh\njrnshared:x:4712:100::" + b.home + ":/bin/sh\n",
		"/etc/group":  "jrnuser:x:4711:\n",
	} {
		host, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(host) > 0 && host[len(host)-1] != '\n' {
			host = append(host, '\n')
		}
		dst := b.passwd
		if f == "/etc/group" {
			dst = b.group
		}
		if err := os.WriteFile(dst, append(host, extra...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(b.home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.home, "hello"), []byte("hello from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{b.home, filepath.Join(b.home, "hello")} {
		if err := os.Chown(p, jrnUserID, jrnUserID); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// netspawn runs netspawn -q -D TREE ARGS with the test's user database.
func (b *bindUserEnv) netspawn(t *testing.T, args ...string) harness.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	script := `mount --bind "$1" /etc/passwd && mount --bind "$2" /etc/group && shift 2 && exec "$@"`
	argv := append([]string{"--mount", "--propagation", "private", "sh", "-c", script, "sh", b.passwd, b.group,
		filepath.Join(b.e.Bin, "netspawn"), "-q", "-D", b.tree}, args...)
	cmd := b.e.NS.CommandContext(ctx, "unshare", argv...)
	cmd.Env = append(os.Environ(), b.e.Vars...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := harness.Result{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// --bind-user=: the host user's home at /run/host/home/NAME owned by the
// container UID it is mapped to (60514, the first of nspawn's range), its
// user and group records in /run/host/userdb, and that one UID mapped to the
// host's in the user namespace. A busybox tree has no nss-systemd, so the
// user is not in its passwd database: only the records and the home appear.
func TestBindUser(t *testing.T) {
	b := newBindUserEnv(t)
	show := `stat -c '%u %g' /run/host/home/jrnuser /run/host/home/jrnuser/hello; cat /run/host/home/jrnuser/hello;
		cat /run/host/userdb/jrnuser.user /run/host/userdb/jrnuser.group; readlink /run/host/userdb/60514.user; readlink /run/host/userdb/60514.group;
		ls /run/host/userdb; stat -c '%a %u' /run/host/userdb/jrnuser.user; awk '$1 == 60514 {print $2, $3}' /proc/self/uid_map /proc/self/gid_map;
		grep -c jrnuser /etc/passwd || true`
	r := b.netspawn(t, "-M", "jrn-bu", "--private-users=pick", "--private-users-ownership=chown", "--bind-user=jrnuser", "sh", "-c", show)
	want(t, r, `60514 60514
60514 60514
hello from the host
{"userName":"jrnuser","uid":60514,"gid":60514,"homeDirectory":"/run/host/home/jrnuser","service":"io.systemd.NSpawn"}
{"groupName":"jrnuser","gid":60514,"service":"io.systemd.NSpawn"}
jrnuser.user
jrnuser.group
60514.group
60514.user
jrnuser.group
jrnuser.user
644 0
4711 1
4711 1
0`)
	// -U, the name twice (once counts): the container's root writes to the
	// home on the host, the user's files stay the host user's.
	r = b.netspawn(t, "-M", "jrn-bu", "-U", "--bind-user=jrnuser", "--bind-user=jrnuser", "sh", "-c",
		"echo written > /run/host/home/jrnuser/from-container && ls /run/host/userdb | wc -l")
	want(t, r, "4")
	if got, err := os.ReadFile(filepath.Join(b.home, "from-container")); err != nil || string(got) != "written\n" {
		t.Errorf("the host's home: %q %v", got, err)
	}
	if fi, err := os.Stat(filepath.Join(b.home, "hello")); err != nil || fi.Sys().(*syscall.Stat_t).Uid != jrnUserID {
		t.Errorf("hello's owner changed: %v", err)
	}

	// [Files] BindUser= of a trusted .nspawn file (with its PrivateUsers=).
	settings := t.TempDir()
	writeFile(t, filepath.Join(settings, "jrn-bu.nspawn"), "[Exec]\nPrivateUsers=pick\n[Files]\nBindUser=jrnuser\n")
	restore := withEnv(b.e, "NETSPAWN_SETTINGS_PATH="+settings)
	want(t, b.netspawn(t, "-M", "jrn-bu", "sh", "-c", "stat -c %u /run/host/home/jrnuser/hello; ls /run/host/userdb | wc -l"), "60514\n4")
	restore()

	wantFail(t, b.netspawn(t, "-M", "jrn-bu", "--bind-user=jrnuser", "true"), "--bind-user= requires --private-users")
	wantFail(t, b.netspawn(t, "-M", "jrn-bu", "-U", "--bind-user=jrnnobody", "true"), "failed to resolve user 'jrnnobody'")
	wantFail(t, b.netspawn(t, "-M", "jrn-bu", "-U", "--bind-user=9bad", "true"), `invalid user name to bind: "9bad"`)
	wantFail(t, b.netspawn(t, "-M", "jrn-bu", "-U", "--bind-user=root", "true"), "mapping the 'root' user is not supported")
	wantFail(t, b.netspawn(t, "-M", "jrn-bu", "-U", "--bind-user=jrnshared", "true"), "without a private group")
	// A user of that name in the container.
	pw := filepath.Join(b.e.Tree, "etc/passwd")
	orig, err := os.ReadFile(pw)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pw, append(orig, "jrnuser:x:2000:2000::/home/jrnuser:/bin/sh\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	wantFail(t, b.netspawn(t, "-M", "jrn-bu", "-U", "--bind-user=jrnuser", "true"), "the user 'jrnuser' already exists in the container")
}

// In a Debian tree with nss-systemd (the host's libnss_systemd, Debian's
// libnss-systemd) the bound user is in the passwd and group databases, as
// nspawn's --bind-user= promises: nss-systemd reads /run/host/userdb.
func TestBindUserNSS(t *testing.T) {
	b := newBindUserEnv(t)
	b.tree = debianTree(t, b.e)
	const lib = "usr/lib/x86_64-linux-gnu/libnss_systemd.so.2"
	if _, err := os.Stat("/" + lib); err != nil {
		harness.Unavailable(t, "needs libnss-systemd")
	}
	if err := harness.CopyFile("/"+lib, filepath.Join(b.tree, lib), 0o644); err != nil {
		t.Fatal(err)
	}
	nss := "passwd: files systemd\ngroup: files systemd\nshadow: files\nhosts: files\n"
	if err := os.WriteFile(filepath.Join(b.tree, "etc/nsswitch.conf"), []byte(nss), 0o644); err != nil {
		t.Fatal(err)
	}
	r := b.netspawn(t, "-M", "jrn-bunss", "-U", "--bind-user=jrnuser", "sh", "-c",
		"getent passwd jrnuser | cut -d: -f1,3,4,6; getent group jrnuser | cut -d: -f1,3; stat -c '%U %G' /run/host/home/jrnuser/hello")
	want(t, r, "jrnuser:60514:60514:/run/host/home/jrnuser\njrnuser:60514\njrnuser jrnuser")
}
