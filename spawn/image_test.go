package spawn

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/netspawn/netspawn/spawn/dissect"
)

func TestImagePlacements(t *testing.T) {
	root, usr, home, vr := dissect.Root, dissect.Usr, dissect.Home, dissect.Var
	for _, c := range []struct {
		name       string
		ds         []dissect.Designator
		root, vyes bool
		want       []imagePlacement
	}{
		{"plain", []dissect.Designator{root, home}, true, false,
			[]imagePlacement{{0, "/", ""}, {1, "/home", ""}}},
		{"overlay for the root", []dissect.Designator{root, usr, home}, false, false,
			[]imagePlacement{{1, "/usr", ""}, {2, "/home", ""}}},
		{"volatile=yes: the root's usr", []dissect.Designator{root, home, vr}, false, true,
			[]imagePlacement{{0, "/usr", "usr"}, {1, "/home", ""}, {2, "/var", ""}}},
		{"volatile=yes: the usr partition", []dissect.Designator{root, usr, home}, false, true,
			[]imagePlacement{{1, "/usr", ""}, {2, "/home", ""}}},
		{"volatile=yes: root only", []dissect.Designator{root}, false, true,
			[]imagePlacement{{0, "/usr", "usr"}}},
		{"no root partition", []dissect.Designator{usr, home}, true, false,
			[]imagePlacement{{0, "/usr", ""}, {1, "/home", ""}}},
		{"no root partition, volatile=yes", []dissect.Designator{usr, vr}, false, true,
			[]imagePlacement{{0, "/usr", ""}, {1, "/var", ""}}},
	} {
		if got := imagePlacements(c.ds, c.root, c.vyes); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestCheckVolatileYesTree(t *testing.T) {
	mk := func(bin string) string {
		d := t.TempDir()
		if err := os.Mkdir(filepath.Join(d, "usr"), 0o755); err != nil {
			t.Fatal(err)
		}
		switch bin {
		case "link":
			err := os.Symlink("usr/bin", filepath.Join(d, "bin"))
			if err != nil {
				t.Fatal(err)
			}
		case "dir":
			if err := os.Mkdir(filepath.Join(d, "bin"), 0o755); err != nil {
				t.Fatal(err)
			}
		case "file":
			if err := os.WriteFile(filepath.Join(d, "bin"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	for _, c := range []struct{ bin, err string }{
		{"link", ""},
		{"", ""},
		{"dir", "merged /usr"},
		{"file", "neither a directory nor a link"},
	} {
		err := checkVolatileYesTree(mk(c.bin), true)
		if (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("/bin %q: %v, want %q", c.bin, err, c.err)
		}
	}
	// An image's /usr, when it has no /usr partition, is a directory.
	d := t.TempDir()
	if err := os.Symlink("/elsewhere", filepath.Join(d, "usr")); err != nil {
		t.Fatal(err)
	}
	if err := checkVolatileYesTree(d, false); err != nil {
		t.Errorf("/usr partition: %v", err)
	}
	if err := checkVolatileYesTree(d, true); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("/usr a link: %v", err)
	}
}
