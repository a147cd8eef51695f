package forkexec

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/netspawn/netspawn/spawn/internal/plan"

	"golang.org/x/sys/unix"
)

// startPlan runs steps in a raw child (no namespaces), opening its gate at
// once, and returns what it wrote on stdout and its report, if any.
func startPlan(t *testing.T, steps []plan.Step) (string, *plan.Report) {
	t.Helper()
	return startPlanMode(t, steps, false)
}

// startPlanMode is startPlan, in the caller's memory (CLONE_VM|CLONE_VFORK)
// with vfork.
func startPlanMode(t *testing.T, steps []plan.Step, vfork bool) (string, *plan.Report) {
	t.Helper()
	var gate, status [2]int
	if err := unix.Pipe2(gate[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	if err := unix.Pipe2(status[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	out, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	for i := range steps {
		if steps[i].Kind == plan.Gate {
			steps[i].Arg = uintptr(gate[0])
		}
	}
	pid, err := StartInit(&InitAttr{Steps: steps, Files: []int{0, int(w.Fd()), 2}, Status: status[1], Close: []int{gate[1], status[0]}, Vfork: vfork})
	unix.Close(gate[0])
	unix.Close(status[1])
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	_, _ = unix.Write(gate[1], []byte{1}) // EPIPE when the child failed before its gate
	unix.Close(gate[1])
	st := os.NewFile(uintptr(status[0]), "status")
	defer st.Close()
	buf, _ := io.ReadAll(st)
	got, _ := io.ReadAll(out)
	wait(t, pid)
	if len(buf) == 0 {
		return string(got), nil
	}
	var rep plan.Report
	if err := binary.Read(bytes.NewReader(buf), binary.NativeEndian, &rep); err != nil {
		t.Fatalf("report %x: %v", buf, err)
	}
	return string(got), &rep
}

func TestStartInitRunsSteps(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "a", "f")
	out, rep := startPlan(t, []plan.Step{
		{Kind: plan.Mkdir, Path: filepath.Join(dir, "a"), Mode: 0o755},
		{Kind: plan.Mkdir, Path: filepath.Join(dir, "a"), Mode: 0o755}, // exists: fine
		{Kind: plan.WriteFile, Path: f, Data: "hello\n", Mode: 0o600},
		{Kind: plan.Symlink, Src: "f", Path: filepath.Join(dir, "a", "l")},
		{Kind: plan.Mount, Path: filepath.Join(dir, "missing"), IfExists: true}, // skipped
		{Kind: plan.Gate},
		{Kind: plan.Chdir, Path: filepath.Join(dir, "nowhere"), Fallback: true},
		{Kind: plan.FindExec, Data: "sh", Paths: []string{"/nonexistent/sh", "/bin/sh"}},
		{Kind: plan.Exec, Argv: []string{"sh", "-c", "cat " + filepath.Join(dir, "a", "l") + "; pwd"}, Env: []string{"X=1"}},
	})
	if rep != nil {
		t.Fatalf("report %+v", *rep)
	}
	if out != "hello\n/\n" {
		t.Errorf("output %q", out)
	}
	if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600&^umask() {
		t.Errorf("%v %v", st, err)
	}
}

// TestStartInitVfork: the same steps in a child that shares the caller's
// memory, which waits for its exec (or its report) before going on; many
// times, with the Go runtime's other threads busy meanwhile.
func TestStartInitVfork(t *testing.T) {
	if !vforkSupported {
		t.Skip("no vforkSyscall on this architecture: StartInit forks")
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() { // garbage and goroutines beside the clones
		for {
			select {
			case <-stop:
				return
			default:
				_ = make([]byte, 1<<16)
			}
		}
	}()
	for i := 0; i < 50; i++ {
		dir := t.TempDir()
		f := filepath.Join(dir, "f")
		out, rep := startPlanMode(t, []plan.Step{
			{Kind: plan.WriteFile, Path: f, Data: "hello\n", Mode: 0o600},
			{Kind: plan.Chdir, Path: dir},
			{Kind: plan.FindExec, Data: "sh", Paths: []string{"/nonexistent/sh", "/bin/sh"}},
			{Kind: plan.Exec, Argv: []string{"sh", "-c", "cat f"}},
		}, true)
		if rep != nil || out != "hello\n" {
			t.Fatalf("run %d: output %q, report %+v", i, out, rep)
		}
		_, rep = startPlanMode(t, []plan.Step{
			{Kind: plan.MkdirNew, Path: dir, Mode: 0o755}, // exists: fails
			{Kind: plan.FindExec, Data: "/bin/sh", Paths: []string{"/bin/sh"}},
			{Kind: plan.Exec, Argv: []string{"sh"}},
		}, true)
		if rep == nil || rep.Step != 0 || syscall.Errno(rep.Errno) != syscall.EEXIST {
			t.Fatalf("run %d: report %+v", i, rep)
		}
	}
}

func TestStartInitVforkRefusesGate(t *testing.T) {
	_, err := StartInit(&InitAttr{Steps: []plan.Step{
		{Kind: plan.Gate},
		{Kind: plan.FindExec, Data: "/bin/sh", Paths: []string{"/bin/sh"}},
		{Kind: plan.Exec, Argv: []string{"sh"}},
	}, Status: 100, Vfork: true})
	if vforkSupported && (err == nil || !strings.Contains(err.Error(), "Gate")) {
		t.Errorf("a Gate step with Vfork: %v", err)
	}
}

func umask() os.FileMode {
	m := unix.Umask(0)
	unix.Umask(m)
	return os.FileMode(m)
}

func TestStartInitReports(t *testing.T) {
	dir := t.TempDir()
	steps := []plan.Step{
		{Kind: plan.MkdirNew, Path: dir, Mode: 0o755}, // exists: fails
		{Kind: plan.FindExec, Data: "/bin/sh", Paths: []string{"/bin/sh"}},
		{Kind: plan.Exec, Argv: []string{"sh"}},
	}
	if _, rep := startPlan(t, steps); rep == nil || rep.Step != 0 || syscall.Errno(rep.Errno) != syscall.EEXIST {
		t.Errorf("report %+v", rep)
	}
	steps = []plan.Step{
		{Kind: plan.FindExec, Data: "/etc", Paths: []string{"/etc"}},
		{Kind: plan.Exec, Argv: []string{"x"}},
	}
	rep := &plan.Report{}
	if _, rep = startPlan(t, steps); rep == nil || rep.Step != 0 || rep.Aux != plan.AuxIsDir {
		t.Fatalf("report %+v", rep)
	}
	if err := steps[0].Err(syscall.Errno(rep.Errno), rep.Aux); err.Error() != "command /etc in the container is a directory" {
		t.Error(err)
	}
}

// TestStartInitSignalDispositions: the payload starts with the signals the
// caller ignores still ignored (as across execve) and every other one at
// its default, with and without vfork.
func TestStartInitSignalDispositions(t *testing.T) {
	signal.Ignore(syscall.SIGUSR2)
	defer signal.Reset(syscall.SIGUSR2)
	for _, vfork := range []bool{false, true} {
		out, rep := startPlanMode(t, []plan.Step{
			{Kind: plan.FindExec, Data: "sh", Paths: []string{"/bin/sh"}},
			{Kind: plan.Exec, Argv: []string{"sh", "-c", "grep -E '^Sig(Ign|Cgt)' /proc/self/status"}},
		}, vfork)
		if rep != nil {
			t.Fatalf("vfork %v: report %+v", vfork, *rep)
		}
		var ign, cgt uint64
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(l)
			if len(f) != 2 {
				t.Fatalf("vfork %v: output %q", vfork, out)
			}
			v, err := strconv.ParseUint(f[1], 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			if f[0] == "SigIgn:" {
				ign = v
			} else {
				cgt = v
			}
		}
		if ign&(1<<(syscall.SIGUSR2-1)) == 0 {
			t.Errorf("vfork %v: SIGUSR2, ignored by the caller, is not ignored in the payload (SigIgn %x)", vfork, ign)
		}
		// sh catches some itself (SIGINT, SIGCHLD...); the ones it does not
		// touch must not have kept a handler: SIGUSR1 is caught by Go.
		if cgt&(1<<(syscall.SIGUSR1-1)) != 0 {
			t.Errorf("vfork %v: SIGUSR1 still caught in the payload (SigCgt %x)", vfork, cgt)
		}
	}
}
