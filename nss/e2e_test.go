package nss

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netspawn/netspawn/dns"
	"github.com/netspawn/netspawn/internal/testutil"
)

// The end-to-end tests build the module with gcc, run the Go server in a
// child process (so that it can be SIGSTOPped) and call glibc's getent in
// a private mount and network namespace whose /etc/nsswitch.conf,
// /etc/hosts and /etc/resolv.conf are the test's own bind mounts. The
// machine's files are never touched.

const helperEnv = "NETSPAWN_NSS_TEST_HELPER"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		runHelper(dir)
		return
	}
	os.Exit(m.Run())
}

// runHelper serves testSource (domain netspawn.internal) on dir/nss.sock.
func runHelper(dir string) {
	l, err := Listen(filepath.Join(dir, SocketName))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("ready")
	s := &Server{Source: testSource(), Domain: dns.DefaultDomain}
	if err := s.Serve(context.Background(), l); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func needRoot(t *testing.T, tools ...string) {
	t.Helper()
	testutil.RequireRoot(t, "private mount namespaces", tools...)
}

// buildModule compiles the module into dir, as `make nss` does.
func buildModule(t *testing.T, dir string) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(file), "module", "libnss_netspawn.c")
	out, err := exec.Command("gcc", "-shared", "-fPIC", "-O2", "-Wall", "-Werror",
		"-Wl,-soname,libnss_netspawn.so.2", "-o", filepath.Join(dir, "libnss_netspawn.so.2"), src).CombinedOutput()
	if err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
}

type nssEnv struct {
	dir    string // module, socket, test /etc files
	helper *exec.Cmd
}

func setupNSS(t *testing.T) *nssEnv {
	needRoot(t, "gcc", "getent", "unshare", "ip")
	e := &nssEnv{dir: t.TempDir()}
	buildModule(t, e.dir)
	files := map[string]string{
		"nsswitch.conf": "hosts: files netspawn dns\n",
		"hosts":         "127.0.0.1 localhost\n10.77.0.7 filesonly\n",
		// A dead loopback resolver in a namespace whose loopback is down.
		"resolv.conf": "nameserver 127.0.0.254\noptions timeout:1 attempts:1\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(e.dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.helper = exec.Command(os.Args[0], "-test.run=^$")
	e.helper.Env = append(os.Environ(), helperEnv+"="+e.dir)
	stdout, err := e.helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	e.helper.Stderr = os.Stderr
	if err := e.helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.helper.Process.Signal(syscall.SIGCONT)
		_ = e.helper.Process.Kill()
		_ = e.helper.Wait()
	})
	buf := make([]byte, 6)
	if _, err := stdout.Read(buf); err != nil || string(buf) != "ready\n" {
		t.Fatalf("helper did not start: %q %v", buf, err)
	}
	return e
}

// getent runs getent in a private mount+network namespace with the
// test's /etc files and module. It returns stdout and the exit code.
func (e *nssEnv) getent(t *testing.T, args ...string) (string, int, time.Duration) {
	t.Helper()
	// Addresses on lo make getaddrinfo's AI_ADDRCONFIG see IPv4 and IPv6.
	script := fmt.Sprintf(`set -e
ip link set lo up
ip addr add 10.255.0.1/32 dev lo
ip addr add fd00:ffff::1/128 dev lo nodad
mount --bind %[1]s/nsswitch.conf /etc/nsswitch.conf
mount --bind %[1]s/hosts /etc/hosts
mount --bind %[1]s/resolv.conf /etc/resolv.conf
exec env LD_LIBRARY_PATH=%[1]s NETSPAWN_RUNTIME_DIR=%[1]s getent "$@"`, e.dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", append([]string{"-m", "-n", "--propagation", "private", "sh", "-c", script, "sh"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	took := time.Since(start)
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok || ctx.Err() != nil {
			t.Fatalf("getent %v: %v %s", args, err, stderr.String())
		}
		code = ee.ExitCode()
	}
	t.Logf("getent %s -> exit %d in %s: %s", strings.Join(args, " "), code, took.Round(time.Millisecond), strings.TrimSpace(string(out)))
	return string(out), code, took
}

