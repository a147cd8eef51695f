package spawn

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/netspawn/netspawn/spawn/config"
)

func TestParsePrivateUsers(t *testing.T) {
	cases := []struct {
		in          string
		mode        config.UserNSMode
		shift, size uint32
		bad         bool
	}{
		{"", config.UserNSYes, 0, 65536, false},
		{"yes", config.UserNSYes, 0, 65536, false},
		{"no", config.UserNSOff, 0, 0, false},
		{"pick", config.UserNSPick, 0, 65536, false},
		{"identity", config.UserNSIdentity, 0, 65536, false},
		{"1000000", config.UserNSFixed, 1000000, 65536, false},
		{"1000000:1000", config.UserNSFixed, 1000000, 1000, false},
		{"1000000:0", "", 0, 0, true},
		{"4294967295:2", "", 0, 0, true},
		{"maybe", "", 0, 0, true},
		{"-5", "", 0, 0, true},
	}
	for _, c := range cases {
		m, s, n, err := config.ParsePrivateUsers(c.in)
		if c.bad {
			if err == nil {
				t.Errorf("%q: no error", c.in)
			}
			continue
		}
		if err != nil || m != c.mode || s != c.shift || n != c.size {
			t.Errorf("%q: %q %d %d %v; want %q %d %d", c.in, m, s, n, err, c.mode, c.shift, c.size)
		}
	}
}

func TestParseOwnership(t *testing.T) {
	for in, want := range map[string]config.Ownership{"off": config.OwnershipOff, "chown": config.OwnershipChown, "map": config.OwnershipMap, "auto": config.OwnershipAuto, "yes": config.OwnershipChown, "no": config.OwnershipOff} {
		if got, err := config.ParseOwnership(in); err != nil || got != want {
			t.Errorf("%q: %q %v", in, got, err)
		}
	}
	if _, err := config.ParseOwnership("bogus"); err == nil {
		t.Error("bogus accepted")
	}
	if effectiveOwnership(config.PrivateUsers{Mode: config.UserNSPick}) != config.OwnershipAuto || effectiveOwnership(config.PrivateUsers{Mode: config.UserNSYes}) != config.OwnershipOff {
		t.Error("default ownership")
	}
}

func TestOwnerRangeAndShift(t *testing.T) {
	if b, ok := ownerRange(0x1D0000, 0x1D0000); !ok || b != 0x1D0000 {
		t.Errorf("aligned owner: %x %v", b, ok)
	}
	if _, ok := ownerRange(1000, 1000); ok {
		t.Error("unaligned owner accepted")
	}
	if _, ok := ownerRange(0x1D0000, 0); ok {
		t.Error("uid != gid accepted")
	}
	if n, ok := shiftID(1000, 0, 0x80000, 65536); !ok || n != 0x80000+1000 {
		t.Errorf("shift: %d %v", n, ok)
	}
	if n, ok := shiftID(70000, 0, 0x80000, 65536); ok || n != 70000 {
		t.Errorf("out of range shifted: %d", n)
	}
}

func TestPickRange(t *testing.T) {
	host := []uint32{0, 1000, 65534}
	a, err := pickRange("/t/a", "a", 0, true, nil, host, nil)
	if err != nil || a < config.UIDPickMin || a >= config.UIDPickMax || a%config.UIDRangeSize != 0 {
		t.Fatalf("pick: %d %v", a, err)
	}
	// Stable for a name.
	if b, _ := pickRange("/t/a", "a", 0, true, nil, host, nil); b != a {
		t.Errorf("not stable: %d %d", a, b)
	}
	// Taken by a running container: the next one.
	b, _ := pickRange("/t/a", "a", 0, true, []uidRange{{a, config.UIDRangeSize}}, host, nil)
	if b == a {
		t.Errorf("picked a running range")
	}
	// The tree's owner range when free.
	if c, _ := pickRange("/t/a", "a", 0x100000, true, nil, host, nil); c != 0x100000 {
		t.Errorf("owner range not used: %d", c)
	}
	// ... but not when a running container has it.
	if c, _ := pickRange("/t/a", "a", 0x100000, true, []uidRange{{0x100000, config.UIDRangeSize}}, host, nil); c == 0x100000 {
		t.Errorf("owner range used while running")
	}
	// The remembered range first.
	trees := map[string]uint32{"/t/a": 0x200000, "/t/b": a}
	if c, _ := pickRange("/t/a", "a", 0x100000, true, nil, host, trees); c != 0x200000 {
		t.Errorf("remembered range not used: %d", c)
	}
	// Another tree's remembered range is avoided.
	if c, _ := pickRange("/t/c", "a", 0, true, nil, host, trees); c == a || c == 0x200000 {
		t.Errorf("picked another tree's range %d", c)
	}
	// A host user inside the range makes it unusable.
	if c, _ := pickRange("/t/a", "a", 0, true, nil, append(host, a+5), nil); c == a {
		t.Errorf("picked a range with a host user")
	}
}

