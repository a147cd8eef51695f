package plan

import (
	"errors"
	"syscall"
	"testing"
)

func TestErr(t *testing.T) {
	for _, c := range []struct {
		s    Step
		aux  uint32
		want string
	}{
		{Step{Kind: Mount, Src: "/a", Path: "/r/b", Flags: msBind}, 0, "mounting bind mount of /a on /r/b: no such file or directory"},
		{Step{Kind: Mount, Src: "proc", Path: "/r/proc", FSType: "proc"}, 0, "mounting proc on /r/proc: no such file or directory"},
		{Step{Kind: FindExec, Data: "/x", Paths: []string{"/x"}}, AuxNotFound, "command /x not found in the container: stat /x: no such file or directory"},
		{Step{Kind: FindExec, Data: "x", Src: "/bin", Paths: []string{"/bin/x"}}, AuxNotFound, `command "x" not found in the container (searched PATH=/bin)`},
		{Step{Kind: Chdir, Path: "/w", Context: "ctx"}, 0, "ctx: changing to working directory /w in the container: no such file or directory"},
	} {
		err := c.s.Err(syscall.ENOENT, c.aux)
		if err.Error() != c.want {
			t.Errorf("got %q, want %q", err, c.want)
		}
		if c.s.Kind != FindExec && !errors.Is(err, syscall.ENOENT) {
			t.Errorf("%q does not wrap the errno", err)
		}
	}
}
