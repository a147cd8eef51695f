//go:build hostlane

package hosts

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/netspawn/netspawn/internal/testutil"
	"github.com/netspawn/netspawn/spawn/dissect"
)

// verityDevices are the device-mapper devices netspawn made for dm-verity
// that exist now: by the kernel's name (sysfs) and by node in /dev/mapper.
func verityDevices(t *testing.T) []string {
	t.Helper()
	var out []string
	names, _ := filepath.Glob("/sys/block/dm-*/dm/name")
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err == nil && strings.HasPrefix(strings.TrimSpace(string(b)), "netspawn-verity-") {
			out = append(out, strings.TrimSpace(string(b))+" ("+n+")")
		}
	}
	nodes, _ := filepath.Glob("/dev/mapper/netspawn-*")
	return append(out, nodes...)
}

// waitNoVerityDevices waits until no netspawn verity device is left.
func waitNoVerityDevices(t *testing.T, when string) {
	t.Helper()
	if !testutil.Eventually(30*time.Second, func() bool { return len(verityDevices(t)) == 0 }) {
		t.Errorf("%s: verity devices left: %v\n%s", when, verityDevices(t), run(t, "dmsetup", "ls").out)
	}
}

// copyInto writes the file src into dst at off.
func copyInto(t *testing.T, dst *os.File, src string, off int64) {
	t.Helper()
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(io.NewOffsetWriter(dst, off), f); err != nil {
		t.Fatal(err)
	}
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// verityImages makes, from a busybox tree with a marker file, an ext4
// file system, its hash tree (veritysetup format), and a GPT image with
// them as the root and root-verity partitions whose UUIDs are the root
// hash's first and last 128 bits, as the Discoverable Partitions
// Specification has it. It returns the GPT image, the file system, the
// hash tree and the root hash.
func verityImages(t *testing.T, dir, marker string) (img, data, hash, rootHash string) {
	t.Helper()
	tr := tree(t, "ver-tree")
	if err := os.WriteFile(filepath.Join(tr, "etc/verity-marker"), []byte(marker+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	data, hash = filepath.Join(dir, "data.ext4"), filepath.Join(dir, "data.hash")
	const dataMiB = 32
	must(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-E", "root_owner=0:0", "-d", tr, data, fmt.Sprintf("%dM", dataMiB))
	out := must(t, "veritysetup", "format", data, hash)
	m := regexp.MustCompile(`(?m)^Root hash:\s+([0-9a-f]+)\s*$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no root hash in veritysetup format's output:\n%s", out)
	}
	rootHash = m[1]
	h, err := hex.DecodeString(rootHash)
	if err != nil {
		t.Fatal(err)
	}
	dataUUID, verityUUID, err := dissect.UUIDsOfRootHash(h)
	if err != nil {
		t.Fatal(err)
	}
	rootType, ok := dissect.RootType("amd64")
	if !ok {
		t.Fatal("no root type for amd64")
	}
	const verityType = "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5" // root-verity, x86-64
	hashMiB := (fileSize(t, hash) + 1<<20 - 1) >> 20
	img = filepath.Join(dir, "verity.raw")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate((1 + dataMiB + hashMiB + 1) << 20); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("label: gpt\nstart=2048, size=%d, type=%s, uuid=%s, name=root-x86-64\nsize=%d, type=%s, uuid=%s, name=root-x86-64-verity\n",
		dataMiB<<11, rootType, dataUUID, hashMiB<<11, verityType, verityUUID)
	if r := runIn(t, script, "sfdisk", "--no-reread", "--no-tell-kernel", "-q", img); r.code != 0 {
		t.Fatalf("sfdisk: %s %s", r.out, r.err)
	}
	copyInto(t, f, data, 1<<20)
	copyInto(t, f, hash, (1+dataMiB)<<20)
	return img, data, hash, rootHash
}

// TestDiskImageVerity: a GPT image with a root and a root-verity partition
// runs through dm-verity (the image policy root=verity passes), with the
// root hash from --root-hash= or IMAGE.roothash; a bare file system with
// IMAGE.verity beside it too; a corrupted block is refused naming
// dm-verity and the image; no verity device outlives netspawn, also after
// kill -9.
func TestDiskImageVerity(t *testing.T) {
	dir := t.TempDir()
	img, data, hash, rootHash := verityImages(t, dir, "verity-ok")
	t.Logf("root hash %s", rootHash)

	// --root-hash= picks the partitions by their UUIDs.
	r := run(t, "netspawn", "-q", "-M", "ver-gpt", "-i", img, "--image-policy=root=verity", "--root-hash="+rootHash, "cat", "/etc/verity-marker")
	if r.code != 0 || r.out != "verity-ok" {
		t.Fatalf("--root-hash=: exit %d %q %s", r.code, r.out, r.err)
	}
	waitNoVerityDevices(t, "after the run with --root-hash=")

	// The root is read-only: dm-verity has no writes.
	r = run(t, "netspawn", "-q", "-M", "ver-gpt", "-i", img, "--root-hash="+rootHash, "sh", "-c", "touch /x 2>&1; grep ' / ' /proc/self/mounts")
	if r.code != 0 || !strings.Contains(r.out, "Read-only file system") || !strings.Contains(r.out, " ro") {
		t.Errorf("read-only root: exit %d %q %s", r.code, r.out, r.err)
	}

	// Without a root hash the policy root=verity refuses the image.
	r = run(t, "netspawn", "-q", "-M", "ver-gpt", "-i", img, "--image-policy=root=verity", "true")
	if r.code == 0 || !strings.Contains(r.err, "found unprotected but the policy requires verity") {
		t.Errorf("root=verity without a root hash: exit %d %s", r.code, r.err)
	}

	// IMAGE.roothash beside the image.
	if err := os.WriteFile(strings.TrimSuffix(img, ".raw")+".roothash", []byte(rootHash+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = run(t, "netspawn", "-q", "-M", "ver-gpt", "-i", img, "--image-policy=root=verity", "cat", "/etc/verity-marker")
	if r.code != 0 || r.out != "verity-ok" {
		t.Errorf("IMAGE.roothash: exit %d %q %s", r.code, r.out, r.err)
	}

	// A signature the kernel cannot check is refused, naming it.
	r = run(t, "netspawn", "-q", "-M", "ver-gpt", "-i", img, "--root-hash="+rootHash,
		"--root-hash-sig=base64:"+base64.StdEncoding.EncodeToString([]byte("not a PKCS#7 signature")), "true")
	if r.code == 0 || !strings.Contains(r.err, "dm-verity refused the root partition") || !strings.Contains(r.err, "root hash signature from --root-hash-sig=, which the kernel checks") {
		t.Errorf("bogus signature: exit %d %s", r.code, r.err)
	} else {
		t.Logf("bogus signature: %s", r.err)
	}
	waitNoVerityDevices(t, "after the refused signature")

	// A bare file system with IMAGE.verity and IMAGE.roothash beside it.
	bare := filepath.Join(dir, "bare.raw")
	for _, c := range [][2]string{{data, bare}, {hash, filepath.Join(dir, "bare.verity")}} {
		must(t, "cp", c[0], c[1])
	}
	if err := os.WriteFile(filepath.Join(dir, "bare.roothash"), []byte(rootHash), 0o644); err != nil {
		t.Fatal(err)
	}
	r = run(t, "netspawn", "-q", "-M", "ver-bare", "-i", bare, "--image-policy=root=verity", "cat", "/etc/verity-marker")
	if r.code != 0 || r.out != "verity-ok" {
		t.Errorf("bare image with IMAGE.verity: exit %d %q %s", r.code, r.out, r.err)
	}

	// A corrupted block (the ext4 group descriptors, block 1, which the
	// mount reads; the superblock stays, so the image is still recognised).
	bad := filepath.Join(dir, "bad.raw")
	must(t, "cp", img, bad)
	f, err := os.OpenFile(bad, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte("X"), 4096), 1<<20+4096); err != nil {
		t.Fatal(err)
	}
	f.Close()
	r = run(t, "netspawn", "-q", "-M", "ver-bad", "-i", bad, "--root-hash="+rootHash, "cat", "/etc/verity-marker")
	if r.code == 0 || !strings.Contains(r.err, "dm-verity") || !strings.Contains(r.err, "does not match the root hash") || !strings.Contains(r.err, bad) {
		t.Errorf("corrupted image: exit %d %q %s", r.code, r.out, r.err)
	} else {
		t.Logf("corrupted image: %s", r.err)
	}
	waitNoVerityDevices(t, "after the corrupted image")

	// kill -9 of netspawn: the device goes once the container's mounts do.
	m := start(t, "ver-k9", "-i", img, "--root-hash="+rootHash, "sleep", "1000")
	if devs := verityDevices(t); len(devs) == 0 {
		t.Errorf("no verity device while the machine runs")
	} else {
		t.Logf("while running: %v", devs)
	}
	if err := m.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-m.done
	waitNoVerityDevices(t, "after kill -9")
}
