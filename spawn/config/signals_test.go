package config

import (
	"syscall"
	"testing"
)

func TestParseSignal(t *testing.T) {
	tests := []struct {
		in   string
		want syscall.Signal
	}{
		{"SIGTERM", syscall.SIGTERM}, {"TERM", syscall.SIGTERM}, {"SIGKILL", syscall.SIGKILL},
		{"HUP", syscall.SIGHUP}, {"SIGPWR", syscall.SIGPWR}, {"SIGWINCH", syscall.SIGWINCH},
		{"15", syscall.SIGTERM}, {"1", syscall.SIGHUP}, {"64", 64},
		{"RTMIN", 34}, {"SIGRTMIN", 34}, {"RTMIN+3", 37}, {"SIGRTMIN+3", 37}, {"SIGRTMIN+30", 64},
		{"RTMAX", 64}, {"SIGRTMAX-1", 63}, {"RTMAX-30", 34},
	}
	for _, tt := range tests {
		got, err := ParseSignal(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseSignal(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "0", "65", "-1", "sigterm", "SIGFOO", "RTMIN-1", "RTMIN+31", "RTMAX+1",
		"RTMAX-31", "RTMIN+", "RTMINX", "SIG"} {
		if _, err := ParseSignal(bad); err == nil {
			t.Errorf("ParseSignal(%q) accepted", bad)
		}
	}
}

func TestSignalName(t *testing.T) {
	eq(t, SignalName(syscall.SIGTERM), "SIGTERM")
	eq(t, SignalName(syscall.SIGKILL), "SIGKILL")
	eq(t, SignalName(34), "SIGRTMIN")
	eq(t, SignalName(37), "SIGRTMIN+3")
	eq(t, SignalName(32), "signal 32")
	for s := syscall.Signal(1); s <= 64; s++ {
		if s == 32 || s == 33 {
			continue
		}
		got, err := ParseSignal(SignalName(s))
		if err != nil || got != s {
			t.Errorf("round trip %d: %s -> %d %v", s, SignalName(s), got, err)
		}
	}
}