func TestGetentE2E(t *testing.T) {
	e := setupNSS(t)
	tests := []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"hosts", "web"}, 0, []string{"fd00::2", "web"}},
		{[]string{"hosts", "WEB.netspawn.internal"}, 0, []string{"web"}},
		{[]string{"ahostsv4", "web"}, 0, []string{"192.168.0.2     STREAM web"}},
		{[]string{"ahosts", "web"}, 0, []string{"192.168.0.2", "fd00::2"}},
		{[]string{"ahosts", "v4"}, 0, []string{"192.168.0.3     STREAM v4"}},
		{[]string{"hosts", "192.168.0.2"}, 0, []string{"192.168.0.2     web"}},
		{[]string{"hosts", "fd00::3"}, 0, []string{"fd00::3         v6"}},
		{[]string{"hosts", "filesonly"}, 0, []string{"10.77.0.7"}},
		{[]string{"hosts", "missing"}, 2, nil},
		{[]string{"ahosts", "missing"}, 2, nil},
		{[]string{"hosts", "192.168.0.77"}, 2, nil},
	}
	for _, tt := range tests {
		out, code, _ := e.getent(t, tt.args...)
		if code != tt.code {
			t.Errorf("getent %v: exit %d, want %d", tt.args, code, tt.code)
		}
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("getent %v: %q lacks %q", tt.args, out, w)
			}
		}
	}
}

func TestGetentControllerHungOrGone(t *testing.T) {
	e := setupNSS(t)
	if err := e.helper.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// The module gives up after its timeout; files still answers.
	if _, code, _ := e.getent(t, "hosts", "web"); code != 2 {
		t.Errorf("stopped controller: exit %d, want 2", code)
	}
	if out, code, _ := e.getent(t, "hosts", "filesonly"); code != 0 || !strings.Contains(out, "10.77.0.7") {
		t.Errorf("files with a stopped controller: %q exit %d", out, code)
	}
	if _, code, _ := e.getent(t, "ahosts", "web"); code != 2 {
		t.Errorf("stopped controller (ahosts): exit %d, want 2", code)
	}
	if err := e.helper.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if _, code, _ := e.getent(t, "hosts", "web"); code != 0 {
		t.Errorf("resumed controller: exit %d", code)
	}
	// Gone: the socket refuses or is absent.
	_ = e.helper.Process.Kill()
	_ = e.helper.Wait()
	if _, code, _ := e.getent(t, "hosts", "web"); code != 2 {
		t.Errorf("dead controller: exit %d, want 2", code)
	}
	os.Remove(filepath.Join(e.dir, SocketName))
	if out, code, _ := e.getent(t, "hosts", "filesonly"); code != 0 || !strings.Contains(out, "10.77.0.7") {
		t.Errorf("files without a controller: %q exit %d", out, code)
	}
}

