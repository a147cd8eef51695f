package devpolicy

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/netspawn/netspawn/internal/testutil"
	"github.com/netspawn/netspawn/spawn/cgroup"

	"golang.org/x/sys/unix"
)

func TestParseAccess(t *testing.T) {
	for in, want := range map[string]Access{"": 0, "r": Read, "rw": Read | Write, "rwm": RWM, "mwr": RWM} {
		got, err := ParseAccess(in)
		if err != nil || got != want {
			t.Errorf("ParseAccess(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseAccess("rx"); err == nil || !strings.Contains(err.Error(), "'x'") {
		t.Errorf("ParseAccess(rx): %v", err)
	}
	if s := (Read | Mknod).String(); s != "rm" {
		t.Errorf("String: %q", s)
	}
}

func TestPTSMajors(t *testing.T) {
	text := "Character devices:\n  1 mem\n  5 /dev/tty\n136 pts\n137 pts\n\nBlock devices:\n  7 loop\n  9 pts\n"
	got := PTSMajors(text)
	if len(got) != 2 || got[0] != 136 || got[1] != 137 {
		t.Errorf("PTSMajors = %v", got)
	}
	if rules := Closed(nil); !Allowed(rules, Char, 143, 4, Read|Write) || Allowed(rules, Char, 143, 4, Mknod) {
		t.Error("Closed(nil): ptys 136-143 must be usable (rw), never made (m)")
	}
}

// TestProgramMatchesRules runs the compiled program on every combination
// of a set of devices and accesses and compares it with the rules' meaning.
func TestProgramMatchesRules(t *testing.T) {
	rules := append(Closed([]int64{136}),
		Rule{Block, 7, AnyNumber, Read},               // block-loop r
		Rule{Char, AnyNumber, 42, Write | Mknod},      // odd, but expressible
		Rule{Any, 250, 1, RWM},                        // either type
		Rule{Char, 10, 229, 0},                        // no access: nothing
		Rule{Block, 1 << 30, 1<<31 - 1, Read | Write}, // large numbers
	)
	prog, err := Program(rules)
	if err != nil {
		t.Fatal(err)
	}
	devs := [][2]uint32{{1, 3}, {1, 1}, {5, 0}, {5, 2}, {5, 1}, {136, 0}, {136, 7}, {137, 0}, {10, 200}, {10, 229},
		{7, 0}, {7, 9}, {8, 0}, {0, 0}, {99, 42}, {250, 1}, {250, 2}, {1 << 30, 1<<31 - 1}, {1 << 30, 0}, {4095, 1048575}}
	for _, typ := range []Type{Char, Block} {
		for _, d := range devs {
			for a := Access(1); a <= RWM; a++ {
				want := Allowed(rules, typ, int64(d[0]), int64(d[1]), a)
				got, err := Run(prog, typ, d[0], d[1], a)
				if err != nil {
					t.Fatal(err)
				}
				if (got == 1) != want {
					t.Errorf("%c %d:%d %s: program says %d, rules say %v", typ, d[0], d[1], a, got, want)
				}
			}
		}
	}
	if _, err := Program([]Rule{{Type: 'x', Access: Read}}); err == nil {
		t.Error("a rule of type x compiled")
	}
	if _, err := Program([]Rule{{Type: Char, Major: -2, Access: Read}}); err == nil {
		t.Error("a negative major compiled")
	}
}

// TestApply attaches the closed policy to a cgroup of its own and checks,
// from a process in it, that /dev/null is made and read while a block
// device and /dev/mem may be neither made nor opened.
func TestApply(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.Unavailable(t, "needs root")
	}
	root := cgroup.V2Root()
	if root == "" {
		testutil.Unavailable(t, "no cgroup v2 hierarchy")
	}
	dir := filepath.Join(root, "netspawn-devpolicy-test-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		testutil.Eventually(5*time.Second, func() bool { err := os.Remove(dir); return err == nil || os.IsNotExist(err) })
	})
	cg, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	if err := Apply(int(cg.Fd()), dir, Closed(nil)); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	// Made outside the cgroup: opening them is what the policy decides.
	for name, dev := range map[string]uint64{"mem": unix.Mkdev(1, 1), "loop": unix.Mkdev(7, 0)} {
		mode := uint32(unix.S_IFCHR)
		if name == "loop" {
			mode = unix.S_IFBLK
		}
		if err := unix.Mknod(filepath.Join(tmp, name), mode|0o600, int(dev)); err != nil {
			t.Fatal(err)
		}
	}
	script := `
set -u
mknod ` + tmp + `/null c 1 3 && head -c 1 ` + tmp + `/null && echo null-ok
mknod ` + tmp + `/blk b 7 1 2>/dev/null && echo mknod-blk-allowed
head -c 1 ` + tmp + `/mem 2>/dev/null && echo mem-allowed
head -c 1 ` + tmp + `/loop 2>/dev/null; echo loop-tried
`
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	got := string(out)
	if !strings.Contains(got, "null-ok") || strings.Contains(got, "allowed") || !strings.Contains(got, "loop-tried") {
		t.Errorf("inside the cgroup:\n%s", got)
	}
	// And opening the block device there is refused by the policy
	// (EPERM), not for want of a device.
	f, err := os.Open(filepath.Join(tmp, "loop"))
	if err == nil {
		f.Close()
	}
	if errors.Is(err, unix.EPERM) {
		t.Errorf("the test's own process (outside the cgroup) was refused too: %v", err)
	}
}

// TestProgLoadRetriesEAGAIN: the verifier answers EAGAIN when a signal is
// pending for the loading thread (the Go runtime's preemption signals): the
// load is tried again, a bounded number of times, and only EAGAIN is.
func TestProgLoadRetriesEAGAIN(t *testing.T) {
	defer func(f func(int, unsafe.Pointer, uintptr) (int, error)) { sysBPF = f }(sysBPF)
	for _, tc := range []struct {
		name    string
		answers []error // the kernel's answer to each call; nil: a descriptor
		calls   int
		err     error
	}{
		{"interrupted twice", []error{unix.EAGAIN, unix.EAGAIN, nil}, 3, nil},
		{"refused", []error{unix.EPERM}, 1, unix.EPERM},
		{"interrupted, then refused", []error{unix.EAGAIN, unix.EINVAL}, 2, unix.EINVAL},
		{"always interrupted", nil, loadTries, unix.EAGAIN},
	} {
		calls := 0
		sysBPF = func(cmd int, attr unsafe.Pointer, size uintptr) (int, error) {
			if cmd != unix.BPF_PROG_LOAD {
				t.Fatalf("%s: command %d, want BPF_PROG_LOAD", tc.name, cmd)
			}
			calls++
			if tc.answers == nil {
				return -1, unix.EAGAIN
			}
			if err := tc.answers[calls-1]; err != nil {
				return -1, err
			}
			return 42, nil
		}
		var attr progLoadAttr
		fd, err := progLoad(&attr)
		if calls != tc.calls || !errors.Is(err, tc.err) || (err == nil && fd != 42) {
			t.Errorf("%s: %d calls, fd %d, err %v; want %d calls, err %v", tc.name, calls, fd, err, tc.calls, tc.err)
		}
	}
}
