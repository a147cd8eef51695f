package cgroup

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
)

func TestUnitEscape(t *testing.T) {
	for in, want := range map[string]string{
		"web": "web", "web-1": `web\x2d1`, "a.b": "a.b", ".a": `\x2ea`, "x/y": "x-y", "a b": `a\x20b`, "a_b:c": "a_b:c",
	} {
		if got := UnitEscape(in); got != want {
			t.Errorf("UnitEscape(%q) = %q, want %q", in, got, want)
		}
	}
	if got := PayloadPath("web-1"); got != `machine.slice/machine-web\x2d1.scope/payload` {
		t.Errorf("PayloadPath: %q", got)
	}
}

func TestParseProcCgroup(t *testing.T) {
	pc := ParseProcCgroup(strings.NewReader("4:memory:/a/b\n2:cpu,cpuacct:/\n1:name=systemd:/s\n0::/machine.slice\n"))
	want := Procs{"memory": "/a/b", "cpu": "/", "cpuacct": "/", "name=systemd": "/s", "": "/machine.slice"}
	if !reflect.DeepEqual(pc, want) {
		t.Errorf("got %v, want %v", pc, want)
	}
}

// A hybrid host's mounts, with a mount point holding an escaped space (the
// hand-written parsers this replaced read "\040" literally).
var hybrid = []*mountinfo.Info{
	{Mountpoint: "/sys/fs/cgroup", FSType: "tmpfs", VFSOptions: "rw,mode=755"},
	{Mountpoint: "/sys/fs/cgroup/memory", FSType: "cgroup", VFSOptions: "rw,memory"},
	{Mountpoint: "/sys/fs/cgroup/cpu,cpuacct", FSType: "cgroup", VFSOptions: "rw,cpu,cpuacct"},
	{Mountpoint: "/sys/fs/cgroup/pids", FSType: "cgroup", VFSOptions: "rw,pids"},
	{Mountpoint: "/sys/fs/cgroup/unified", FSType: "cgroup2", VFSOptions: "rw"},
	{Mountpoint: "/mnt/with space/cg2", FSType: "cgroup2", VFSOptions: "rw"},
}

func TestMountsFrom(t *testing.T) {
	m := mountsFrom(hybrid)
	want := Mounts{"memory": "/sys/fs/cgroup/memory", "cpu": "/sys/fs/cgroup/cpu,cpuacct", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
		"pids": "/sys/fs/cgroup/pids", "": "/sys/fs/cgroup/unified"}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("got %v, want %v", m, want)
	}
	// The escape is mountinfo's to undo: the library gives the real path.
	infos, err := mountinfo.GetMountsFromReader(strings.NewReader(
		`40 25 0:30 / /mnt/with\040space rw,relatime - cgroup2 cgroup2 rw`+"\n"), nil)
	if err != nil || len(infos) != 1 || mountsFrom(infos)[""] != "/mnt/with space" {
		t.Errorf("escaped mount point: %v %v", infos, err)
	}
}

func TestScopeDirs(t *testing.T) {
	mounts := mountsFrom(hybrid)
	procs := ParseProcCgroup(strings.NewReader("4:memory:/a/machine.slice/machine-web.scope\n3:pids:/\n0::/machine.slice/machine-web.scope/payload/init.scope\n"))
	got := scopeDirs(procs, mounts, "machine-web.scope")
	want := []string{"/sys/fs/cgroup/unified/machine.slice/machine-web.scope", "/sys/fs/cgroup/memory/a/machine.slice/machine-web.scope"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got := scopeDirs(ParseProcCgroup(strings.NewReader("0::/machine.slice/machine-webx.scope\n")), mounts, "machine-web.scope"); len(got) != 0 {
		t.Fatalf("matched another machine's scope: %v", got)
	}
}

func TestSlicePaths(t *testing.T) {
	for slice, want := range map[string]string{
		"machine.slice": "machine.slice", "a-b-c.slice": "a.slice/a-b.slice/a-b-c.slice", "-.slice": "", "": "",
	} {
		if got := SlicePath(slice); got != want {
			t.Errorf("SlicePath(%q) = %q, want %q", slice, got, want)
		}
	}
	if got := ScopePathIn("", "web-1"); got != `machine.slice/machine-web\x2d1.scope` {
		t.Errorf("default slice: %q", got)
	}
	if got := ScopePathIn("tenant-a.slice", "web"); got != "tenant.slice/tenant-a.slice/machine-web.scope" {
		t.Errorf("nested slice: %q", got)
	}
	if got := ScopePathIn("-.slice", "web"); got != "machine-web.scope" {
		t.Errorf("root slice: %q", got)
	}
}

func TestPopulatedInSlices(t *testing.T) {
	root := t.TempDir()
	put := func(rel, events string) {
		d := filepath.Join(root, rel)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "cgroup.events"), []byte(events), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	put("machine.slice/machine-web.scope", "populated 1\nfrozen 0\n")
	put("machine.slice/machine-idle.scope", "populated 0\nfrozen 0\n")
	put("cr.slice/cr-t1.slice/machine-deep.scope", "populated 1\nfrozen 0\n")
	put("system.slice/machine-nope.scope", "populated 0\n")
	put("user.slice/not-a-slice/machine-hidden.scope", "populated 1\n")
	for name, want := range map[string]bool{"web": true, "idle": false, "deep": true, "nope": false, "hidden": false, "absent": false} {
		if got := populatedIn(root, name); got != want {
			t.Errorf("populatedIn(%q) = %v, want %v", name, got, want)
		}
	}
}
