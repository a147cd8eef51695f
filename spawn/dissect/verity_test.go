package dissect

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

var (
	rootVeritySigX86 = mustGUID("41092b05-9fc8-4523-994f-2def0408b176")
	usrVerityX86     = mustGUID("77ff5f63-e7b6-4633-acf4-1565b864c0e6")
)

// testHash is a root hash whose halves are easy to see.
const testHash = "00112233445566778899aabbccddeeff" + "0123456789abcdeffedcba9876543210"

func mustHash(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUUIDsOfRootHash(t *testing.T) {
	d, v, err := UUIDsOfRootHash(mustHash(t, testHash))
	if err != nil {
		t.Fatal(err)
	}
	// The specification: the data partition's UUID is the first 128 bits
	// as a UUID is written, the verity partition's the last.
	if d.String() != "00112233-4455-6677-8899-aabbccddeeff" || v.String() != "01234567-89ab-cdef-fedc-ba9876543210" {
		t.Fatalf("got %s %s", d, v)
	}
	// A longer hash (SHA-512): the first and the last 16 bytes.
	long := strings.Repeat("11", 16) + strings.Repeat("22", 32) + strings.Repeat("33", 16)
	d, v, err = UUIDsOfRootHash(mustHash(t, long))
	if err != nil || !strings.HasPrefix(d.String(), "11111111-") || !strings.HasPrefix(v.String(), "33333333-") {
		t.Fatalf("long hash: %s %s %v", d, v, err)
	}
	if _, _, err := UUIDsOfRootHash(mustHash(t, strings.Repeat("ab", 16))); err == nil {
		t.Fatal("128-bit hash accepted")
	}
	if _, _, err := UUIDsOfRootHash(mustHash(t, strings.Repeat("00", 16)+strings.Repeat("ab", 16))); err == nil {
		t.Fatal("zero first half accepted")
	}
}

func TestParseSigPartition(t *testing.T) {
	sig := base64.StdEncoding.EncodeToString([]byte("pkcs7"))
	good := []byte(`{"rootHash":"` + testHash + `","signature":"` + sig + `","certificateFingerprint":"x"}`)
	h, s, err := ParseSigPartition(append(append([]byte{}, good...), make([]byte, 100)...))
	if err != nil || hex.EncodeToString(h) != testHash || string(s) != "pkcs7" {
		t.Fatalf("got %x %q %v", h, s, err)
	}
	for name, buf := range map[string][]byte{
		"garbage after NUL": append(append(append([]byte{}, good...), 0), 'x'),
		"no JSON":           []byte("hello"),
		"no rootHash":       []byte(`{"signature":"` + sig + `"}`),
		"no signature":      []byte(`{"rootHash":"` + testHash + `"}`),
		"bad hash":          []byte(`{"rootHash":"zz","signature":"` + sig + `"}`),
		"bad base64":        []byte(`{"rootHash":"` + testHash + `","signature":"***"}`),
		"empty signature":   []byte(`{"rootHash":"` + testHash + `","signature":""}`),
	} {
		if _, _, err := ParseSigPartition(buf); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestAuxiliaryPath(t *testing.T) {
	if got := AuxiliaryPath("/v/m.raw", ".roothash"); got != "/v/m.roothash" {
		t.Error(got)
	}
	if got := AuxiliaryPath("/v/m.img", ".verity"); got != "/v/m.img.verity" {
		t.Error(got)
	}
}

func TestLoadVerity(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "m.raw")
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("m.raw", "")
	// Nothing: no verity.
	s, err := LoadVerity(VerityInput{Image: img})
	if err != nil || s.RootHash != nil || s.Sig != nil || s.DataPath != "" || s.Designator != Root {
		t.Fatalf("nothing: %+v %v", s, err)
	}
	// The files beside the image.
	write("m.roothash", testHash+"\n")
	write("m.roothash.p7s", "SIG")
	write("m.verity", "tree")
	s, err = LoadVerity(VerityInput{Image: img})
	if err != nil || hex.EncodeToString(s.RootHash) != testHash || string(s.Sig) != "SIG" ||
		s.DataPath != filepath.Join(dir, "m.verity") || s.Designator != Root || s.RootHashFrom != filepath.Join(dir, "m.roothash") {
		t.Fatalf("sidecars: %+v %v", s, err)
	}
	// The command line wins over the files.
	other := strings.Repeat("ab", 32)
	s, err = LoadVerity(VerityInput{Image: img, RootHash: other, RootHashSig: "base64:" + base64.StdEncoding.EncodeToString([]byte("CLI")), VerityData: "/x/tree"})
	if err != nil || hex.EncodeToString(s.RootHash) != other || string(s.Sig) != "CLI" || s.DataPath != "/x/tree" || s.RootHashFrom != "--root-hash=" {
		t.Fatalf("command line: %+v %v", s, err)
	}
	// --root-hash-sig= as a file.
	write("sig.p7s", "FILESIG")
	s, err = LoadVerity(VerityInput{Image: img, RootHash: other, RootHashSig: filepath.Join(dir, "sig.p7s")})
	if err != nil || string(s.Sig) != "FILESIG" {
		t.Fatalf("signature file: %+v %v", s, err)
	}
	for name, in := range map[string]VerityInput{
		"missing sig file": {Image: img, RootHash: other, RootHashSig: filepath.Join(dir, "nope")},
		"bad base64":       {Image: img, RootHash: other, RootHashSig: "base64:***"},
		"short hash":       {Image: img, RootHash: "abcd"},
	} {
		if _, err := LoadVerity(in); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A bad .roothash names the file.
	write("m.roothash", "nothex")
	if _, err := LoadVerity(VerityInput{Image: img}); err == nil || !strings.Contains(err.Error(), "m.roothash") {
		t.Errorf("bad .roothash: %v", err)
	}
	// .usrhash is for /usr, and its signature .usrhash.p7s.
	if err := os.Remove(filepath.Join(dir, "m.roothash")); err != nil {
		t.Fatal(err)
	}
	write("m.usrhash", testHash)
	write("m.usrhash.p7s", "USRSIG")
	s, err = LoadVerity(VerityInput{Image: img})
	if err != nil || s.Designator != Usr || string(s.Sig) != "USRSIG" {
		t.Fatalf("usrhash: %+v %v", s, err)
	}
	// An extended attribute wins over the file, where the file system
	// has them.
	if err := unix.Setxattr(img, "user.verity.roothash", []byte(other), 0); err == nil {
		s, err = LoadVerity(VerityInput{Image: img})
		if err != nil || hex.EncodeToString(s.RootHash) != other || s.Designator != Root {
			t.Fatalf("xattr: %+v %v", s, err)
		}
	} else if !errors.Is(err, unix.ENOTSUP) && !errors.Is(err, unix.EPERM) {
		t.Fatal(err)
	}
	// A device is looked at alone.
	s, err = LoadVerity(VerityInput{Image: "/dev/loop7"})
	if err != nil || s.RootHash != nil || s.DataPath != "" {
		t.Fatalf("device: %+v %v", s, err)
	}
}

// verityImage is a GPT image with a root partition and its verity
// partition whose UUIDs derive from testHash, plus decoys.
func verityImage(t *testing.T, extra ...testPart) memImage {
	t.Helper()
	d, v, err := UUIDsOfRootHash(mustHash(t, testHash))
	if err != nil {
		t.Fatal(err)
	}
	parts := []testPart{
		{typ: rootX86, mib: 1, fs: "ext4", label: "os_1", uuid: mustGUID("aaaaaaaa-0000-0000-0000-000000000001")},
		{typ: rootX86, mib: 1, fs: "ext4", label: "os_0", uuid: d}, // an older version: the hash picks it
		{typ: rootVerityX86, mib: 1, uuid: mustGUID("aaaaaaaa-0000-0000-0000-000000000002")},
		{typ: rootVerityX86, mib: 1, uuid: v},
	}
	return buildGPT(append(parts, extra...))
}

func TestDissectVerityGPT(t *testing.T) {
	img := verityImage(t)
	vs := &VeritySettings{Designator: Root, RootHash: mustHash(t, testHash), RootHashFrom: "--root-hash="}
	m, err := dissectMem(t, img, Options{Verity: vs, Policy: mustPolicy(t, "root=verity")})
	if err != nil {
		t.Fatal(err)
	}
	// The partitions the UUIDs name, not the newest label.
	if m.Partitions[Root].Number != 2 || m.Verity == nil || m.Verity.Hash.Number != 4 || m.Verity.Data != Root {
		t.Fatalf("root %d verity %+v", m.Partitions[Root].Number, m.Verity)
	}
	if m.Partitions[Root].ReadWrite {
		t.Error("a verity-protected root is read-write")
	}
	if m.Verity.RootHashHex() != testHash || m.Verity.Sig != nil {
		t.Errorf("hash %s sig %q", m.Verity.RootHashHex(), m.Verity.Sig)
	}
	// Unsigned: a policy requiring a signature refuses it.
	if _, err := dissectMem(t, img, Options{Verity: vs, Policy: mustPolicy(t, "root=signed")}); err == nil || !strings.Contains(err.Error(), "verity") {
		t.Errorf("root=signed with no signature: %v", err)
	}
	// A signature from the command line goes to the kernel, but for the
	// policy a GPT image is signed by its signature partition (systemd).
	signed := *vs
	signed.Sig, signed.SigFrom = []byte("sig"), "--root-hash-sig="
	if m, err := dissectMem(t, img, Options{Verity: &signed, Policy: mustPolicy(t, "root=verity")}); err != nil || string(m.Verity.Sig) != "sig" || m.Verity.Signed {
		t.Errorf("root=verity with a signature: %v", err)
	}
	if _, err := dissectMem(t, img, Options{Verity: &signed, Policy: mustPolicy(t, "root=signed")}); err == nil || !strings.Contains(err.Error(), "found verity but the policy requires signed") {
		t.Errorf("root=signed without a signature partition: %v", err)
	}
	// Without a root hash the newest root is used unprotected, and that
	// is said.
	m, err = dissectMem(t, img, Options{})
	if err != nil || m.Verity != nil || !m.VerityUnused || m.Partitions[Root].Number != 1 {
		t.Fatalf("no hash: %+v %v", m, err)
	}
	if _, err := dissectMem(t, img, Options{Policy: mustPolicy(t, "root=verity")}); err == nil {
		t.Fatal("verity required without a root hash: accepted")
	}
	// A hash no partition matches.
	wrong := &VeritySettings{Designator: Root, RootHash: mustHash(t, strings.Repeat("cd", 32)), RootHashFrom: "--root-hash="}
	if _, err := dissectMem(t, img, Options{Verity: wrong}); err == nil || !strings.Contains(err.Error(), "cdcdcdcd-cdcd-cdcd-cdcd-cdcdcdcdcdcd") {
		t.Errorf("unmatched hash: %v", err)
	}
	// A matching root without its verity partition.
	d, _, _ := UUIDsOfRootHash(mustHash(t, testHash))
	noVerity := buildGPT([]testPart{{typ: rootX86, mib: 1, fs: "ext4", uuid: d}})
	if _, err := dissectMem(t, noVerity, Options{Verity: vs}); err == nil || !strings.Contains(err.Error(), "root-verity partition whose UUID is 01234567-89ab-cdef-fedc-ba9876543210") {
		t.Errorf("no verity partition: %v", err)
	}
	// --verity-data= does not go with a partition table.
	ext := *vs
	ext.DataPath, ext.DataFrom = "/x", "--verity-data="
	if _, err := dissectMem(t, img, Options{Verity: &ext}); err == nil || !strings.Contains(err.Error(), "--verity-data=") {
		t.Errorf("--verity-data= with a GPT: %v", err)
	}
	// A separate /usr beside a verity root stays refused.
	img = buildGPT([]testPart{{typ: rootX86, mib: 1, fs: "ext4"}, {typ: rootVerityX86, mib: 1}, {typ: usrX86, mib: 1, fs: "ext4"}})
	if _, err := dissectMem(t, img, Options{}); err == nil {
		t.Fatal("verity root with a separate /usr: accepted")
	}
}

func TestDissectVeritySigPartition(t *testing.T) {
	sig := base64.StdEncoding.EncodeToString([]byte("pkcs7"))
	js := []byte(`{"rootHash":"` + testHash + `","signature":"` + sig + `"}`)
	img := verityImage(t, testPart{typ: rootVeritySigX86, mib: 1, data: js})
	// The root hash and the signature come from the partition: the
	// newest root (no UUID filter before the partition is read, as nspawn)
	// with the verity partition, signed.
	m, err := dissectMem(t, img, Options{Policy: mustPolicy(t, "root=signed")})
	if err != nil {
		t.Fatal(err)
	}
	if m.Verity == nil || m.Verity.RootHashHex() != testHash || string(m.Verity.Sig) != "pkcs7" || !strings.Contains(m.Verity.SigFrom, "root-verity-sig") {
		t.Fatalf("verity %+v", m.Verity)
	}
	// With --root-hash= the same hash: the UUIDs pick, the partition signs.
	vs := &VeritySettings{Designator: Root, RootHash: mustHash(t, testHash), RootHashFrom: "--root-hash="}
	m, err = dissectMem(t, img, Options{Verity: vs, Policy: mustPolicy(t, "root=signed")})
	if err != nil || m.Partitions[Root].Number != 2 || m.Verity.Hash.Number != 4 || string(m.Verity.Sig) != "pkcs7" {
		t.Fatalf("with --root-hash=: %+v %v", m, err)
	}
	// Another hash on the command line than in the partition.
	d, v, _ := UUIDsOfRootHash(mustHash(t, strings.Repeat("cd", 32)))
	img = buildGPT([]testPart{{typ: rootX86, mib: 1, fs: "ext4", uuid: d}, {typ: rootVerityX86, mib: 1, uuid: v}, {typ: rootVeritySigX86, mib: 1, data: js}})
	vs = &VeritySettings{Designator: Root, RootHash: mustHash(t, strings.Repeat("cd", 32)), RootHashFrom: "--root-hash="}
	if _, err := dissectMem(t, img, Options{Verity: vs}); err == nil || !strings.Contains(err.Error(), "is not the one from --root-hash=") {
		t.Errorf("differing hashes: %v", err)
	}
	// A broken signature partition names itself.
	img = verityImage(t, testPart{typ: rootVeritySigX86, mib: 1, data: []byte("nope")})
	if _, err := dissectMem(t, img, Options{}); err == nil || !strings.Contains(err.Error(), "root-verity-sig") {
		t.Errorf("broken signature partition: %v", err)
	}
}

func TestDissectVerityBare(t *testing.T) {
	img := make(memImage, 1<<20)
	writeFSMagic(img, 0, "ext4")
	vs := &VeritySettings{Designator: Root, RootHash: mustHash(t, testHash), RootHashFrom: "--root-hash=", DataPath: "/i.verity", DataFrom: "/i.verity"}
	m, err := dissectMem(t, img, Options{Verity: vs, Policy: mustPolicy(t, "root=verity")})
	if err != nil || m.Verity == nil || m.Verity.DataPath != "/i.verity" || m.Verity.Hash != nil || m.Partitions[Root].ReadWrite {
		t.Fatalf("bare with a hash tree: %+v %v", m, err)
	}
	signed := *vs
	signed.Sig = []byte("sig")
	if m, err := dissectMem(t, img, Options{Verity: &signed, Policy: mustPolicy(t, "root=signed")}); err != nil || !m.Verity.Signed {
		t.Fatalf("bare, signed: %v", err)
	}
	if _, err := dissectMem(t, img, Options{Verity: vs, Policy: mustPolicy(t, "root=signed")}); err == nil {
		t.Fatal("bare, unsigned, root=signed: accepted")
	}
	noTree := *vs
	noTree.DataPath, noTree.DataFrom = "", ""
	if _, err := dissectMem(t, img, Options{Verity: &noTree}); err == nil || !strings.Contains(err.Error(), "--verity-data=") {
		t.Errorf("bare without a hash tree: %v", err)
	}
	treeOnly := &VeritySettings{Designator: Root, DataPath: "/x", DataFrom: "--verity-data="}
	if _, err := dissectMem(t, img, Options{Verity: treeOnly}); err == nil || !strings.Contains(err.Error(), "root hash") {
		t.Errorf("--verity-data= without a root hash: %v", err)
	}
	// A hash tree beside the image without a root hash: no verity.
	treeOnly.DataFrom = "/i.verity"
	if m, err := dissectMem(t, img, Options{Verity: treeOnly}); err != nil || m.Verity != nil {
		t.Errorf("sidecar tree alone: %v", err)
	}
}

func TestVerityUsr(t *testing.T) {
	d, v, _ := UUIDsOfRootHash(mustHash(t, testHash))
	img := buildGPT([]testPart{{typ: rootX86, mib: 1, fs: "ext4"}, {typ: usrX86, mib: 1, fs: "ext4", uuid: d}, {typ: usrVerityX86, mib: 1, uuid: v}})
	vs := &VeritySettings{Designator: Usr, RootHash: mustHash(t, testHash), RootHashFrom: "/i.usrhash"}
	m, err := dissectMem(t, img, Options{Verity: vs, Policy: mustPolicy(t, "usr=verity:root=unprotected")})
	if err != nil || m.Verity == nil || m.Verity.Data != Usr || m.Verity.Hash.Number != 3 || !bytes.Equal(m.Verity.RootHash, vs.RootHash) {
		t.Fatalf("usr: %+v %v", m, err)
	}
	if !m.Partitions[Root].ReadWrite || m.Partitions[Usr].ReadWrite {
		t.Error("only /usr is read-only")
	}
}