func TestRangeCandidatesCoverAll(t *testing.T) {
	n := 0
	seen := map[uint32]bool{}
	for s := range rangeCandidates(12345) {
		if s < config.UIDPickMin || s+config.UIDRangeSize > config.UIDPickMax || seen[s] {
			t.Fatalf("bad candidate %d", s)
		}
		seen[s] = true
		n++
	}
	if n != (config.UIDPickMax-config.UIDPickMin)/config.UIDRangeSize {
		t.Errorf("%d candidates", n)
	}
}

func TestShiftACL(t *testing.T) {
	v := make([]byte, 4+4*8)
	binary.LittleEndian.PutUint32(v, 2)
	ent := func(i int, tag uint16, id uint32) {
		binary.LittleEndian.PutUint16(v[4+i*8:], tag)
		binary.LittleEndian.PutUint16(v[6+i*8:], 7)
		binary.LittleEndian.PutUint32(v[8+i*8:], id)
	}
	ent(0, 0x01, 0xFFFFFFFF) // USER_OBJ
	ent(1, aclTagUser, 1000)
	ent(2, aclTagGroup, 100)
	ent(3, 0x20, 0xFFFFFFFF) // OTHER
	out := shiftACL(v, 0, 0x80000, 65536)
	if out == nil {
		t.Fatal("nothing changed")
	}
	if id := binary.LittleEndian.Uint32(out[8+8:]); id != 0x80000+1000 {
		t.Errorf("user entry %d", id)
	}
	if id := binary.LittleEndian.Uint32(out[8+16:]); id != 0x80000+100 {
		t.Errorf("group entry %d", id)
	}
	if id := binary.LittleEndian.Uint32(out[8:]); id != 0xFFFFFFFF {
		t.Errorf("USER_OBJ touched: %d", id)
	}
	if shiftACL(v[:7], 0, 1, 2) != nil {
		t.Error("short value changed")
	}
}

func TestClaimNames(t *testing.T) {
	if r, ok := parseClaimName(claimName(524288, 65536)); !ok || r != (uidRange{524288, 65536}) {
		t.Errorf("%v %v", r, ok)
	}
	for _, n := range []string{"x.lock", "1-2", "a-b.lock"} {
		if _, ok := parseClaimName(n); ok {
			t.Errorf("%q parsed", n)
		}
	}
}

