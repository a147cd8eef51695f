package spawn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netspawn/netspawn/spawn/config"

	"golang.org/x/sys/unix"

	"github.com/netspawn/netspawn/test/harness"
)

// The test binary plays netspawn: Run re-executes it as the container's
// first process (and as the stub init). This runs before TestMain.
func init() {
	if IsStub() {
		StubMain()
	}
	if IsInit() {
		InitMain()
	}
}

// rootEnv is a busybox tree and private state for a test that runs
// containers through Run directly.
type rootEnv struct {
	t     *testing.T
	tree  string
	state string
	tmp   string
}

func newRootEnv(t *testing.T) *rootEnv {
	t.Helper()
	harness.RequireRoot(t)
	if _, err := os.Stat(harness.BusyboxPath); err != nil {
		harness.Unavailable(t, "needs busybox-static")
	}
	pristine, err := harness.CachedBusyboxTree(harness.CacheDir())
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	e := &rootEnv{t: t, tree: filepath.Join(base, "tree"), state: filepath.Join(base, "state"), tmp: filepath.Join(base, "tmp")}
	if err := harness.CopyTree(pristine, e.tree); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NETSPAWN_STATE_DIR", e.state)
	// The image locks go under the runtime directory: the test's own.
	t.Setenv("NETSPAWN_RUNTIME_DIR", filepath.Join(base, "run"))
	return e
}

// run runs a command in a container built from cfg (Directory, Quiet,
// Command filled in) and returns its output and exit code.
func (e *rootEnv) run(cfg config.Config, cmd ...string) (string, int) {
	e.t.Helper()
	if cfg.Directory == "" {
		cfg.Directory = e.tree
	}
	if cfg.Machine == "" {
		cfg.Machine = filepath.Base(cfg.Directory)
	}
	cfg.Quiet = true
	cfg.Network.Private = true
	cfg.Command = cmd
	out, err := os.CreateTemp(e.t.TempDir(), "out")
	if err != nil {
		e.t.Fatal(err)
	}
	defer out.Close()
	in, err := os.Open(os.DevNull)
	if err != nil {
		e.t.Fatal(err)
	}
	defer in.Close()
	err = Run(&cfg, Options{Stdin: in, Stdout: out, Stderr: out})
	b, _ := os.ReadFile(out.Name())
	var ee *ExitError
	switch {
	case errors.As(err, &ee):
		return string(b), ee.Code
	case err != nil:
		return string(b) + err.Error(), -1
	}
	return strings.TrimSpace(string(b)), 0
}

func (e *rootEnv) want(cfg config.Config, want string, cmd ...string) {
	e.t.Helper()
	out, code := e.run(cfg, cmd...)
	if code != 0 || out != want {
		e.t.Fatalf("%v: status %d, output %q; want %q", cmd, code, out, want)
	}
}

func ownerOf(t *testing.T, p string) (uint32, uint32) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Uid, st.Gid
}

func TestRootUserNSChown(t *testing.T) {
	e := newRootEnv(t)
	cfg := config.Config{}
	cfg.PrivateUsers = config.PrivateUsers{Mode: config.UserNSPick, Ownership: config.OwnershipChown}
	out, code := e.run(cfg, "sh", "-c", "set -- $(cat /proc/self/uid_map); echo $1 $2 $3; id -u; touch /root/made")
	if code != 0 {
		t.Fatalf("status %d: %s", code, out)
	}
	var inside, shift, size uint32
	if _, err := fmt.Sscan(out, &inside, &shift, &size); err != nil || inside != 0 || size != 65536 || shift < config.UIDPickMin || shift%65536 != 0 {
		t.Fatalf("uid_map %q", out)
	}
	if u, g := ownerOf(t, filepath.Join(e.tree, "root/made")); u != shift || g != shift {
		t.Errorf("file made inside owned by %d:%d on the host, want %d", u, g, shift)
	}
	if u, _ := ownerOf(t, e.tree); u != shift {
		t.Errorf("tree root owned by %d, want %d", u, shift)
	}
	if u, _ := ownerOf(t, filepath.Join(e.tree, "home/user")); u != shift+1000 {
		t.Errorf("/home/user owned by %d, want %d", u, shift+1000)
	}
	// Same range next time (the tree's owner range), nothing to shift.
	e.want(cfg, fmt.Sprintf("%d", shift), "sh", "-c", "set -- $(cat /proc/self/uid_map); echo $2")
	// The user inside is the shifted one.
	e.want(cfg, "1000", "sh", "-c", "su -s /bin/sh user -c 'id -u' 2>/dev/null || echo nosu")
}

