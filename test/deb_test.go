package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netspawn/netspawn/internal/testutil"
	"github.com/netspawn/netspawn/nss/nsswitch"
	"github.com/netspawn/netspawn/test/harness"
)

// The Debian package (make deb, packaging/deb): built, installed into a
// fresh Debian tree with dpkg, used in that tree booted with netspawn -b,
// then removed and purged there, leaving nothing behind.

// buildDeb runs make deb's script into a directory of the test's, or takes
// $NETSPAWN_DEB (a .deb built before) as it is.
func buildDeb(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("NETSPAWN_DEB"); p != "" {
		return p
	}
	harness.RequireTool(t, "dpkg-deb", "dpkg-architecture", "gcc")
	out := t.TempDir()
	cmd := exec.Command("./packaging/deb/build.sh", out)
	cmd.Dir = repoDir(t)
	b, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("packaging/deb/build.sh: %v: %s", err, stderr)
	}
	deb := strings.TrimSpace(string(b))
	if !strings.HasSuffix(deb, ".deb") {
		t.Fatalf("build.sh printed %q, want the .deb's path", deb)
	}
	return deb
}

func repoDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "packaging/deb/build.sh")); err != nil {
		t.Fatalf("not in the repository's test directory: %v", err)
	}
	return dir
}

func hostsLine(t *testing.T, nsswitchConf string) string {
	t.Helper()
	b, err := os.ReadFile(nsswitchConf)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "hosts:") {
			return l
		}
	}
	t.Fatalf("%s has no hosts line", nsswitchConf)
	return ""
}

