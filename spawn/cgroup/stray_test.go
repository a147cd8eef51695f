package cgroup

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestIsScopeUnit(t *testing.T) {
	for name, want := range map[string]bool{
		"machine-web.scope": true, `machine-img\x2dkill.scope`: true, "machine-.scope": false,
		"machine.slice": false, "init.scope": false, "machine-web.service": false, "payload": false,
	} {
		if got := IsScopeUnit(name); got != want {
			t.Errorf("IsScopeUnit(%q) = %v, want %v", name, got, want)
		}
	}
}

// mkdirs makes directories (relative to root) and cgroup.procs files in
// them: "dir=123" puts PID 123 in dir.
func mkdirs(t *testing.T, root string, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		d, procs, _ := strings.Cut(d, "=")
		p := filepath.Join(root, d)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p, "cgroup.procs"), []byte(procs+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFindStrays(t *testing.T) {
	v2, mem, pids := t.TempDir(), t.TempDir(), t.TempDir()
	mkdirs(t, v2,
		"machine.slice/machine-web.scope/payload",
		`machine.slice/machine-img\x2dkill.scope`,
		"tenant.slice/tenant-a.slice/machine-deep.scope",
		"machine-root.scope",                                             // -S -.slice
		"system.slice/docker.service/machine.slice/machine-inside.scope", // not a slice on the way
		"machine.slice/machine-web.scope/payload/machine.slice/machine-nested.scope",
		"machine.slice/machine-file.scope.txt",
	)
	if err := os.WriteFile(filepath.Join(v2, "machine.slice", "machine-notadir.scope"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// v1 copies below the cgroup each netspawn ran in; one in another
	// slice, one of another name, one inside another machine's scope.
	mkdirs(t, mem,
		"process_api/abc/machine.slice/machine-web.scope",
		"machine.slice/machine-web.scope",
		"tenant.slice/tenant-a.slice/machine-deep.scope",
		"other.slice/machine-web.scope",
		"machine.slice/machine-webx.scope",
		"machine.slice/machine-x.scope/payload/machine.slice/machine-web.scope",
	)
	mkdirs(t, pids, "a/b/machine.slice/machine-web.scope")

	got := findStrays(v2, []string{mem, pids}, nil)
	want := []Scope{
		{Unit: "machine-root.scope", Rel: "machine-root.scope", V2: filepath.Join(v2, "machine-root.scope")},
		{Unit: `machine-img\x2dkill.scope`, Rel: `machine.slice/machine-img\x2dkill.scope`, V2: filepath.Join(v2, `machine.slice/machine-img\x2dkill.scope`)},
		{Unit: "machine-web.scope", Rel: "machine.slice/machine-web.scope", V2: filepath.Join(v2, "machine.slice/machine-web.scope"),
			V1: []string{filepath.Join(mem, "machine.slice/machine-web.scope"), filepath.Join(mem, "process_api/abc/machine.slice/machine-web.scope"),
				filepath.Join(pids, "a/b/machine.slice/machine-web.scope")}},
		{Unit: "machine-deep.scope", Rel: "tenant.slice/tenant-a.slice/machine-deep.scope", V2: filepath.Join(v2, "tenant.slice/tenant-a.slice/machine-deep.scope"),
			V1: []string{filepath.Join(mem, "tenant.slice/tenant-a.slice/machine-deep.scope")}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", got, want)
	}
	if got := findStrays(filepath.Join(v2, "absent"), []string{mem}, nil); got != nil {
		t.Fatalf("no v2 hierarchy: %v", got)
	}
	// The scopes of machines netspawnd knows are not strays.
	known := map[string]bool{ScopeUnit("web"): true, ScopeUnit("img-kill"): true, ScopeUnit("root"): true}
	if got := findStrays(v2, []string{mem, pids}, known); !reflect.DeepEqual(got, want[3:]) {
		t.Fatalf("with %v known: got %+v", known, got)
	}
}

func TestHasProcesses(t *testing.T) {
	root := t.TempDir()
	mkdirs(t, root, "empty/payload", "busy/payload/init.scope=42", "v1busy=7")
	for dirs, want := range map[[2]string]bool{
		{"empty", ""}: false, {"busy", ""}: true, {"empty", "v1busy"}: true, {"empty", "absent"}: false,
	} {
		var abs []string
		for _, d := range dirs {
			if d != "" {
				abs = append(abs, filepath.Join(root, d))
			}
		}
		if got := hasProcesses(abs); got != want {
			t.Errorf("hasProcesses(%v) = %v, want %v", dirs, got, want)
		}
	}
}