func TestRootUserNSMap(t *testing.T) {
	e := newRootEnv(t)
	cfg := config.Config{}
	cfg.PrivateUsers = config.PrivateUsers{Mode: config.UserNSPick, Ownership: config.OwnershipMap}
	out, code := e.run(cfg, "sh", "-c", "set -- $(cat /proc/self/uid_map); echo $2; stat -c %u /home/user; touch /root/made; chown 1000 /root/made")
	if code != 0 {
		t.Fatalf("status %d: %s", code, out)
	}
	f := strings.Fields(out)
	if len(f) != 2 || f[1] != "1000" {
		t.Fatalf("output %q", out)
	}
	// Idmapped: on disk the files keep the tree's own IDs.
	if u, _ := ownerOf(t, filepath.Join(e.tree, "root/made")); u != 1000 {
		t.Errorf("file chowned to 1000 inside is %d on disk", u)
	}
	if u, _ := ownerOf(t, e.tree); u != 0 {
		t.Errorf("tree root owner changed to %d", u)
	}
	// The range is remembered for the tree.
	e.want(cfg, f[0], "sh", "-c", "set -- $(cat /proc/self/uid_map); echo $2")
}

func TestRootUserNSFixedAndIdentity(t *testing.T) {
	e := newRootEnv(t)
	cfg := config.Config{}
	cfg.PrivateUsers = config.PrivateUsers{Mode: config.UserNSFixed, Shift: 0x300000, Range: 65536, Ownership: config.OwnershipChown}
	e.want(cfg, "0 3145728 65536", "sh", "-c", "set -- $(cat /proc/self/uid_map); echo $1 $2 $3")
	cfg.PrivateUsers = config.PrivateUsers{Mode: config.UserNSYes}
	e.want(cfg, "0 3145728 65536", "sh", "-c", "set -- $(cat /proc/self/uid_map); echo $1 $2 $3")
	cfg.PrivateUsers = config.PrivateUsers{Mode: config.UserNSIdentity, Ownership: config.OwnershipChown}
	e.want(cfg, "0 0 65536", "sh", "-c", "set -- $(cat /proc/self/uid_map); echo $1 $2 $3")
}

func TestRootEphemeral(t *testing.T) {
	e := newRootEnv(t)
	cfg := config.Config{}
	cfg.Ephemeral = true
	e.want(cfg, "gone", "sh", "-c", "rm /etc/passwd && echo new > /root/new && test ! -e /etc/passwd && echo gone")
	if _, err := os.Stat(filepath.Join(e.tree, "etc/passwd")); err != nil {
		t.Errorf("ephemeral delete reached the tree: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.tree, "root/new")); err == nil {
		t.Error("ephemeral write reached the tree")
	}
	out, _ := e.run(cfg, "hostname")
	if !strings.HasPrefix(out, "tree-") || len(out) != len("tree-")+16 {
		t.Errorf("ephemeral hostname %q", out)
	}
	// With a user namespace (idmapped overlay).
	cfg.PrivateUsers = config.PrivateUsers{Mode: config.UserNSPick}
	e.want(cfg, "ok", "sh", "-c", "echo x > /root/new && cat /root/new >/dev/null && echo ok")
	if _, err := os.Stat(filepath.Join(e.tree, "root/new")); err == nil {
		t.Error("ephemeral write reached the tree")
	}
	if u, _ := ownerOf(t, e.tree); u != 0 {
		t.Errorf("-x -U changed the tree's owner to %d", u)
	}
	checkNoTmpLeft(t)
}

func checkNoTmpLeft(t *testing.T) {
	t.Helper()
	ents, _ := os.ReadDir(tmpBase())
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "run-") {
			if f, err := os.OpenFile(filepath.Join(tmpBase(), e.Name(), ".lock"), os.O_RDWR, 0); err == nil {
				if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
					t.Errorf("left behind: %s", e.Name())
				}
				f.Close()
			}
		}
	}
}

func TestRootVolatile(t *testing.T) {
	e := newRootEnv(t)
	cfg := config.Config{}
	cfg.Volatile = config.VolatileYes
	e.want(cfg, "ok", "sh", "-c", "touch /new && ! touch /usr/new 2>/dev/null && test ! -e /etc/passwd && echo ok")
	cfg.Volatile = config.VolatileState
	e.want(cfg, "ok", "sh", "-c", "touch /var/new && ! touch /etc/new 2>/dev/null && echo ok")
	cfg.Volatile = config.VolatileOverlay
	e.want(cfg, "ok", "sh", "-c", "touch /etc/new && rm /etc/passwd && echo ok")
	for _, p := range []string{"new", "usr/new", "var/new", "etc/new"} {
		if _, err := os.Stat(filepath.Join(e.tree, p)); err == nil {
			t.Errorf("volatile write reached the tree: %s", p)
		}
	}
	if _, err := os.Stat(filepath.Join(e.tree, "etc/passwd")); err != nil {
		t.Errorf("volatile delete reached the tree: %v", err)
	}
	cfg.Volatile = config.VolatileYes
	cfg.PrivateUsers = config.PrivateUsers{Mode: config.UserNSPick}
	e.want(cfg, "ok", "sh", "-c", "touch /new && echo ok")
	checkNoTmpLeft(t)
}