func TestDebPackage(t *testing.T) {
	testutil.RequireRoot(t, "dpkg installs into a tree owned by root, which netspawn boots", "dpkg-deb")
	deb := buildDeb(t)
	e := harness.NewEnv(t)
	tree := debianTree(t, e)
	nssConf := filepath.Join(tree, "etc/nsswitch.conf")
	stockHosts := hostsLine(t, nssConf)
	if strings.Contains(stockHosts, "netspawn") {
		t.Fatalf("the pristine tree already names netspawn: %q", stockHosts)
	}
	data, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "var/tmp/netspawn.deb"), data, 0o644); err != nil {
		t.Fatal(err)
	}

	// apt install in the tree, as the README says, run by netspawn (a
	// command, not booted, no network: apt needs none for a local .deb
	// whose dependencies are there). Without NETSPAWN_NSS=1,
	// nsswitch.conf is left alone.
	inTree := func(env string, args ...string) string {
		t.Helper()
		argv := append([]string{"-q", "-D", tree, "-M", "debinst", "--private-network", "env", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive"}, env)
		r := e.Run("netspawn", append(argv, args...)...)
		if r.Code != 0 {
			t.Fatalf("%v in the tree: status %d\n%s%s", args, r.Code, r.Stdout, r.Stderr)
		}
		return r.Stdout + r.Stderr
	}
	dpkg := func(env string, args ...string) string {
		t.Helper()
		return inTree(env, append([]string{"dpkg"}, args...)...)
	}
	inTree("NETSPAWN_NSS=0", "apt-get", "install", "-y", "/var/tmp/netspawn.deb")
	if got := hostsLine(t, nssConf); got != stockHosts {
		t.Errorf("dpkg -i without NETSPAWN_NSS=1 changed the hosts line: %q", got)
	}
	for _, f := range []string{"usr/bin/netspawn", "usr/bin/netspawnctl", "usr/sbin/netspawnd", "usr/lib/cni/netspawn",
		"usr/lib/x86_64-linux-gnu/libnss_netspawn.so.2", "usr/lib/systemd/system/netspawnd.service", "etc/netspawn/netspawnd.conf",
		"usr/share/netspawn/netspawnd.openrc", "usr/share/netspawn/nsswitch.conf.example", "usr/share/doc/netspawn/copyright"} {
		if _, err := os.Stat(filepath.Join(tree, f)); err != nil {
			t.Errorf("installed package: %v", err)
		}
	}
	// Enabled (multi-user.target wants it), not started (nothing runs).
	if target, err := os.Readlink(filepath.Join(tree, "etc/systemd/system/multi-user.target.wants/netspawnd.service")); err != nil || !strings.HasSuffix(target, "/netspawnd.service") {
		t.Errorf("netspawnd.service is not enabled: %q, %v", target, err)
	}
	// The ldconfig trigger ran.
	if cache, _ := os.ReadFile(filepath.Join(tree, "etc/ld.so.cache")); !strings.Contains(string(cache), "libnss_netspawn.so.2") {
		t.Errorf("ld.so.cache does not list libnss_netspawn.so.2: the ldconfig trigger did not run")
	}
	// Installing again (dpkg -i) with NETSPAWN_NSS=1 puts netspawn on the
	// hosts line.
	dpkg("NETSPAWN_NSS=1", "-i", "/var/tmp/netspawn.deb")
	enabled := hostsLine(t, nssConf)
	if want, _, _ := nsswitch.Enable(stockHosts); enabled != want {
		t.Errorf("hosts line after dpkg -i with NETSPAWN_NSS=1: %q, want %q", enabled, want)
	}
	// An upgrade (here a reinstall) without it leaves the line as it is.
	dpkg("NETSPAWN_NSS=0", "-i", "/var/tmp/netspawn.deb")
	if got := hostsLine(t, nssConf); got != enabled {
		t.Errorf("hosts line after a reinstall: %q, want %q", got, enabled)
	}
	files := strings.Fields(dpkg("NETSPAWN_NSS=0", "-L", "netspawn"))
	if err := os.Remove(filepath.Join(tree, "var/tmp/netspawn.deb")); err != nil {
		t.Fatal(err)
	}

	// Booted, on a private link of its own.
	b := boot(t, e, tree, "debpkg", "--private-network")
	if state := b.waitRunning(); state != "running" {
		failed, _ := b.exec("systemctl", "--failed", "--no-legend")
		t.Errorf("system state %q; failed units:\n%s", state, failed)
	}
	if out, err := b.exec("netspawn", "--version"); err != nil || !strings.HasPrefix(out, "netspawn ") || strings.Contains(out, "devel") {
		t.Errorf("netspawn --version: %q, %v", out, err)
	}
	// The unit started netspawnd at boot (enabled), and it answers.
	if out, err := b.exec("systemctl", "is-active", "netspawnd"); out != "active" {
		st, _ := b.exec("systemctl", "status", "--no-pager", "-l", "netspawnd")
		t.Errorf("netspawnd.service is %q (%v) after boot:\n%s", out, err, st)
	}
	doctor, err := b.exec("netspawnctl", "doctor")
	t.Logf("netspawnctl doctor in the container (%v):\n%s", err, doctor)
	// Nothing fails: inside a container there is no module index of the
	// host's kernel, and a feature that is not loaded is "cannot tell"
	// (WARN), not missing. The checks of the package's own parts pass.
	if err != nil || strings.Contains(doctor, "FAIL ") {
		t.Errorf("netspawnctl doctor in the container failed (%v)", err)
	}
	for _, want := range []string{"OK    NSS module       ", "libnss_netspawn.so.2", "OK    nsswitch.conf    /etc/nsswitch.conf: hosts: files netspawn dns",
		"OK    netspawnd        answering", "OK    NSS socket"} {
		if !strings.Contains(doctor, want) {
			t.Errorf("netspawnctl doctor does not say %q", want)
		}
	}
	// A machine in netspawnd inside, attached with the packaged CNI
	// plugin to a network namespace of the container's, resolved by name
	// through the packaged NSS module.
	const cniConf = `{"cniVersion": "1.1.0", "name": "debnet", "type": "netspawn"}`
	cni := func(cmd string) (string, error) {
		return b.exec("sh", "-c", "echo '"+cniConf+"' | CNI_COMMAND="+cmd+" CNI_CONTAINERID=debcni CNI_NETNS=/run/netns/debcni CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni CNI_ARGS=NETSPAWN_NAME=debcni /usr/lib/cni/netspawn")
	}
	if out, err := b.exec("ip", "netns", "add", "debcni"); err != nil {
		t.Fatalf("ip netns add in the container: %v: %s", err, out)
	}
	if out, err := cni("ADD"); err != nil {
		t.Fatalf("CNI ADD in the container: %v: %s", err, out)
	}
	var addr string
	if !testutil.Eventually(10*time.Second, func() bool {
		out, _ := b.exec("ip", "netns", "exec", "debcni", "ip", "-o", "-4", "addr", "show", "dev", "eth0")
		if f := strings.Fields(out); len(f) >= 4 {
			addr = strings.Split(f[3], "/")[0]
		}
		return addr != ""
	}) {
		t.Fatal("the CNI attachment has no IPv4 address")
	}
	// getent hosts asks for IPv6 first (the attachment has a ULA address
	// too); ahostsv4 for the IPv4 one.
	if out, err := b.exec("getent", "hosts", "debcni"); err != nil || !strings.HasSuffix(out, " debcni") {
		t.Errorf("getent hosts debcni in the container: %q, %v", out, err)
	}
	if out, err := b.exec("getent", "ahostsv4", "debcni"); err != nil || !strings.HasPrefix(out, addr+" ") || !strings.Contains(out, "debcni") {
		t.Errorf("getent ahostsv4 debcni in the container: %q, %v; want %s", out, err, addr)
	}
	if out, err := b.exec("getent", "hosts", addr); err != nil || !strings.Contains(out, "debcni") {
		t.Errorf("getent hosts %s in the container: %q, %v", addr, out, err)
	}
	if out, err := cni("DEL"); err != nil {
		t.Errorf("CNI DEL in the container: %v: %s", err, out)
	}
	_, _ = b.exec("ip", "netns", "del", "debcni")
	if out, err := b.exec("getent", "hosts", "debcni"); err == nil {
		t.Errorf("getent hosts debcni after CNI DEL: %q", out)
	}

	// dpkg -r in the booted container: netspawnd is stopped, the hosts line
	// loses netspawn, the conffile stays (Debian's rule) until the purge.
	if out, err := b.exec("dpkg", "-r", "netspawn"); err != nil {
		t.Fatalf("dpkg -r netspawn: %v: %s", err, out)
	}
	if got := hostsLine(t, nssConf); got != stockHosts {
		t.Errorf("hosts line after dpkg -r: %q, want %q", got, stockHosts)
	}
	if out, _ := b.exec("systemctl", "is-active", "netspawnd"); out == "active" {
		t.Errorf("netspawnd still runs after dpkg -r")
	}
	if _, err := os.Stat(filepath.Join(tree, "etc/netspawn/netspawnd.conf")); err != nil {
		t.Errorf("dpkg -r removed the conffile: %v", err)
	}
	if out, err := b.exec("dpkg", "-P", "netspawn"); err != nil {
		t.Fatalf("dpkg -P netspawn: %v: %s", err, out)
	}
	if out, err := b.exec("dpkg", "-L", "netspawn"); err == nil {
		t.Errorf("dpkg -L netspawn after the purge succeeded:\n%s", out)
	}
	if out, _ := b.exec("dpkg-query", "-W", "-f=${Status}", "netspawn"); strings.Contains(out, "installed") && !strings.Contains(out, "not-installed") {
		t.Errorf("dpkg-query after the purge: %q", out)
	}
	if got := hostsLine(t, nssConf); got != stockHosts {
		t.Errorf("hosts line after dpkg -P: %q, want %q", got, stockHosts)
	}
	// Every file the package had is gone (directories it shared stay),
	// and so is what its scripts made.
	for _, f := range files {
		p := filepath.Join(tree, f)
		if st, err := os.Lstat(p); err == nil && !st.IsDir() {
			t.Errorf("left after the purge: %s", f)
		}
	}
	for _, f := range []string{"etc/netspawn", "var/lib/netspawn", "etc/systemd/system/multi-user.target.wants/netspawnd.service",
		"etc/systemd/system/netspawnd.service", "var/lib/systemd/deb-systemd-helper-enabled/netspawnd.service.dsh-also",
		"var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/netspawnd.service"} {
		if _, err := os.Lstat(filepath.Join(tree, f)); err == nil {
			t.Errorf("left after the purge: /%s", f)
		}
	}
	if cache, _ := os.ReadFile(filepath.Join(tree, "etc/ld.so.cache")); strings.Contains(string(cache), "libnss_netspawn.so.2") {
		t.Errorf("ld.so.cache still lists libnss_netspawn.so.2 after the purge")
	}
	b.ctl("poweroff")
	if code := b.waitExit(60 * time.Second); code != 0 {
		t.Fatalf("poweroff: status %d", code)
	}
}

// TestDebVersion checks the git describe → Debian version mapping.
func TestDebVersion(t *testing.T) {
	script := filepath.Join(repoDir(t), "packaging/deb/version.sh")
	for desc, want := range map[string]string{
		"v1.2.3":                  "1.2.3-1",
		"v1.2.3-4-gabc1234":       "1.2.3+git4.abc1234-1",
		"v1.2.3-4-gabc1234-dirty": "1.2.3+git4.abc1234+dirty-1",
		"1.0":                     "1.0-1",
		"v1.0-rc1":                "1.0~rc1-1",
		"395a80e":                 "0~git20261207.395a80e-1",
		"395a80e-dirty":           "0~git20261207.395a80e~dirty-1",
		"devel":                   "0~devel-1",
	} {
		out, err := exec.Command(script, desc, "20261207").CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != want {
			t.Errorf("version.sh %s = %q, %v; want %q", desc, got, err, want)
		}
	}
	for _, bad := range []string{"", "foo bar", "v1.2/3", "release"} {
		if out, err := exec.Command(script, bad, "20261207").CombinedOutput(); err == nil {
			t.Errorf("version.sh %q = %q, want an error", bad, out)
		}
	}
}

// TestDebPostrmNSS runs the postrm's sed (it cannot call netspawnctl: the
// package's files are gone by then) against the Go editor's cases:
// both take netspawn off the hosts line the same way.
func TestDebPostrmNSS(t *testing.T) {
	postrm := filepath.Join(repoDir(t), "packaging/deb/postrm")
	for _, in := range []string{
		"hosts: files netspawn dns\n",
		"hosts:          files netspawn dns\nnetworks:       files\n",
		"hosts: netspawn files dns\n",
		"hosts:  netspawn  files dns\n",
		"hosts: files netspawn [NOTFOUND=return] dns\n",
		"hosts: files netspawn [ NOTFOUND=return ] dns\n",
		"hosts: files dns netspawn\n",
		"hosts: files netspawn # machines\n",
		"hosts: files netspawn dns netspawn\n",
		"hosts: netspawn\n",
		"\thosts:\tfiles\tnetspawn\tdns\n",
		"#hosts: netspawn\nnetworks: netspawn\nhosts: files netspawn\n",
		"hosts: files mymachines netspawn resolve [!UNAVAIL=return] myhostname dns\n",
		"hosts: files netspawnx xnetspawn dns\n",
		"hosts: files dns\n",
	} {
		f := filepath.Join(t.TempDir(), "nsswitch.conf")
		if err := os.WriteFile(f, []byte(in), 0o640); err != nil {
			t.Fatal(err)
		}
		script := `set -e; eval "$(sed -n '/^nss_off() {/,/^}/p' "$1")"; nss_off "$2"`
		if out, err := exec.Command("sh", "-c", script, "sh", postrm, f).CombinedOutput(); err != nil {
			t.Fatalf("postrm's nss_off: %v: %s", err, out)
		}
		got, _ := os.ReadFile(f)
		want, _ := nsswitch.Disable(in)
		if string(got) != want {
			t.Errorf("postrm on %q: %q, want %q", in, got, want)
		}
		if st, _ := os.Stat(f); st.Mode().Perm() != 0o640 {
			t.Errorf("postrm changed the mode to %v", st.Mode())
		}
	}
}
