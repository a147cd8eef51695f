package forkexec

import (
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func wait(t *testing.T, pid int) int {
	t.Helper()
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
		t.Fatal(err)
	}
	return ws.ExitStatus()
}

// run starts sh -c script with its stdout on a pipe and returns the output.
func run(t *testing.T, a Attr, script string) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	a.Path, a.Argv = "/bin/sh", []string{"sh", "-c", script}
	a.Files = []int{0, int(w.Fd()), 2}
	pid, err := Start(&a)
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(r)
	if code := wait(t, pid); code != 0 {
		t.Fatalf("exit %d, output %q", code, out)
	}
	return strings.TrimSpace(string(out))
}

func TestStart(t *testing.T) {
	got := run(t, Attr{Env: []string{"X=1"}, Dir: "/tmp", Setsid: true},
		`echo "$X $(pwd)"; grep -E '^(SigBlk|SigIgn)' /proc/self/status | tr -s '\t' ' '; [ "$(cut -d' ' -f6 /proc/$$/stat)" = $$ ] && echo leader`)
	if want := "1 /tmp\nSigBlk: 0000000000000000\nSigIgn: 0000000000000000\nleader"; got != want {
		t.Fatalf("environment, directory, signal state or session: %q, want %q", got, want)
	}
}

func TestStartFiles(t *testing.T) {
	// The child's 0 closed, its 1 a pipe and its 2 our 1: a descriptor lower
	// than its target, moved out of the way before the pipe lands on 1.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	pid, err := Start(&Attr{Path: "/bin/sh", Argv: []string{"sh", "-c",
		`echo out; [ -e /proc/self/fd/0 ] || echo closed; [ "$(readlink /proc/self/fd/2)" = "$(readlink /proc/` + strconv.Itoa(os.Getpid()) + `/fd/1)" ] && echo ours`},
		Files: []int{-1, int(w.Fd()), 1}})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(r)
	wait(t, pid)
	if got := string(out); got != "out\nclosed\nours\n" {
		t.Fatalf("stderr of the child: %q", got)
	}
}

func TestStartExecFails(t *testing.T) {
	_, err := Start(&Attr{Path: "/nonexistent/program", Argv: []string{"x"}})
	if !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("exec of a missing program: %v, want ENOENT", err)
	}
	dir := t.TempDir()
	_, err = Start(&Attr{Path: "/bin/true", Argv: []string{"true"}, Dir: dir + "/missing"})
	if !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("chdir to a missing directory: %v, want ENOENT", err)
	}
}

func TestStartPIDTaken(t *testing.T) {
	// PID 1 of this namespace is taken (without root, set_tid is refused).
	_, err := Start(&Attr{Path: "/bin/true", Argv: []string{"true"}, PID: 1})
	if !errors.Is(err, ErrPIDUnavailable) {
		t.Fatalf("PID 1: %v, want ErrPIDUnavailable", err)
	}
}