func TestRootOverlayAndInaccessible(t *testing.T) {
	e := newRootEnv(t)
	lower, upper := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(lower, "l"), []byte("lower\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config.Config{}
	cfg.Overlays = []config.OverlayMount{
		{Lower: []config.OverlayPath{{Path: lower}}, Upper: config.OverlayPath{Path: upper}, Dest: "/mnt/o"},
		{Lower: []config.OverlayPath{{Path: "/etc", InRoot: true}}, Dest: "/etc"},
		{Lower: []config.OverlayPath{{Path: lower}}, Dest: "/mnt/ro", ReadOnly: true},
	}
	cfg.Inaccessible = []string{"/home", "/etc/group"}
	e.want(cfg, "lower\nok", "sh", "-c", "cat /mnt/o/l && echo u > /mnt/o/u && echo t > /etc/tmpfile && ! touch /mnt/ro/x 2>/dev/null && ! ls /home/user 2>/dev/null && test ! -s /etc/group && echo ok")
	if b, err := os.ReadFile(filepath.Join(upper, "u")); err != nil || string(b) != "u\n" {
		t.Errorf("upper layer: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(e.tree, "etc/tmpfile")); err == nil {
		t.Error("write to a temporary upper layer reached the tree")
	}
	if _, err := os.Stat(filepath.Join(lower, "u")); err == nil {
		t.Error("write reached the lower layer")
	}
	if ents, _ := filepath.Glob(filepath.Join(filepath.Dir(upper), ".#*")); len(ents) != 0 {
		t.Errorf("work directory left: %v", ents)
	}
	checkNoTmpLeft(t)
}

func TestRootTemplate(t *testing.T) {
	e := newRootEnv(t)
	dir := filepath.Join(t.TempDir(), "machines", "copy")
	cfg := config.Config{Directory: dir}
	cfg.Template = e.tree
	e.want(cfg, "copy", "hostname")
	if _, err := os.Stat(filepath.Join(dir, "etc/passwd")); err != nil {
		t.Fatalf("template not copied: %v", err)
	}
	// Exists now: the template is not used again.
	if err := os.WriteFile(filepath.Join(dir, "marker"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	e.want(cfg, "ok", "sh", "-c", "test -e /marker && echo ok")
}

// chown shifting rewrites the UIDs and GIDs inside POSIX ACLs too.
func TestRootChownACL(t *testing.T) {
	e := newRootEnv(t)
	f := filepath.Join(e.tree, "root/acl")
	if err := os.WriteFile(f, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	v := make([]byte, 4+5*8)
	binary.LittleEndian.PutUint32(v, 2)
	for i, ent := range []struct {
		tag  uint16
		perm uint16
		id   uint32
	}{{0x01, 6, 0xFFFFFFFF}, {0x02 /* ACL_USER */, 4, 1000}, {0x04, 4, 0xFFFFFFFF}, {0x10, 4, 0xFFFFFFFF}, {0x20, 0, 0xFFFFFFFF}} {
		binary.LittleEndian.PutUint16(v[4+i*8:], ent.tag)
		binary.LittleEndian.PutUint16(v[6+i*8:], ent.perm)
		binary.LittleEndian.PutUint32(v[8+i*8:], ent.id)
	}
	if err := unix.Lsetxattr(f, "system.posix_acl_access", v, 0); err != nil {
		harness.Unavailable(t, fmt.Sprintf("file system without POSIX ACLs: %v", err))
	}
	cfg := config.Config{}
	cfg.PrivateUsers = config.PrivateUsers{Mode: config.UserNSFixed, Shift: 0x400000, Range: 65536, Ownership: config.OwnershipChown}
	// Inside, user 1000 may read the file through its ACL entry.
	e.want(cfg, "ok", "sh", "-c", "su -s /bin/sh user -c 'cat /root/acl' && echo ok")
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(f, "system.posix_acl_access", buf)
	if err != nil {
		t.Fatal(err)
	}
	if id := binary.LittleEndian.Uint32(buf[8+8 : n]); id != 0x400000+1000 {
		t.Fatalf("ACL user entry %d, want %d", id, 0x400000+1000)
	}
}
