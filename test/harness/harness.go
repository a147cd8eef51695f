package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"github.com/netspawn/netspawn/internal/testutil"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RequireRoot stops a test that needs root: it fails under CI (CI=true),
// where every test must run, and skips elsewhere.
func RequireRoot(t testing.TB) {
	t.Helper()
	testutil.RequireRoot(t, "run with sudo")
}

// RequireTool checks that a program the test drives is installed.
func RequireTool(t testing.TB, names ...string) {
	t.Helper()
	testutil.RequireTool(t, names...)
}

// Unavailable fails the test under CI and skips it elsewhere.
func Unavailable(t testing.TB, why string) {
	t.Helper()
	testutil.Unavailable(t, why)
}

// NetNS is a network namespace made for one test; it plays the host. It is
// held by an open file descriptor only: nothing appears in /run/netns, and
// it disappears once the test closes it and its processes are gone.
type NetNS struct {
	f *os.File
}

// OpenNetNS creates a network namespace with loopback up. Close removes
// it, killing every process still in it.
func OpenNetNS() (*NetNS, error) {
	type result struct {
		f   *os.File
		err error
	}
	ch := make(chan result)
	go func() {
		// This thread switches namespaces and is never given back to the
		// runtime: the goroutine ends locked, so the thread exits.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, fmt.Errorf("unshare(CLONE_NEWNET): %w", err)}
			return
		}
		f, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		ch <- result{f, err}
	}()
	r := <-ch
	if r.err != nil {
		return nil, fmt.Errorf("creating a network namespace: %w", r.err)
	}
	ns := &NetNS{f: r.f}
	if out, err := ns.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		ns.Close()
		return nil, fmt.Errorf("bringing up lo in the new namespace: %v: %s", err, out)
	}
	return ns, nil
}

// Close kills the namespace's processes and releases it.
func (ns *NetNS) Close() {
	ns.KillAll()
	ns.f.Close()
}

// NewNetNS creates a network namespace for a test, removed (with every
// process still in it) when the test ends.
func NewNetNS(t testing.TB) *NetNS {
	t.Helper()
	ns, err := OpenNetNS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)
	return ns
}

// Path names the namespace for nsenter --net= and setns.
func (ns *NetNS) Path() string {
	return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), ns.f.Fd())
}

// Inode identifies the namespace.
func (ns *NetNS) Inode() uint64 {
	var st unix.Stat_t
	if err := unix.Fstat(int(ns.f.Fd()), &st); err != nil {
		return 0
	}
	return st.Ino
}

// Command prepares a command that runs inside the namespace. Only the
// network namespace is entered: the host's mounts and cgroups stay visible
// (unlike `ip netns exec`, which remounts /sys).
func (ns *NetNS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + ns.Path(), "--", name}, args...)...)
}

// CommandContext is Command with a context.
func (ns *NetNS) CommandContext(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + ns.Path(), "--", name}, args...)...)
}

