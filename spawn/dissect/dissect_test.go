package dissect

import (
	"errors"
	"strings"
	"testing"
)

var (
	rootX86       = mustGUID("4f68bce3-e8cd-4db1-96e7-fbcaf984b709")
	usrX86        = mustGUID("8484680c-9521-48c6-9c11-b0720656f69e")
	rootVerityX86 = mustGUID("2c7357ed-ebd2-46d9-aec1-23d437ec2bf5")
)

func dissectMem(t *testing.T, img memImage, opt Options) (*Image, error) {
	t.Helper()
	if opt.Arch == "" {
		opt.Arch = "amd64"
	}
	return Dissect(img, int64(len(img)), opt)
}

func TestGUIDRoundTrip(t *testing.T) {
	s := "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
	g, err := ParseGUID(s)
	if err != nil || g.String() != s {
		t.Fatalf("ParseGUID(%s) = %v, %v", s, g, err)
	}
	// On disk the first field is little-endian.
	if g[0] != 0xe3 || g[3] != 0x4f || g[8] != 0x96 {
		t.Fatalf("byte order: % x", g[:])
	}
	for _, bad := range []string{"", "4f68bce3e8cd4db196e7fbcaf984b709", "4f68bce3-e8cd-4db1-96e7-fbcaf984b70g", "4f68bce3-e8cd-4db1-96e7fbcaf984b7099"} {
		if _, err := ParseGUID(bad); err == nil {
			t.Errorf("ParseGUID(%q) accepted", bad)
		}
	}
}

