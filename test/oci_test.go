package test

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/netspawn/netspawn/test/harness"
)

// Machine names here start with "oci-": machine cgroups are global.

// ociBundle makes an OCI bundle with "runc spec" around the test's busybox
// tree (moved to BUNDLE/rootfs) and returns its directory and config.json
// as a map to edit.
func ociBundle(t *testing.T, e *harness.Env) (string, map[string]any) {
	t.Helper()
	harness.RequireTool(t, "runc")
	bundle := filepath.Join(filepath.Dir(e.Tree), "bundle")
	if err := os.Mkdir(bundle, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("runc", "spec")
	cmd.Dir = bundle
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v: %s", err, out)
	}
	if err := os.Rename(e.Tree, filepath.Join(bundle, "rootfs")); err != nil {
		t.Fatal(err)
	}
	e.Tree = filepath.Join(bundle, "rootfs")
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec map[string]any
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	return bundle, spec
}

func writeOCIConfig(t *testing.T, bundle string, spec map[string]any) {
	t.Helper()
	b, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// listTree lists the paths under dirs (for "nothing left behind").
func listTree(t *testing.T, dirs ...string) []string {
	t.Helper()
	var out []string
	for _, d := range dirs {
		_ = filepath.WalkDir(d, func(p string, _ fs.DirEntry, err error) error {
			if err == nil {
				out = append(out, p)
			}
			return nil
		})
	}
	sort.Strings(out)
	return out
}

// A bundle from "runc spec", edited as a user would: each field takes
// effect inside. runc's terminal=true without a terminal gives nspawn's
// default console (a pipe here, stdin is not a tty), as nspawn does.
func TestOCIBundle(t *testing.T) {
	e := harness.NewEnv(t)
	bundle, spec := ociBundle(t, e)
	rootfs := filepath.Join(bundle, "rootfs")

	// As "runc spec" wrote it: its sh reads the script on standard input.
	want(t, e.RunInput("echo hi; hostname; id -u\n", "netspawn", "-q", "-M", "oci-basic", "--oci-bundle="+bundle), "hi\nrunc\n0")

	for _, d := range []string{"srv", "data"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "hello"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	script := strings.Join([]string{
		`echo "id=$(id -u):$(id -g) groups=$(id -G)"`,
		`echo "pwd=$(pwd)"`,
		`echo "env=$OCI_TEST home=${HOME-unset} term=$TERM"`,
		`echo "hostname=$(hostname)"`,
		`echo "nofile=$(ulimit -n):$(ulimit -Hn)"`,
		`echo "data=$(cat /data/hello)"`,
		`if (echo x >/data/new) 2>/dev/null; then echo data=writable; else echo data=read-only; fi`,
		`if touch /newfile 2>/dev/null; then echo root=writable; else echo root=read-only; fi`,
		`grep -E '^(CapBnd|CapAmb|NoNewPrivs):' /proc/self/status | tr -s '\t ' ' '`,
		`echo "firmware=$(stat -c %a /sys/firmware)"`,
	}, "; ")
	proc := spec["process"].(map[string]any)
	proc["args"] = []string{"sh", "-c", script}
	proc["env"] = append(proc["env"].([]any), "OCI_TEST=hello")
	proc["cwd"] = "/srv"
	proc["user"] = map[string]any{"uid": 1000, "gid": 1000, "additionalGids": []int{2000, 2001}}
	proc["rlimits"] = []map[string]any{{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654}}
	spec["hostname"] = "oci-host"
	spec["mounts"] = append(spec["mounts"].([]any),
		map[string]any{"destination": "/data", "type": "bind", "source": data, "options": []string{"rbind", "ro"}})
	if ro := spec["root"].(map[string]any)["readonly"]; ro != true {
		t.Fatalf("runc spec's root.readonly is %v, want true", ro)
	}
	writeOCIConfig(t, bundle, spec)

	// AUDIT_WRITE (29), KILL (5) and NET_BIND_SERVICE (10): runc's default
	// bounding and ambient sets, kept across the switch to UID 1000.
	const caps = "CapBnd: 0000000020000420\nCapAmb: 0000000020000420\nNoNewPrivs: 1"
	want(t, e.Run("netspawn", "-q", "-M", "oci-basic", "--oci-bundle="+bundle), strings.Join([]string{
		"id=1000:1000 groups=1000 2000 2001",
		"pwd=/srv",
		"env=hello home=unset term=xterm",
		"hostname=oci-host",
		"nofile=321:654",
		"data=from the host",
		"data=read-only",
		"root=read-only",
		caps,
		"firmware=0", // linux.maskedPaths: an empty mode-000 tmpfs
	}, "\n"))
	if _, err := os.Stat(filepath.Join(rootfs, "newfile")); err == nil {
		t.Error("the read-only root was written to")
	}

	// A tmpfs mount.
	spec["mounts"] = append(spec["mounts"].([]any),
		map[string]any{"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": []string{"nosuid", "strictatime", "mode=1777", "size=1m"}})
	proc["args"] = []string{"sh", "-c", `stat -c "%a" /scratch; grep ' /scratch ' /proc/mounts | cut -d' ' -f3`}
	writeOCIConfig(t, bundle, spec)
	want(t, e.Run("netspawn", "-q", "-M", "oci-basic", "--oci-bundle="+bundle), "1777\ntmpfs")

	// linux.resources: the limits land on the machine's cgroup.
	spec["linux"].(map[string]any)["resources"] = map[string]any{
		"memory": map[string]any{"limit": 64 << 20},
		"pids":   map[string]any{"limit": 50},
		"cpu":    map[string]any{"quota": 50000, "period": 100000},
	}
	proc["args"] = []string{"sleep", "1000"}
	writeOCIConfig(t, bundle, spec)
	background(t, e, "oci-limits", "--oci-bundle="+bundle) // -D is the bundle's root here
	leader := leaderOf(t, e, "oci-limits")
	if got := readTrim(t, machineLimitFile(t, leader, "memory.max", "memory", "memory.limit_in_bytes")); got != "67108864" {
		t.Errorf("memory limit %s, want 67108864", got)
	}
	if got := readTrim(t, machineLimitFile(t, leader, "pids.max", "pids", "pids.max")); got != "50" {
		t.Errorf("pids limit %s, want 50", got)
	}
	if got := readTrim(t, machineLimitFile(t, leader, "cpu.max", "cpu", "cpu.cfs_quota_us")); got != "50000 100000" && got != "50000" {
		t.Errorf("CPU quota %s, want 50%%", got)
	}

	// The command line wins over the bundle, before or after --oci-bundle=,
	// as in nspawn.
	want(t, e.Run("netspawn", "-q", "-M", "oci-basic", "--hostname=oci-other", "--oci-bundle="+bundle,
		"-u", "0", "--chdir=/", "-E", "OCI_TEST=cmdline", "--rlimit=NOFILE=99",
		"sh", "-c", `echo "$(id -u) $(pwd) $(hostname) $OCI_TEST $(ulimit -n)"`),
		"0 / oci-other cmdline 99")
}

// A bundle nspawn would refuse is refused with the JSON field named, and
// nothing is left behind.
func TestOCIBundleBad(t *testing.T) {
	e := harness.NewEnv(t)
	bundle, spec := ociBundle(t, e)
	before := listTree(t, bundle, e.RuntimeDir, e.StateDir)

	spec["hooks"] = map[string]any{"prestart": []map[string]any{{"path": "/bin/true"}}}
	writeOCIConfig(t, bundle, spec)
	wantFail(t, e.Run("netspawn", "-q", "-M", "oci-bad", "--oci-bundle="+bundle, "true"), "hooks.prestart: OCI hooks are not run by netspawn")

	delete(spec, "hooks")
	spec["linux"].(map[string]any)["namespaces"] = []map[string]any{{"type": "mount"}, {"type": "time"}}
	writeOCIConfig(t, bundle, spec)
	wantFail(t, e.Run("netspawn", "-q", "-M", "oci-bad", "--oci-bundle="+bundle), `linux.namespaces[1].type: unknown namespace type "time"`)

	spec["linux"].(map[string]any)["namespaces"] = []map[string]any{{"type": "mount"}, {"type": "pid"}}
	spec["root"].(map[string]any)["path"] = "nowhere"
	writeOCIConfig(t, bundle, spec)
	wantFail(t, e.Run("netspawn", "-q", "-M", "oci-bad", "--oci-bundle="+bundle, "true"), "directory "+filepath.Join(bundle, "nowhere")+" does not exist")

	// A bind source that is missing is found once the container is being
	// set up: it fails then, and cleans up.
	spec["root"].(map[string]any)["path"] = "rootfs"
	spec["mounts"] = []map[string]any{{"destination": "/data", "type": "bind", "source": "/nonexistent-oci-source"}}
	writeOCIConfig(t, bundle, spec)
	wantFail(t, e.Run("netspawn", "-q", "-M", "oci-bad", "--oci-bundle="+bundle, "true"), "/nonexistent-oci-source")

	delete(spec["process"].(map[string]any), "args")
	writeOCIConfig(t, bundle, spec)
	wantFail(t, e.Run("netspawn", "-q", "-M", "oci-bad", "--oci-bundle="+bundle), "process.args: missing")

	spec["ociVersion"] = "2.0.0"
	writeOCIConfig(t, bundle, spec)
	wantFail(t, e.Run("netspawn", "-q", "-M", "oci-bad", "--oci-bundle="+bundle), `ociVersion: version "2.0.0" is not supported`)

	wantFail(t, e.Run("netspawn", "-q", "-M", "oci-bad", "--oci-bundle="+filepath.Join(bundle, "rootfs")), "config.json: no such file or directory")

	// The bundle is as it was; netspawnd (started by the one run that got
	// that far) keeps nothing of the machine.
	after := listTree(t, bundle, e.RuntimeDir, e.StateDir)
	was := map[string]bool{}
	for _, p := range before {
		was[p] = true
	}
	for _, p := range after {
		if !was[p] && (strings.HasPrefix(p, bundle) || strings.Contains(p, "oci-bad") || strings.HasPrefix(p, filepath.Join(e.RuntimeDir, "locks")+"/")) {
			t.Errorf("left behind: %s", p)
		}
		delete(was, p)
	}
	for p := range was {
		t.Errorf("removed: %s", p)
	}
	if r := e.Run("netspawnctl", "list"); strings.Contains(r.Stdout, "oci-bad") {
		t.Errorf("oci-bad still listed: %s", r.Stdout)
	}
}

// A bundle whose linux.namespaces has "user" runs in a user namespace of its
// own: a picked 64K range (as -U), or with uidMappings the range they name.
func TestOCIBundleUserNS(t *testing.T) {
	e := harness.NewEnv(t)
	if _, err := os.Stat("/proc/self/ns/user"); err != nil {
		harness.Unavailable(t, "needs user namespaces")
	}
	bundle, spec := ociBundle(t, e)
	l := spec["linux"].(map[string]any)
	l["namespaces"] = append(l["namespaces"].([]any), map[string]any{"type": "user"})
	spec["process"].(map[string]any)["args"] = []string{"sh", "-c", "cat /proc/self/uid_map; id -u; stat -c %u /"}
	writeOCIConfig(t, bundle, spec)
	r := e.Run("netspawn", "-q", "-M", "oci-userns", "--oci-bundle="+bundle)
	var in, shift, size uint32
	var id, binOwner string
	if _, err := fmt.Sscan(r.Stdout, &in, &shift, &size, &id, &binOwner); err != nil || r.Code != 0 {
		t.Fatalf("uid_map: %q (status %d, stderr %q)", r.Stdout, r.Code, r.Stderr)
	}
	if in != 0 || size != 65536 || shift < 524288 || shift%65536 != 0 {
		t.Fatalf("range %d %d:%d, want a picked 64K range", in, shift, size)
	}
	// The tree is the container's root's, inside.
	if id != "0" || binOwner != "0" {
		t.Fatalf("inside: uid %s, / owned by %s; want 0 and 0", id, binOwner)
	}

	// uidMappings and gidMappings name the range (--private-users=HOSTID:SIZE);
	// as with runc, the root file system must already belong to it (the run
	// above used an idmapped mount and left the files alone): shift it to
	// the range picked above.
	err := filepath.WalkDir(filepath.Join(bundle, "rootfs"), func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		return os.Lchown(p, int(st.Uid+shift), int(st.Gid+shift))
	})
	if err != nil {
		t.Fatal(err)
	}
	m := []map[string]any{{"containerID": 0, "hostID": shift, "size": 65536}}
	l["uidMappings"], l["gidMappings"] = m, m
	writeOCIConfig(t, bundle, spec)
	r = e.Run("netspawn", "-q", "-M", "oci-userns", "--oci-bundle="+bundle)
	var shift2 uint32
	if _, err := fmt.Sscan(r.Stdout, &in, &shift2, &size, &id, &binOwner); err != nil || r.Code != 0 {
		t.Fatalf("uid_map: %q (status %d, stderr %q)", r.Stdout, r.Code, r.Stderr)
	}
	if shift2 != shift || size != 65536 || id != "0" || binOwner != "0" {
		t.Fatalf("with uidMappings %d:65536: range %d:%d, uid %s, / owned by %s", shift, shift2, size, id, binOwner)
	}
}

// linux.seccomp replaces the default filter: the payload gets exactly the
// errno the bundle names, an argument comparison decides per call, and
// what the bundle allows works (as does what only the default filter
// would refuse: the bundle's filter is the whole filter).
func TestOCIBundleSeccomp(t *testing.T) {
	e := harness.NewEnv(t)
	bundle, spec := ociBundle(t, e)
	spec["root"].(map[string]any)["readonly"] = false
	mode := func(idx int) []map[string]any {
		return []map[string]any{{"index": idx, "value": 0o700, "op": "SCMP_CMP_EQ"}}
	}
	spec["linux"].(map[string]any)["seccomp"] = map[string]any{
		"defaultAction": "SCMP_ACT_ALLOW",
		"architectures": []string{"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"},
		"syscalls": []map[string]any{
			{"names": []string{"mkdir", "mkdirat"}, "action": "SCMP_ACT_ERRNO", "errnoRet": int(syscall.EACCES)},
			// chmod to mode 0700 is refused (EPERM, as nspawn's
			// SCMP_ACT_ERRNO), other modes pass.
			{"names": []string{"chmod"}, "action": "SCMP_ACT_ERRNO", "args": mode(1)},
			{"names": []string{"fchmodat"}, "action": "SCMP_ACT_ERRNO", "args": mode(2)},
		},
	}
	script := strings.Join([]string{
		`mkdir /ho-dir 2>&1; echo "mkdir=$?"`,
		`touch /ho-file && chmod 755 /ho-file && echo "chmod755=$(stat -c %a /ho-file)"`,
		`chmod 700 /ho-file 2>&1; echo "chmod700=$? mode=$(stat -c %a /ho-file)"`,
		// swapoff is not in nspawn's default allow-list (EPERM there,
		// whatever the capabilities); here the kernel answers (EINVAL
		// for a file that is no swap).
		`swapoff /ho-file 2>&1 | sed 's/.*: //'`,
	}, "; ")
	proc := spec["process"].(map[string]any)
	proc["args"] = []string{"sh", "-c", script}
	// CAP_SYS_ADMIN, for swapoff.
	for _, set := range []string{"bounding", "effective", "permitted"} {
		c := proc["capabilities"].(map[string]any)
		c[set] = append(c[set].([]any), "CAP_SYS_ADMIN")
	}
	writeOCIConfig(t, bundle, spec)
	out := strings.Join([]string{
		"mkdir: can't create directory '/ho-dir': Permission denied",
		"mkdir=1",
		"chmod755=755",
		"chmod: /ho-file: Operation not permitted",
		"chmod700=1 mode=755",
		"Invalid argument",
	}, "\n")
	want(t, e.Run("netspawn", "-q", "-M", "oci-seccomp", "--oci-bundle="+bundle), out)
	// The same through the fast path's raw child, which installs the
	// filter itself.
	fast := clone(t, spec)
	ociFastPath(fast)
	fast["process"].(map[string]any)["args"] = []string{"sh", "-c", "rm -f /ho-file; " + script}
	writeOCIConfig(t, bundle, fast)
	want(t, runFast(t, e, "netspawn", "-q", "-M", "oci-seccomp", "--oci-bundle="+bundle), out)

	// --system-call-filter= keeps the default filter, edited, as nspawn.
	spec["process"].(map[string]any)["args"] = []string{"sh", "-c", `mkdir /ho-dir2 && echo mkdir=ok; swapoff /ho-file 2>&1 | sed 's/.*: //'`}
	writeOCIConfig(t, bundle, spec)
	r := e.Run("netspawn", "-M", "oci-seccomp", "--oci-bundle="+bundle, "--system-call-filter=~@sync")
	want(t, r, "mkdir=ok\nOperation not permitted")
	if !strings.Contains(r.Stderr, "linux.seccomp: ignored, as --system-call-filter= is given") {
		t.Errorf("no warning about the ignored filter: %q", r.Stderr)
	}

	// A name netspawn does not know is refused, naming the field.
	spec["linux"].(map[string]any)["seccomp"].(map[string]any)["syscalls"] = []map[string]any{{"names": []string{"mkdir", "mkdri"}, "action": "SCMP_ACT_ERRNO"}}
	writeOCIConfig(t, bundle, spec)
	wantFail(t, e.Run("netspawn", "-q", "-M", "oci-seccomp", "--oci-bundle="+bundle), `linux.seccomp.syscalls[0].names[1]: unknown system call "mkdri"`)
}

// linux.devices: the nodes are made with the type, numbers, mode and owner
// given (parents too); an entry for a node every container has is skipped
// whatever its path, as nspawn does.
func TestOCIBundleDevices(t *testing.T) {
	e := harness.NewEnv(t)
	bundle, spec := ociBundle(t, e)
	spec["linux"].(map[string]any)["devices"] = []map[string]any{
		{"type": "c", "path": "/dev/net/tun", "major": 10, "minor": 200, "fileMode": 0o666, "uid": 0, "gid": 0},
		{"type": "p", "path": "/dev/ho-fifo", "fileMode": 0o620, "uid": 1000, "gid": 2000},
		{"type": "c", "path": "/dev/ho-null", "major": 1, "minor": 3},
	}
	spec["process"].(map[string]any)["args"] = []string{"sh", "-c",
		`stat -c '%n %F %t:%T %a %u:%g' /dev/net/tun /dev/ho-fifo; test -e /dev/ho-null || echo no-ho-null`}
	writeOCIConfig(t, bundle, spec)
	want(t, e.Run("netspawn", "-q", "-M", "oci-devices", "--oci-bundle="+bundle), strings.Join([]string{
		"/dev/net/tun character special file a:c8 666 0:0",
		"/dev/ho-fifo fifo 0:0 620 1000:2000",
		"no-ho-null",
	}, "\n"))

	// The same through the fast path's raw child.
	ociFastPath(spec)
	writeOCIConfig(t, bundle, spec)
	want(t, runFast(t, e, "netspawn", "-q", "-M", "oci-devices", "--oci-bundle="+bundle), strings.Join([]string{
		"/dev/net/tun character special file a:c8 666 0:0",
		"/dev/ho-fifo fifo 0:0 620 1000:2000",
		"no-ho-null",
	}, "\n"))

	spec["linux"].(map[string]any)["devices"] = []map[string]any{{"type": "b", "path": "/dev/ho-disk", "major": 8}}
	writeOCIConfig(t, bundle, spec)
	wantFail(t, e.Run("netspawn", "-q", "-M", "oci-devices", "--oci-bundle="+bundle), `linux.devices[0]: a device node of type "b" needs major and minor`)
}

// ociFastPath edits a "runc spec" bundle so that netspawn starts it
// through the fast path (fast.go): a writable root, the host's network,
// no masked or read-only paths, no ambient capabilities.
func ociFastPath(spec map[string]any) {
	spec["root"].(map[string]any)["readonly"] = false
	linux := spec["linux"].(map[string]any)
	linux["namespaces"] = []map[string]any{{"type": "mount"}, {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}}
	linux["maskedPaths"] = []string{}
	linux["readonlyPaths"] = []string{}
	delete(spec["process"].(map[string]any)["capabilities"].(map[string]any), "ambient")
}

// runFast is e.Run, failing the test unless netspawn took the fast path.
func runFast(t *testing.T, e *harness.Env, prog string, args ...string) harness.Result {
	t.Helper()
	vars := e.Vars
	e.Vars = append(append([]string(nil), vars...), "NETSPAWN_TRACE=1")
	defer func() { e.Vars = vars }()
	r := e.Run(prog, args...)
	if r.Code == 0 && !strings.Contains(r.Stderr, "(fast path)") {
		t.Errorf("not started through the fast path: %s", r.Stderr)
	}
	return r
}

// clone deep-copies a JSON object.
func clone(t *testing.T, m map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