func TestRangeRegistry(t *testing.T) {
	dir := t.TempDir()
	reg, err := openRangeRegistry(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.close()
	f, err := reg.claim(uidRange{524288, 65536})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.claim(uidRange{524288, 65536}); err == nil {
		t.Error("claimed twice")
	}
	if r, _ := reg.running(); !reflect.DeepEqual(r, []uidRange{{524288, 65536}}) {
		t.Errorf("running %v", r)
	}
	f.Close() // the holder went away
	if r, _ := reg.running(); len(r) != 0 {
		t.Errorf("stale claim still running: %v", r)
	}
	if err := reg.remember("/a", 524288); err != nil {
		t.Fatal(err)
	}
	if err := reg.remember("/b", 589824); err != nil {
		t.Fatal(err)
	}
	m, _ := reg.trees()
	if !reflect.DeepEqual(m, map[string]uint32{"/a": 524288, "/b": 589824}) {
		t.Errorf("trees %v", m)
	}
	if ents, _ := filepath.Glob(filepath.Join(dir, "userns", ".trees.json.tmp-*")); len(ents) != 0 {
		t.Errorf("temporary files left: %v", ents)
	}
	// A damaged file is not fatal.
	if err := os.WriteFile(reg.treesFile(), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if m, err := reg.trees(); err != nil || len(m) != 0 {
		t.Errorf("damaged registry: %v %v", m, err)
	}
}

func TestParseOverlay(t *testing.T) {
	cases := []struct {
		in   string
		ro   bool
		want config.OverlayMount
		bad  bool
	}{
		{in: "/a:/b:/c", want: config.OverlayMount{Lower: []config.OverlayPath{{Path: "/a"}}, Upper: config.OverlayPath{Path: "/b"}, Dest: "/c"}},
		{in: "/a:/b", want: config.OverlayMount{Lower: []config.OverlayPath{{Path: "/a"}}, Upper: config.OverlayPath{Path: "/b"}, Dest: "/b"}},
		{in: "+/var::/var", want: config.OverlayMount{Lower: []config.OverlayPath{{Path: "/var", InRoot: true}}, Dest: "/var"}},
		{in: "/l1:/l2::/d", ro: true, want: config.OverlayMount{Lower: []config.OverlayPath{{Path: "/l1"}, {Path: "/l2"}}, Dest: "/d", ReadOnly: true}},
		{in: `/a\:b:/u:/d`, want: config.OverlayMount{Lower: []config.OverlayPath{{Path: "/a:b"}}, Upper: config.OverlayPath{Path: "/u"}, Dest: "/d"}},
		{in: "/a", bad: true},
		{in: "/a:", bad: true},
		{in: "/a:/b:rel", bad: true},
		{in: ":/b:/c", bad: true},
		{in: "+rel:/b:/c", bad: true},
	}
	for _, c := range cases {
		got, err := config.ParseOverlay(c.in, c.ro)
		if c.bad {
			if err == nil {
				t.Errorf("%q: no error (%+v)", c.in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: %+v %v; want %+v", c.in, got, err, c.want)
		}
	}
}

func TestParseVolatile(t *testing.T) {
	for in, want := range map[string]config.VolatileMode{"": config.VolatileYes, "yes": config.VolatileYes, "no": config.VolatileNo, "state": config.VolatileState, "overlay": config.VolatileOverlay} {
		if got, err := config.ParseVolatile(in); err != nil || got != want {
			t.Errorf("%q: %q %v", in, got, err)
		}
	}
	if _, err := config.ParseVolatile("maybe"); err == nil {
		t.Error("maybe accepted")
	}
}

func TestEphemeralNames(t *testing.T) {
	if got := ephemeralMachineName("web", "0123456789abcdef"); got != "web-0123456789abcdef" {
		t.Errorf("%q", got)
	}
	long := ephemeralMachineName(string(make([]byte, 80)), "0123456789abcdef")
	if len(long) != 64 {
		t.Errorf("length %d", len(long))
	}
	if got := snapshotName("/var/lib/machines/web", "00ff"); got != "/var/lib/machines/.#machine.web00ff" {
		t.Errorf("%q", got)
	}
	cfg := &config.Config{Directory: "/m/web", Machine: "web"}
	cfg.Ephemeral = true
	if err := prepareImage(cfg); err != nil || len(cfg.Machine) != len("web-")+16 {
		t.Errorf("machine %q %v", cfg.Machine, err)
	}
	cfg = &config.Config{Directory: "/m/web", Machine: "chosen"}
	cfg.Ephemeral = true
	if err := prepareImage(cfg); err != nil || cfg.Machine != "chosen" {
		t.Errorf("explicit name changed: %q", cfg.Machine)
	}
	cfg.Volatile = config.VolatileYes
	if err := prepareImage(cfg); err == nil {
		t.Error("-x with --volatile accepted")
	}
}

func TestReapStaleRunDirs(t *testing.T) {
	base := t.TempDir()
	t.Setenv("NETSPAWN_TMPDIR", base)
	live, err := newRunDir()
	if err != nil {
		t.Fatal(err)
	}
	defer live.remove()
	dead, err := newRunDir()
	if err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "work")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	dead.note(outside)
	dead.lock.Close() // its netspawn died
	reapStaleRunDirs()
	if _, err := os.Stat(dead.path); err == nil {
		t.Error("stale run directory not removed")
	}
	if _, err := os.Stat(outside); err == nil {
		t.Error("directory listed by the stale run not removed")
	}
	if _, err := os.Stat(live.path); err != nil {
		t.Errorf("live run directory removed: %v", err)
	}
}