func TestDissectGPT(t *testing.T) {
	img := buildGPT([]testPart{
		{typ: TypeESP, mib: 1, fs: "vfat"},
		{typ: rootX86, mib: 2, label: "root", fs: "ext4"},
		{typ: usrX86, mib: 2, flags: FlagReadOnly, fs: "squashfs"},
		{typ: TypeHome, mib: 1, fs: "btrfs"},
		{typ: TypeSrv, mib: 1, flags: FlagNoAuto, fs: "ext4"},
		{typ: TypeSwap, mib: 1, fs: "swap"},
	})
	m, err := dissectMem(t, img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !m.GPT || m.SectorSize != 512 {
		t.Fatalf("GPT %v sector %d", m.GPT, m.SectorSize)
	}
	r := m.Partitions[Root]
	if r == nil || r.Number != 2 || r.Offset != 2<<20 || r.Size != 2<<20 || r.FSType != "ext4" || !r.ReadWrite || r.Label != "root" {
		t.Fatalf("root: %+v", r)
	}
	if u := m.Partitions[Usr]; u == nil || u.FSType != "squashfs" || u.ReadWrite {
		t.Fatalf("usr: %+v", u)
	}
	if h := m.Partitions[Home]; h == nil || h.FSType != "btrfs" || h.Offset != 6<<20 {
		t.Fatalf("home: %+v", h)
	}
	if m.Partitions[Srv] != nil {
		t.Fatal("srv marked no-auto was used")
	}
	if m.Partitions[Swap] != nil {
		t.Fatal("swap used under the container policy")
	}
	var got []string
	for _, p := range m.Mounts() {
		got = append(got, MountPoint(p.Designator))
	}
	if strings.Join(got, " ") != "/ /usr /home" {
		t.Fatalf("mounts %v", got)
	}
	if strings.Join(designatorStrings(m.Ignored), ",") != "swap" {
		t.Fatalf("ignored %v", m.Ignored)
	}
}

func designatorStrings(ds []Designator) []string {
	var s []string
	for _, d := range ds {
		s = append(s, d.String())
	}
	return s
}

func TestDissectArch(t *testing.T) {
	img := buildGPT([]testPart{{typ: rootX86, mib: 1, fs: "ext4"}})
	if _, err := dissectMem(t, img, Options{Arch: "arm64"}); !errors.Is(err, ErrNoRoot) {
		t.Fatalf("x86-64 root on arm64: %v", err)
	}
}

func TestDissectNewestRoot(t *testing.T) {
	img := buildGPT([]testPart{
		{typ: rootX86, mib: 1, label: "os_1.9", fs: "ext4"},
		{typ: rootX86, mib: 1, label: "os_1.10", fs: "ext4"},
		{typ: rootX86, mib: 1, label: "os_1.2", fs: "ext4"},
	})
	m, err := dissectMem(t, img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Partitions[Root].Label != "os_1.10" {
		t.Fatalf("root %q", m.Partitions[Root].Label)
	}
}

func TestDissectGeneric(t *testing.T) {
	m, err := dissectMem(t, buildGPT([]testPart{{typ: TypeLinuxGeneric, mib: 1, fs: "ext4"}}), Options{})
	if err != nil || m.Partitions[Root] == nil || m.Partitions[Root].Number != 1 {
		t.Fatalf("single generic partition: %v %+v", err, m)
	}
	_, err = dissectMem(t, buildGPT([]testPart{{typ: TypeLinuxGeneric, mib: 1, fs: "ext4"}, {typ: TypeLinuxGeneric, mib: 1, fs: "ext4"}}), Options{})
	if !errors.Is(err, ErrNoRoot) || !strings.Contains(err.Error(), "2 generic") {
		t.Fatalf("two generic partitions: %v", err)
	}
}

func TestDissectErrors(t *testing.T) {
	_, err := dissectMem(t, buildGPT([]testPart{{typ: TypeHome, mib: 1, fs: "ext4"}}), Options{})
	if !errors.Is(err, ErrNoRoot) || !strings.Contains(err.Error(), "4f68bce3-e8cd-4db1-96e7-fbcaf984b709") {
		t.Fatalf("no root: %v", err)
	}
	_, err = dissectMem(t, make(memImage, 1<<20), Options{})
	if !errors.Is(err, ErrNotAnImage) {
		t.Fatalf("zeros: %v", err)
	}
	_, err = dissectMem(t, buildGPT([]testPart{{typ: rootX86, mib: 1}}), Options{})
	if err == nil || !strings.Contains(err.Error(), "no file system") {
		t.Fatalf("empty root: %v", err)
	}
	img := buildGPT([]testPart{{typ: rootX86, mib: 1, fs: "ext4"}})
	img[2*512+40]++ // an entry changed: its CRC no longer matches
	if _, err = dissectMem(t, img, Options{}); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("bad CRC: %v", err)
	}
	_, err = dissectMem(t, buildGPT([]testPart{{typ: rootX86, mib: 1, fs: "crypto_LUKS"}}), Options{Policy: mustPolicy(t, "root=unprotected")})
	if err == nil || !strings.Contains(err.Error(), "found encrypted") {
		t.Fatalf("LUKS root under root=unprotected: %v", err)
	}
}

func TestDissectUsrOnly(t *testing.T) {
	m, err := dissectMem(t, buildGPT([]testPart{{typ: usrX86, mib: 1, fs: "ext4"}, {typ: TypeHome, mib: 1, fs: "ext4"}}), Options{Arch: "amd64"})
	if err != nil {
		t.Fatalf("/usr without root: %v", err)
	}
	if m.HasRoot() || m.Partitions[Usr] == nil {
		t.Fatalf("partitions %v", m.Partitions)
	}
	if got := designatorStrings(designatorsOf(m.Mounts())); strings.Join(got, " ") != "usr home" {
		t.Fatalf("mounts %v", got)
	}
	// A /usr partition for another architecture is none.
	if _, err := dissectMem(t, buildGPT([]testPart{{typ: usrX86, mib: 1, fs: "ext4"}}), Options{Arch: "arm64"}); !errors.Is(err, ErrNoRoot) {
		t.Fatalf("x86-64 /usr on arm64: %v", err)
	}
	// The policy may still ask for a root.
	if _, err := dissectMem(t, buildGPT([]testPart{{typ: usrX86, mib: 1, fs: "ext4"}}), Options{Arch: "amd64", Policy: mustPolicy(t, "root=unprotected:usr=unprotected")}); err == nil || !strings.Contains(err.Error(), "partition root is missing") {
		t.Fatalf("usr-only under root=unprotected: %v", err)
	}
}

func designatorsOf(ps []*Partition) []Designator {
	var out []Designator
	for _, p := range ps {
		out = append(out, p.Designator)
	}
	return out
}

func TestDissectBare(t *testing.T) {
	img := make(memImage, 1<<20)
	writeFSMagic(img, 0, "ext4")
	m, err := dissectMem(t, img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r := m.Partitions[Root]; m.GPT || r == nil || r.Offset != 0 || r.Size != 1<<20 || r.FSType != "ext4" || !r.ReadWrite || r.Number != 0 {
		t.Fatalf("bare: %+v %+v", m, r)
	}
	sq := make(memImage, 1<<20)
	writeFSMagic(sq, 0, "squashfs")
	if m, err := dissectMem(t, sq, Options{}); err != nil || m.Partitions[Root].ReadWrite {
		t.Fatalf("squashfs is read-only: %v %+v", err, m)
	}
	_, err = dissectMem(t, img, Options{Policy: mustPolicy(t, "root=verity")})
	var pe *PolicyError
	if !errors.As(err, &pe) || pe.Designator != Root || !strings.Contains(err.Error(), `"root=verity"`) {
		t.Fatalf("bare under root=verity: %v", err)
	}
}

func TestDissectPolicy(t *testing.T) {
	img := buildGPT([]testPart{
		{typ: rootX86, mib: 1, fs: "ext4"},
		{typ: TypeHome, mib: 1, fs: "ext4"},
		{typ: TypeSrv, mib: 1, flags: FlagReadOnly, fs: "ext4"},
	})
	for _, c := range []struct {
		policy, err string
		home, srv   bool
	}{
		{"*", "", true, true},
		{"root=unprotected:home=unused:srv=unprotected", "", false, true},
		{"root=unprotected:=ignore", "", false, false},
		{"root=unprotected:home=absent", "partition home exists, but the policy says it must be absent", false, false},
		{"root=signed+verity", "partition root was found unprotected but the policy requires verity+signed", false, false},
		{"root=unprotected:srv=read-only-off", "partition srv has the read-only flag on", false, false},
		{"root=unprotected+growfs-on", "partition root has the growfs flag off", false, false},
		{"root=unprotected:usr=unprotected", "partition usr is missing", false, false},
		{"~", "partition root exists, but the policy says it must be absent", false, false},
		{"-", "leaves the root partition unused", false, false},
		{"root=ignore", "leaves the root partition unused", false, false},
	} {
		m, err := dissectMem(t, img, Options{Policy: mustPolicy(t, c.policy)})
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: got %v, want %q", c.policy, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.policy, err)
			continue
		}
		if (m.Partitions[Home] != nil) != c.home || (m.Partitions[Srv] != nil) != c.srv {
			t.Errorf("%s: home %v srv %v", c.policy, m.Partitions[Home] != nil, m.Partitions[Srv] != nil)
		}
	}
}

func TestVersionCompare(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{{"1.10", "1.9", 1}, {"a", "a", 0}, {"a1", "a01", 0}, {"", "x", -1}, {"os_2", "os_10", -1}, {"b", "a9", 1}} {
		if got := versionCompare(c.a, c.b); got != c.want {
			t.Errorf("versionCompare(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