// TestModuleBufferRules calls the module's entry points directly with
// short buffers: ERANGE + NSS_STATUS_TRYAGAIN, then success; IPv4 comes
// before IPv6 in gethostbyname4_r's list.
func TestModuleBufferRules(t *testing.T) {
	e := setupNSS(t)
	prog := `#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <nss.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
int main(int argc, char **argv) {
	void *h = dlopen(argv[1], RTLD_NOW);
	if (!h) { puts(dlerror()); return 1; }
	nss_gethostbyname4_r *f4 = (nss_gethostbyname4_r *)dlsym(h, "_nss_netspawn_gethostbyname4_r");
	nss_gethostbyname3_r *f3 = (nss_gethostbyname3_r *)dlsym(h, "_nss_netspawn_gethostbyname3_r");
	nss_gethostbyaddr2_r *fa = (nss_gethostbyaddr2_r *)dlsym(h, "_nss_netspawn_gethostbyaddr2_r");
	char buf[1024]; int err, herr; int32_t ttl;
	for (size_t len = 0; len <= 256; len++) {
		struct gaih_addrtuple *pat = NULL;
		err = herr = 0;
		enum nss_status st = f4("web", &pat, buf, len, &err, &herr, &ttl);
		if (st == NSS_STATUS_TRYAGAIN) { if (err != ERANGE || herr != NETDB_INTERNAL) { printf("bad tryagain %d %d\n", err, herr); return 1; } continue; }
		if (st != NSS_STATUS_SUCCESS) { printf("f4 status %d\n", st); return 1; }
		char a[64], b[64];
		inet_ntop(pat->family, pat->addr, a, sizeof a);
		inet_ntop(pat->next->family, pat->next->addr, b, sizeof b);
		printf("f4 len=%zu %s %s %s next=%p\n", len, pat->name, a, b, (void *)pat->next->next);
		break;
	}
	for (size_t len = 0; len <= 256; len++) {
		struct hostent he; char *canon = NULL;
		enum nss_status st = f3("web", AF_INET6, &he, buf, len, &err, &herr, &ttl, &canon);
		if (st == NSS_STATUS_TRYAGAIN && err == ERANGE) continue;
		if (st != NSS_STATUS_SUCCESS) { printf("f3 status %d\n", st); return 1; }
		char a[64]; inet_ntop(AF_INET6, he.h_addr_list[0], a, sizeof a);
		printf("f3 len=%zu %s %s %s alias0=%p next=%p\n", len, he.h_name, canon, a, (void *)he.h_aliases[0], (void *)he.h_addr_list[1]);
		break;
	}
	struct hostent he;
	enum nss_status st = f3("v4", AF_INET6, &he, buf, sizeof buf, &err, &herr, &ttl, NULL);
	printf("nodata %d %d\n", st, herr == NO_DATA);
	st = f3("nope", AF_INET, &he, buf, sizeof buf, &err, &herr, &ttl, NULL);
	printf("notfound %d %d\n", st, herr == HOST_NOT_FOUND);
	unsigned char a4[4] = {192, 168, 0, 2};
	st = fa(a4, 4, AF_INET, &he, buf, sizeof buf, &err, &herr, &ttl);
	printf("byaddr %d %s\n", st, st == NSS_STATUS_SUCCESS ? he.h_name : "-");
	st = fa(a4, 3, AF_INET, &he, buf, sizeof buf, &err, &herr, &ttl);
	printf("badlen %d\n", st);
	return 0;
}
`
	src := filepath.Join(e.dir, "rules.c")
	bin := filepath.Join(e.dir, "rules")
	if err := os.WriteFile(src, []byte(prog), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("gcc", "-O1", "-Wall", "-o", bin, src, "-ldl").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, filepath.Join(e.dir, "libnss_netspawn.so.2"))
	cmd.Env = append(os.Environ(), "NETSPAWN_RUNTIME_DIR="+e.dir)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("rules: %v", err)
	}
	// Under valgrind when it is installed: no invalid access, no leaked
	// descriptor.
	if _, err := exec.LookPath("valgrind"); err == nil {
		vg := exec.Command("valgrind", "--error-exitcode=99", "--track-fds=yes", "--leak-check=full",
			bin, filepath.Join(e.dir, "libnss_netspawn.so.2"))
		vg.Env = cmd.Env
		vout, err := vg.CombinedOutput()
		if err != nil {
			t.Fatalf("valgrind: %v\n%s", err, vout)
		}
		// Descriptors the test runner passed down are listed as inherited;
		// a leaked socket of the module would show as one.
		if strings.Contains(string(vout), "socket") {
			t.Errorf("socket left open:\n%s", vout)
		}
	}
	for _, want := range []string{
		" web 192.168.0.2 fd00::2 next=(nil)",
		"f3 len=", " web web fd00::2 alias0=(nil) next=(nil)",
		fmt.Sprintf("nodata %d 1", 0), // NSS_STATUS_NOTFOUND == 0
		"notfound 0 1",
		"byaddr 1 web", // NSS_STATUS_SUCCESS == 1
		"badlen -1",    // NSS_STATUS_UNAVAIL == -1
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}
