package dissect

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netspawn/netspawn/internal/testutil"
)

// TestDissectSfdisk reads a table written by util-linux's sfdisk (no root
// needed: it partitions a sparse file).
func TestDissectSfdisk(t *testing.T) {
	testutil.RequireTool(t, "sfdisk")
	p := filepath.Join(t.TempDir(), "disk.raw")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(64 << 20); err != nil {
		t.Fatal(err)
	}
	script := strings.Join([]string{
		"label: gpt",
		"size=8MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp",
		"size=24MiB, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name=root-x86-64, attrs=GUID:60",
		"type=933AC7E1-2EB4-4F13-B844-0E14E2AEF915, name=home",
	}, "\n") + "\n"
	cmd := exec.Command("sfdisk", "--no-reread", "--no-tell-kernel", "-q", p)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	es, ss, err := ReadGPT(f, 64<<20)
	if err != nil || ss != 512 || len(es) != 3 {
		t.Fatalf("ReadGPT: %v sector %d %+v", err, ss, es)
	}
	if es[1].Type != rootX86 || es[1].Offset != 9<<20 || es[1].Size != 24<<20 || es[1].Flags != FlagReadOnly || es[1].Label != "root-x86-64" {
		t.Fatalf("root entry %+v", es[1])
	}
	// File systems: ext4 and btrfs signatures at the partitions' starts.
	for _, w := range []struct {
		off int64
		fs  string
	}{{9 << 20, "ext4"}, {33 << 20, "btrfs"}} {
		for _, m := range magics {
			if m.fstype == w.fs {
				if _, err := f.WriteAt(m.sig, w.off+m.off); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	m, err := Dissect(f, 64<<20, Options{Arch: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	if r := m.Partitions[Root]; r == nil || r.ReadWrite || r.FSType != "ext4" {
		t.Fatalf("root %+v", r)
	}
	if h := m.Partitions[Home]; h == nil || !h.ReadWrite || h.FSType != "btrfs" {
		t.Fatalf("home %+v", h)
	}
	if m.Partitions[ESP] == nil {
		t.Fatal("no ESP")
	}
}
