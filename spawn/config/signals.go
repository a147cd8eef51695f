package config

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
)

// Real-time signal range as glibc exposes it (the kernel's 32 and 33 are
// reserved for the C library), which is what systemd-nspawn's SIGRTMIN means.
const (
	SigRTMin = syscall.Signal(34)
	SigRTMax = syscall.Signal(64)
)

// signalNames lists the classic signals by number, without the SIG prefix,
// as systemd's signal table does.
var signalNames = map[syscall.Signal]string{
	syscall.SIGHUP: "HUP", syscall.SIGINT: "INT", syscall.SIGQUIT: "QUIT",
	syscall.SIGILL: "ILL", syscall.SIGTRAP: "TRAP", syscall.SIGABRT: "ABRT",
	syscall.SIGBUS: "BUS", syscall.SIGFPE: "FPE", syscall.SIGKILL: "KILL",
	syscall.SIGUSR1: "USR1", syscall.SIGSEGV: "SEGV", syscall.SIGUSR2: "USR2",
	syscall.SIGPIPE: "PIPE", syscall.SIGALRM: "ALRM", syscall.SIGTERM: "TERM",
	syscall.SIGSTKFLT: "STKFLT", syscall.SIGCHLD: "CHLD", syscall.SIGCONT: "CONT",
	syscall.SIGSTOP: "STOP", syscall.SIGTSTP: "TSTP", syscall.SIGTTIN: "TTIN",
	syscall.SIGTTOU: "TTOU", syscall.SIGURG: "URG", syscall.SIGXCPU: "XCPU",
	syscall.SIGXFSZ: "XFSZ", syscall.SIGVTALRM: "VTALRM", syscall.SIGPROF: "PROF",
	syscall.SIGWINCH: "WINCH", syscall.SIGIO: "IO", syscall.SIGPWR: "PWR",
	syscall.SIGSYS: "SYS",
}

// ParseSignal parses a signal as systemd does: a number (1-64), a name with
// or without the SIG prefix (SIGTERM, TERM; case matters, as in systemd),
// RTMIN, RTMIN+N, RTMAX or RTMAX-N (also with the SIG prefix).
func ParseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > int(SigRTMax) {
			return 0, fmt.Errorf("signal number %d out of range 1-%d", n, SigRTMax)
		}
		return syscall.Signal(n), nil
	}
	name := strings.TrimPrefix(s, "SIG")
	for sig, n := range signalNames {
		if n == name {
			return sig, nil
		}
	}
	span := int(SigRTMax - SigRTMin)
	if rest, ok := strings.CutPrefix(name, "RTMIN"); ok {
		if rest == "" {
			return SigRTMin, nil
		}
		if rest[0] != '+' {
			return 0, fmt.Errorf("unknown signal %q", s)
		}
		n, err := strconv.Atoi(rest[1:])
		if err != nil || n < 0 || n > span {
			return 0, fmt.Errorf("invalid real-time signal %q: RTMIN+N needs N in 0-%d", s, span)
		}
		return SigRTMin + syscall.Signal(n), nil
	}
	if rest, ok := strings.CutPrefix(name, "RTMAX"); ok {
		if rest == "" {
			return SigRTMax, nil
		}
		if rest[0] != '-' {
			return 0, fmt.Errorf("unknown signal %q", s)
		}
		n, err := strconv.Atoi(rest[1:])
		if err != nil || n < 0 || n > span {
			return 0, fmt.Errorf("invalid real-time signal %q: RTMAX-N needs N in 0-%d", s, span)
		}
		return SigRTMax - syscall.Signal(n), nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

// SignalName returns the name of sig: SIGTERM, SIGRTMIN+3, or "signal N"
// for numbers without a name.
func SignalName(sig syscall.Signal) string {
	if n, ok := signalNames[sig]; ok {
		return "SIG" + n
	}
	switch {
	case sig == SigRTMin:
		return "SIGRTMIN"
	case sig > SigRTMin && sig <= SigRTMax:
		return "SIGRTMIN+" + strconv.Itoa(int(sig-SigRTMin))
	}
	return "signal " + strconv.Itoa(int(sig))
}
