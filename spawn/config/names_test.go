package config

import (
	"strings"
	"testing"
)

func TestValidMachineName(t *testing.T) {
	valid := []string{"a", "web", "web-1", "Web.Example.org", "0", "a-b.c-d", "x--y", strings.Repeat("a", 64),
		"123", "a.b.c.d"}
	invalid := []string{"", "-a", "a-", "a.", ".a", "a..b", "a.-b", "a-.b", "a_b", "a b", "a/b", "ü",
		strings.Repeat("a", 65), ".host", "a:b", "web.", "a\x00"}
	for _, s := range valid {
		if !ValidMachineName(s) {
			t.Errorf("%q should be valid", s)
		}
	}
	for _, s := range invalid {
		if ValidMachineName(s) {
			t.Errorf("%q should be invalid", s)
		}
	}
}

func TestCleanMachineName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"web", "web"},
		{"My_Tree", "MyTree"},
		{"-web-", "web"},
		{"..a..b..", "a.b"},
		{"a-.b", "a-b"},
		{"debian bookworm", "debianbookworm"},
		{"über", "ber"},
		{"___", ""},
		{"a--", "a-"}, // like systemd: only one trailing character is dropped
		{strings.Repeat("ab", 40), strings.Repeat("ab", 32)},
		{strings.Repeat("a", 63) + ".b", strings.Repeat("a", 63)},
	}
	for _, tt := range tests {
		if got := CleanMachineName(tt.in); got != tt.want {
			t.Errorf("CleanMachineName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestValidIfname(t *testing.T) {
	for _, s := range []string{"eth0", "ve-web", "vz-abcdefghijkl", "br.1", "a"} {
		if !ValidIfname(s) {
			t.Errorf("%q should be valid", s)
		}
	}
	for _, s := range []string{"", "123", "all", "default", ".", "..", "a:b", "a/b", "a%d", "a b",
		"vz-abcdefghijklm", "é"} {
		if ValidIfname(s) {
			t.Errorf("%q should be invalid", s)
		}
	}
}

func FuzzMachineName(f *testing.F) {
	f.Add("web")
	f.Add("-a..b_c-")
	f.Fuzz(func(t *testing.T, s string) {
		c := CleanMachineName(s)
		if len(c) > MaxMachineNameLen {
			t.Fatalf("cleaned name too long: %q", c)
		}
		if ValidMachineName(s) && c != s {
			t.Fatalf("valid name %q changed to %q", s, c)
		}
	})
}