// KillAll kills every process that lives in the namespace, by PID, and
// waits briefly for them to go.
func (ns *NetNS) KillAll() {
	ino := ns.Inode()
	if ino == 0 {
		return
	}
	// First ask (netspawn then stops its container and cleans up after
	// it), then insist.
	for round := 0; round < 100; round++ {
		pids := pidsInNetNS(ino)
		if len(pids) == 0 {
			return
		}
		sig := unix.SIGTERM
		if round >= 25 {
			sig = unix.SIGKILL
		}
		for _, pid := range pids {
			_ = unix.Kill(pid, sig)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func pidsInNetNS(ino uint64) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		var st unix.Stat_t
		if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st); err != nil {
			continue
		}
		if st.Ino == ino {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Env is one test's world: a namespace playing the host, a writable copy of
// the busybox tree, and private runtime and state directories.
type Env struct {
	T          testing.TB
	NS         *NetNS
	Tree       string
	RuntimeDir string
	StateDir   string
	ImagesDir  string
	Bin        string // directory of the netspawn binaries
	Vars       []string
}

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

var (
	sharedMu   sync.Mutex
	sharedDirs []string
)

// SharedDir makes a temporary directory for what a package's tests build
// once for all of them (the binaries, a tool built from a module). Main
// removes it after the last test; t.TempDir cannot, as it goes with the
// test that made it.
func SharedDir(prefix string) (string, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	sharedMu.Lock()
	sharedDirs = append(sharedDirs, dir)
	sharedMu.Unlock()
	return dir, nil
}

// Main runs a package's tests (call it from TestMain) and removes the
// directories made by SharedDir, also when tests failed. It returns the
// exit code for os.Exit.
func Main(m *testing.M) int {
	code := m.Run()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	for _, d := range sharedDirs {
		if err := os.RemoveAll(d); err != nil {
			fmt.Fprintf(os.Stderr, "removing %s: %v\n", d, err)
		}
	}
	sharedDirs = nil
	return code
}

// Binaries builds the programs once per test binary (or uses
// $NETSPAWN_BIN) and returns their directory.
func Binaries(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		if d := os.Getenv("NETSPAWN_BIN"); d != "" {
			binDir = d
			return
		}
		root, err := repoRoot()
		if err != nil {
			binErr = err
			return
		}
		dir, err := SharedDir("netspawn-bin-")
		if err != nil {
			binErr = err
			return
		}
		cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/...")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("building binaries: %v: %s", err, out)
			return
		}
		nss := exec.Command("gcc", "-shared", "-fPIC", "-O2", "-Wall", "-Wl,-soname,libnss_netspawn.so.2",
			"-o", filepath.Join(dir, "libnss_netspawn.so.2"), filepath.Join(root, "nss/module/libnss_netspawn.c"))
		if out, err := nss.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("building the NSS module (gcc): %v: %s", err, out)
			return
		}
		binDir = dir
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binDir
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// CacheDir is where built trees are kept between runs.
func CacheDir() string {
	if d := os.Getenv("NETSPAWN_TEST_CACHE"); d != "" {
		return d
	}
	return "/var/tmp/netspawn-test-cache"
}

// NewEnv sets up a test world. It needs root.
func NewEnv(t testing.TB) *Env {
	t.Helper()
	RequireRoot(t)
	RequireTool(t, "nsenter", "ip")
	if _, err := os.Stat(BusyboxPath); err != nil {
		Unavailable(t, "needs busybox-static")
	}
	pristine, err := CachedBusyboxTree(CacheDir())
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	e := &Env{T: t, Bin: Binaries(t),
		Tree:       filepath.Join(base, "tree"),
		RuntimeDir: filepath.Join(base, "run"),
		StateDir:   filepath.Join(base, "state"),
		ImagesDir:  filepath.Join(base, "machines"),
	}
	if err := CopyTree(pristine, e.Tree); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{e.RuntimeDir, e.StateDir, e.ImagesDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e.NS = NewNetNS(t)
	e.Vars = []string{
		"NETSPAWN_RUNTIME_DIR=" + e.RuntimeDir,
		"NETSPAWN_STATE_DIR=" + e.StateDir,
		"NETSPAWN_IMAGES_DIR=" + e.ImagesDir,
		// Never the host's /var/log/journal: a directory that does not
		// exist, so --link-journal= links nothing unless a test makes it.
		"NETSPAWN_HOST_JOURNAL_DIR=" + filepath.Join(base, "journal"),
	}
	t.Cleanup(func() { checkNoMountsUnder(t, base) })
	return e
}

// ShareTree lets several machines run from e.Tree at once. netspawn, as
// systemd-nspawn does, locks a tree a container may write to, and
// SYSTEMD_NSPAWN_LOCK=0 turns that off: tests whose machines share the
// tree only for convenience call this (TestImageLock tests the lock).
func (e *Env) ShareTree() { e.Vars = append(e.Vars, "SYSTEMD_NSPAWN_LOCK=0") }

// checkNoMountsUnder fails the test if anything is still mounted below dir
// in the host's mount namespace, and unmounts it so cleanup can proceed.
func checkNoMountsUnder(t testing.TB, dir string) {
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return
	}
	// Deepest first, so that each unmount can succeed.
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].Mountpoint) > len(mounts[j].Mountpoint) })
	for _, m := range mounts {
		t.Errorf("left mounted on the host: %s", m.Mountpoint)
		_ = unix.Unmount(m.Mountpoint, unix.MNT_DETACH)
	}
}

