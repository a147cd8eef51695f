package idmap

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/netspawn/netspawn/spawn/config"
)

func TestOwnerRangeAndShift(t *testing.T) {
	if b, ok := OwnerRange(0x1D0000, 0x1D0000); !ok || b != 0x1D0000 {
		t.Errorf("aligned owner: %x %v", b, ok)
	}
	if _, ok := OwnerRange(1000, 1000); ok {
		t.Error("unaligned owner accepted")
	}
	if _, ok := OwnerRange(0x1D0000, 0); ok {
		t.Error("uid != gid accepted")
	}
	if n, ok := ShiftID(1000, 0, 0x80000, 65536); !ok || n != 0x80000+1000 {
		t.Errorf("shift: %d %v", n, ok)
	}
	if n, ok := ShiftID(70000, 0, 0x80000, 65536); ok || n != 70000 {
		t.Errorf("out of range shifted: %d", n)
	}
}

func TestPickRange(t *testing.T) {
	host := []uint32{0, 1000, 65534}
	a, err := PickRange("/t/a", "a", 0, true, nil, host, nil)
	if err != nil || a < config.UIDPickMin || a >= config.UIDPickMax || a%config.UIDRangeSize != 0 {
		t.Fatalf("pick: %d %v", a, err)
	}
	// Stable for a name.
	if b, _ := PickRange("/t/a", "a", 0, true, nil, host, nil); b != a {
		t.Errorf("not stable: %d %d", a, b)
	}
	// Taken by a running container: the next one.
	b, _ := PickRange("/t/a", "a", 0, true, []Range{{a, config.UIDRangeSize}}, host, nil)
	if b == a {
		t.Errorf("picked a running range")
	}
	// The tree's owner range when free.
	if c, _ := PickRange("/t/a", "a", 0x100000, true, nil, host, nil); c != 0x100000 {
		t.Errorf("owner range not used: %d", c)
	}
	// ... but not when a running container has it.
	if c, _ := PickRange("/t/a", "a", 0x100000, true, []Range{{0x100000, config.UIDRangeSize}}, host, nil); c == 0x100000 {
		t.Errorf("owner range used while running")
	}
	// The remembered range first.
	trees := map[string]uint32{"/t/a": 0x200000, "/t/b": a}
	if c, _ := PickRange("/t/a", "a", 0x100000, true, nil, host, trees); c != 0x200000 {
		t.Errorf("remembered range not used: %d", c)
	}
	// Another tree's remembered range is avoided.
	if c, _ := PickRange("/t/c", "a", 0, true, nil, host, trees); c == a || c == 0x200000 {
		t.Errorf("picked another tree's range %d", c)
	}
	// A host user inside the range makes it unusable.
	if c, _ := PickRange("/t/a", "a", 0, true, nil, append(host, a+5), nil); c == a {
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
	if r, ok := parseClaimName(claimName(524288, 65536)); !ok || r != (Range{524288, 65536}) {
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
	reg, err := OpenRegistry(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	f, err := reg.Claim(Range{524288, 65536})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Claim(Range{524288, 65536}); err == nil {
		t.Error("claimed twice")
	}
	if r, _ := reg.Running(); !reflect.DeepEqual(r, []Range{{524288, 65536}}) {
		t.Errorf("running %v", r)
	}
	f.Close() // the holder went away
	if r, _ := reg.Running(); len(r) != 0 {
		t.Errorf("stale claim still running: %v", r)
	}
	if err := reg.Remember("/a", 524288); err != nil {
		t.Fatal(err)
	}
	if err := reg.Remember("/b", 589824); err != nil {
		t.Fatal(err)
	}
	m, _ := reg.Trees()
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
	if m, err := reg.Trees(); err != nil || len(m) != 0 {
		t.Errorf("damaged registry: %v %v", m, err)
	}
}
