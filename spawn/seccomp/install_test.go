package seccomp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netspawn/netspawn/test/harness"
	"golang.org/x/sys/unix"
)

// The root test runs the test binary again as a helper process: a filter
// cannot be removed once installed, so it must not land in the test runner.
const (
	helperEnv     = "NETSPAWN_SECCOMP_HELPER" // "filter" or "control"
	helperCapsEnv = "NETSPAWN_SECCOMP_CAPS"
	helperSpecEnv = "NETSPAWN_SECCOMP_SPEC" // values separated by newlines
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		var res map[string]string
		var err error
		if mode == "nocap" {
			res, err = helperNoCap()
		} else {
			res, err = helper(mode == "filter")
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(2)
		}
		_ = json.NewEncoder(os.Stdout).Encode(res)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// errName renders a syscall result: "ok" or the errno's name.
func errName(e syscall.Errno) string {
	if e == 0 {
		return "ok"
	}
	return unix.ErrnoName(e)
}

func helper(install bool) (map[string]string, error) {
	runtime.LockOSThread()
	// A thread that exists before the filter: TSYNC must cover it too.
	ask := make(chan func() string)
	answer := make(chan string)
	go func() {
		runtime.LockOSThread()
		for f := range ask {
			answer <- f()
		}
	}()
	ask <- func() string { return "" }
	<-answer

	if install {
		caps, err := strconv.ParseUint(os.Getenv(helperCapsEnv), 0, 64)
		if err != nil {
			return nil, err
		}
		f := Default(caps)
		for _, s := range strings.Split(os.Getenv(helperSpecEnv), "\n") {
			if err := f.Apply(s); err != nil {
				return nil, err
			}
		}
		prog, err := f.Compile("")
		if err != nil {
			return nil, err
		}
		if err := Install(prog); err != nil {
			return nil, err
		}
	}
	call := func(nr uintptr, a ...uintptr) string {
		a = append(a, 0, 0, 0, 0)
		_, _, e := unix.Syscall6(nr, a[0], a[1], a[2], a[3], 0, 0)
		return errName(e)
	}
	res := map[string]string{}
	nnp, _ := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
	res["no_new_privs"] = strconv.Itoa(nnp)
	res["getpid"] = call(unix.SYS_GETPID)
	var u unix.Utsname
	res["uname"] = errName(errnoOf(unix.Uname(&u)))
	// Every call below is harmless even unfiltered: bad magic numbers,
	// NULL pointers or a foreign kexec architecture make the kernel refuse.
	res["reboot"] = call(unix.SYS_REBOOT)
	res["swapon"] = call(unix.SYS_SWAPON)
	res["init_module"] = call(unix.SYS_INIT_MODULE)
	res["kexec_load"] = call(unix.SYS_KEXEC_LOAD, 0, 0, 0, 0xdead0000)
	if runtime.GOARCH == "amd64" {
		res["x32_reboot"] = call(x32Bit | unix.SYS_REBOOT)
	}
	res["socket_audit"] = socketResult(unix.NETLINK_AUDIT)
	res["socket_route"] = socketResult(unix.NETLINK_ROUTE)
	ask <- func() string { return call(unix.SYS_REBOOT) }
	res["other_thread_reboot"] = <-answer
	if err := exec.Command("/bin/true").Run(); err != nil {
		res["exec"] = err.Error()
	} else {
		res["exec"] = "ok"
	}
	return res, nil
}

// helperNoCap drops CAP_SYS_ADMIN from the thread's effective set (it stays
// permitted and in the bounding set) and tries to install a filter without
// no_new_privs, which the kernel must refuse.
func helperNoCap() (map[string]string, error) {
	runtime.LockOSThread()
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return nil, fmt.Errorf("capget: %w", err)
	}
	data[0].Effective &^= 1 << 21 // CAP_SYS_ADMIN
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return nil, fmt.Errorf("capset: %w", err)
	}
	prog, err := Default(0).Compile("")
	if err != nil {
		return nil, err
	}
	res := map[string]string{"install": "ok"}
	if err := Install(prog); err != nil {
		res["install"] = err.Error()
	}
	return res, nil
}

func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if err == nil || !errors.As(err, &e) {
		return 0
	}
	return e
}

func socketResult(proto int) string {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err == nil {
		unix.Close(fd)
	}
	return errName(errnoOf(err))
}

func runHelper(t *testing.T, mode string, caps uint64, specs ...string) map[string]string {
	t.Helper()
	// A broken filter can wedge the Go runtime of the helper: bound it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode,
		helperCapsEnv+"="+strconv.FormatUint(caps, 10), helperSpecEnv+"="+strings.Join(specs, "\n"))
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("helper (%s): %v: %s", mode, err, stderr)
	}
	var res map[string]string
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("helper output %q: %v", out, err)
	}
	return res
}

// TestInstall loads real filters in helper processes and checks what the
// kernel answers, against a helper without a filter.
func TestInstall(t *testing.T) {
	harness.RequireRoot(t)
	control := runHelper(t, "control", 0)
	t.Logf("without filter: %v", control)

	check := func(t *testing.T, got map[string]string, want map[string]string) {
		t.Helper()
		for k, w := range want {
			if w == "EPERM" && control[k] == "EPERM" {
				t.Logf("%s: EPERM even without a filter here; not evidence", k)
			}
			if got[k] != w {
				t.Errorf("%s: got %s, want %s (without filter: %s)", k, got[k], w, control[k])
			}
		}
	}

	t.Run("default", func(t *testing.T) {
		caps := uint64(nspawnDefaultCaps) &^ (1 << capSysBoot)
		got := runHelper(t, "filter", caps, "~uname")
		want := map[string]string{
			"no_new_privs": "0", "getpid": "ok", "exec": "ok", "uname": "EPERM",
			"reboot": "EPERM", "swapon": "EPERM", "init_module": "EPERM", "kexec_load": "EPERM",
			"other_thread_reboot": "EPERM",
			"socket_audit":        "EAFNOSUPPORT", "socket_route": "ok",
		}
		if runtime.GOARCH == "amd64" {
			want["x32_reboot"] = "EPERM"
		}
		check(t, got, want)
	})
	t.Run("caps-and-additions", func(t *testing.T) {
		got := runHelper(t, "filter", 1<<capSysBoot, "swapon")
		check(t, got, map[string]string{
			"getpid": "ok", "exec": "ok", "uname": "ok",
			"reboot": control["reboot"], "swapon": control["swapon"],
			"init_module": "EPERM", "kexec_load": "EPERM",
		})
	})
	t.Run("needs-cap-sys-admin", func(t *testing.T) {
		got := runHelper(t, "nocap", 0)
		if !strings.Contains(got["install"], "permission denied") || !strings.Contains(got["install"], "CAP_SYS_ADMIN") {
			t.Errorf("Install without CAP_SYS_ADMIN and no_new_privs: %q, want a permission error that says why", got["install"])
		}
	})
}