// Command prepares one of the netspawn programs to run in the test's
// namespace with the test's directories.
func (e *Env) Command(prog string, args ...string) *exec.Cmd {
	cmd := e.NS.Command(filepath.Join(e.Bin, prog), args...)
	cmd.Env = append(os.Environ(), e.Vars...)
	return cmd
}

// Result is what a finished command left.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Run runs a netspawn program to completion (with a time limit) and
// returns its output and exit status.
func (e *Env) Run(prog string, args ...string) Result {
	e.T.Helper()
	return e.RunInput("", prog, args...)
}

// RunInput is Run with standard input.
func (e *Env) RunInput(stdin, prog string, args ...string) Result {
	e.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := e.NS.CommandContext(ctx, filepath.Join(e.Bin, prog), args...)
	cmd.Env = append(os.Environ(), e.Vars...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Stdin = strings.NewReader(stdin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.Code = 128 + int(ws.Signal())
		}
	case err != nil:
		e.T.Fatalf("running %s: %v", prog, err)
	}
	if ctx.Err() != nil {
		e.T.Fatalf("%s %v did not finish within 60s; stderr: %s", prog, args, r.Stderr)
	}
	return r
}

// Netspawn runs netspawn -q -D TREE with the given extra arguments.
func (e *Env) Netspawn(args ...string) Result {
	e.T.Helper()
	return e.Run("netspawn", append([]string{"-q", "-D", e.Tree}, args...)...)
}

// Veth joins two namespaces with a veth pair (nameA in a, nameB in b),
// gives each end its address (CIDR, or "" for none) and brings both up.
func Veth(a, b *NetNS, nameA, nameB, cidrA, cidrB string) error {
	h, err := netlink.NewHandleAt(netns.NsHandle(a.f.Fd()))
	if err != nil {
		return fmt.Errorf("netlink in namespace: %w", err)
	}
	defer h.Close()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: nameA}, PeerName: nameB, PeerNamespace: netlink.NsFd(int(b.f.Fd()))}
	if err := h.LinkAdd(v); err != nil {
		return fmt.Errorf("adding veth %s/%s: %w", nameA, nameB, err)
	}
	for _, end := range []struct {
		ns         *NetNS
		name, cidr string
	}{{a, nameA, cidrA}, {b, nameB, cidrB}} {
		if end.cidr != "" {
			if out, err := end.ns.Command("ip", "addr", "add", end.cidr, "dev", end.name).CombinedOutput(); err != nil {
				return fmt.Errorf("address %s on %s: %v: %s", end.cidr, end.name, err, out)
			}
		}
		if out, err := end.ns.Command("ip", "link", "set", end.name, "up").CombinedOutput(); err != nil {
			return fmt.Errorf("bringing up %s: %v: %s", end.name, err, out)
		}
	}
	return nil
}

// Sh runs a shell command in the namespace and returns its combined output.
func (ns *NetNS) Sh(script string) (string, error) {
	out, err := ns.Command("sh", "-c", script).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// Stop ends a netspawn started in the background the way a user would:
// SIGTERM (netspawn stops its container and cleans up), SIGKILL if it is
// still there after a few seconds. done is closed when it has been waited for.
func Stop(p *os.Process, done <-chan struct{}) {
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = p.Kill()
		<-done
	}
}

// StartNetspawnd starts the test's netspawnd itself, with args beyond its
// runtime directory (and no configuration file), instead of letting the
// first netspawn start one; it is stopped when the test ends. It returns
// the daemon's log so far, for failure messages.
func (e *Env) StartNetspawnd(args ...string) func() string {
	e.T.Helper()
	d := e.Command("netspawnd", append([]string{"--runtime-dir", e.RuntimeDir, "--config", "/dev/null"}, args...)...)
	var log syncBuilder
	d.Stdout, d.Stderr = &log, &log
	if err := d.Start(); err != nil {
		e.T.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = d.Wait(); close(done) }()
	e.T.Cleanup(func() { Stop(d.Process, done) })
	if !testutil.Eventually(15*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(e.RuntimeDir, "netspawnd.sock"))
		return err == nil
	}) {
		e.T.Fatalf("netspawnd %v did not open its socket: %s", args, log.String())
	}
	return log.String
}

// syncBuilder is a strings.Builder safe for a process's two streams.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuilder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
