package netctl

import (
	"reflect"
	"strings"
	"testing"
)

func TestScopeDirs(t *testing.T) {
	mi := `30 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
31 25 0:28 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
32 25 0:29 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
`
	pc := "4:memory:/a/machine.slice/machine-web.scope\n3:pids:/\n0::/machine.slice/machine-web.scope/init.scope\n"
	got := scopeDirs(strings.NewReader(pc), strings.NewReader(mi), "machine-web.scope")
	want := []string{"/sys/fs/cgroup/memory/a/machine.slice/machine-web.scope", "/sys/fs/cgroup/unified/machine.slice/machine-web.scope"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got := scopeDirs(strings.NewReader("0::/machine.slice/machine-webx.scope\n"), strings.NewReader(mi), "machine-web.scope"); len(got) != 0 {
		t.Fatalf("matched another machine's scope: %v", got)
	}
}
