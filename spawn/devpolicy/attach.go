package devpolicy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrUnsupported wraps the kernel's refusal to load or attach a cgroup
// device program (no CONFIG_CGROUP_BPF, bpf(2) forbidden by a seccomp
// filter or a lockdown).
var ErrUnsupported = errors.New("this kernel does not let netspawn restrict device access (cgroup device programs)")

// progLoadAttr is the head of union bpf_attr for BPF_PROG_LOAD (the kernel
// takes a shorter attr and treats the rest as zero).
type progLoadAttr struct {
	progType           uint32
	insnCnt            uint32
	insns              uint64
	license            uint64
	logLevel           uint32
	logSize            uint32
	logBuf             uint64
	kernVersion        uint32
	progFlags          uint32
	progName           [16]byte
	progIfindex        uint32
	expectedAttachType uint32
}

// progAttachAttr is union bpf_attr for BPF_PROG_ATTACH.
type progAttachAttr struct {
	targetFD     uint32
	attachBPFFD  uint32
	attachType   uint32
	attachFlags  uint32
	replaceBPFFD uint32
}

func bpf(cmd int, attr unsafe.Pointer, size uintptr) (int, error) {
	r, _, e := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
	if e != 0 {
		return int(r), e
	}
	return int(r), nil
}

// sysBPF is the system call, replaced in tests.
var sysBPF = bpf

// loadTries bounds the retries of BPF_PROG_LOAD on EAGAIN.
const loadTries = 10

// progLoad is BPF_PROG_LOAD, again while the kernel answers EAGAIN. The
// verifier gives up with EAGAIN when a signal is pending for the loading
// thread, and the Go runtime signals its threads (SIGURG, to preempt
// goroutines) at any time; a slow verifier (software emulation) meets one
// often enough that netspawn failed to start one machine in a few dozen
// on such a guest. libbpf retries the same way.
func progLoad(attr *progLoadAttr) (int, error) {
	var fd int
	var err error
	for i := 0; i < loadTries; i++ {
		fd, err = sysBPF(unix.BPF_PROG_LOAD, unsafe.Pointer(attr), unsafe.Sizeof(*attr))
		if !errors.Is(err, unix.EAGAIN) {
			break
		}
	}
	return fd, err
}

// Load loads rules as a cgroup device program and returns its descriptor.
func Load(rules []Rule) (*os.File, error) {
	prog, err := Program(rules)
	if err != nil {
		return nil, err
	}
	license := []byte("GPL\x00")
	var log []byte // only to say why the kernel refused it: 64 KiB of fresh memory otherwise
	attr := progLoadAttr{
		progType: unix.BPF_PROG_TYPE_CGROUP_DEVICE,
		insnCnt:  uint32(len(prog)),
		insns:    uint64(uintptr(unsafe.Pointer(&prog[0]))),
		license:  uint64(uintptr(unsafe.Pointer(&license[0]))),
	}
	copy(attr.progName[:], "netspawn_dev")
	fd, err := progLoad(&attr)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EACCES) {
		// Again with the verifier's log, to say why.
		log = make([]byte, 64*1024)
		attr.logLevel, attr.logSize = 1, uint32(len(log))
		attr.logBuf = uint64(uintptr(unsafe.Pointer(&log[0])))
		fd, err = progLoad(&attr)
	}
	runtime.KeepAlive(prog)
	runtime.KeepAlive(license)
	runtime.KeepAlive(log)
	if err != nil {
		if msg := bytes.TrimSpace(bytes.TrimRight(log, "\x00")); len(msg) > 0 {
			return nil, fmt.Errorf("loading the device program: %w (verifier: %s)", err, lastLine(msg))
		}
		if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) {
			return nil, fmt.Errorf("%w: loading the device program: %v", ErrUnsupported, err)
		}
		if errors.Is(err, unix.EAGAIN) {
			return nil, fmt.Errorf("loading the device program: the kernel's verifier was interrupted %d times in a row (%w); try again", loadTries, err)
		}
		return nil, fmt.Errorf("loading the device program: %w", err)
	}
	return os.NewFile(uintptr(fd), "netspawn-devices"), nil
}

func lastLine(b []byte) string {
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	return string(b)
}

// Attach attaches the program prog to the cgroup directory cgroupFD, beside
// (never instead of) programs already there or above (BPF_F_ALLOW_MULTI):
// a device is usable only when every one of them allows it, so a booted
// systemd in the container adds its own policies below and cannot lift
// this one. The attachment lasts as long as the cgroup.
func Attach(cgroupFD int, name string, prog *os.File) error {
	attr := progAttachAttr{
		targetFD:    uint32(cgroupFD),
		attachBPFFD: uint32(prog.Fd()),
		attachType:  unix.BPF_CGROUP_DEVICE,
		attachFlags: unix.BPF_F_ALLOW_MULTI,
	}
	_, err := bpf(unix.BPF_PROG_ATTACH, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(prog)
	if err != nil {
		if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM) {
			return fmt.Errorf("%w: attaching the device program to %s: %v", ErrUnsupported, name, err)
		}
		return fmt.Errorf("attaching the device program to %s: %w", name, err)
	}
	return nil
}

// Apply loads rules and attaches them to the cgroup directory open as
// cgroupFD (name: its path, for errors).
func Apply(cgroupFD int, name string, rules []Rule) error {
	prog, err := Load(rules)
	if err != nil {
		return err
	}
	defer prog.Close()
	return Attach(cgroupFD, name, prog)
}
