package dissect

import (
	"strings"
	"testing"
)

func mustPolicy(t *testing.T, s string) *Policy {
	t.Helper()
	p, err := ParsePolicy(s)
	if err != nil {
		t.Fatalf("ParsePolicy(%q): %v", s, err)
	}
	return p
}

func TestParsePolicy(t *testing.T) {
	for _, c := range []struct {
		in   string
		d    Designator
		want string
	}{
		{"*", Root, "open"},
		{"*", Home, "encrypted+unprotected+unused+absent"}, // no verity concept for /home
		{"-", Root, "ignore"},
		{"", Usr, "ignore"},
		{"~", Root, "absent"},
		{"root=verity+signed", Root, "verity+signed"},
		{"root=verity+signed", Usr, "ignore"},
		{"root=verity+signed:=absent", Usr, "absent"},
		{"root=verity+signed", RootVerity, "unprotected"},
		{"root=verity", RootVeritySig, "ignore"},
		{"root=signed+absent", RootVeritySig, "unprotected+absent"},
		{"usr=encrypted+unprotected+read-only-on", Usr, "encrypted+unprotected+read-only-on"},
		{"home=verity+unprotected", Home, "unprotected"},
		{"root=", Root, "open"},
		{"root=-", Root, "open"},
		{"root=open:", Root, "open"},
		{" root = unprotected + growfs-off ", Root, "unprotected+growfs-off"},
		{"root=absent+read-only-on", Root, "absent"},
	} {
		p, err := ParsePolicy(c.in)
		if err != nil {
			t.Errorf("ParsePolicy(%q): %v", c.in, err)
			continue
		}
		if got := p.Flags(c.d).String(); got != c.want {
			t.Errorf("ParsePolicy(%q).Flags(%s) = %s, want %s", c.in, c.d, got, c.want)
		}
	}
}

func TestParsePolicyErrors(t *testing.T) {
	for _, c := range []struct{ in, err string }{
		{"root", "lacks '='"},
		{"root=verity:root=signed", "more than once"},
		{"=absent:=open", "default (=FLAGS) is given more than once"},
		{"rot=verity", `unknown partition designator "rot"`},
		{"root=verity+sealed", `unknown partition policy flag "sealed"`},
		{"root=verity::usr=open", "lacks '='"},
	} {
		_, err := ParsePolicy(c.in)
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("ParsePolicy(%q) = %v, want %q", c.in, err, c.err)
		}
	}
}

func TestContainerPolicy(t *testing.T) {
	p := ContainerPolicy
	if got := p.Flags(Swap).String(); got != "ignore" {
		t.Errorf("swap: %s", got)
	}
	if got := p.Flags(Root).String(); got != "verity+signed+encrypted+unprotected+absent" {
		t.Errorf("root: %s", got)
	}
	if got := p.String(); !strings.HasPrefix(got, "root=") || !strings.HasSuffix(got, ":=ignore") {
		t.Errorf("String: %s", got)
	}
}

func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{"*", "-", "~", "root=verity+signed:usr=encrypted+unprotected:=absent", "root=:", "a=b=c", "=open+read-only-on"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePolicy(s)
		if err != nil {
			return
		}
		for d := Designator(0); d < numDesignators; d++ {
			fl := p.Flags(d)
			if fl&^(policyUseMask|policyPFlagsMask) != 0 {
				t.Fatalf("%q: %s: unknown bits in %#x", s, d, fl)
			}
			// (A partition may be left no use at all, as in systemd:
			// "=signed" leaves /home, which has no verity, nothing.)
			// The canonical spelling means the same.
			q, err := ParsePolicy((&Policy{Default: p.Default, Parts: p.Parts}).String())
			if err != nil {
				t.Fatalf("%q: canonical form does not parse: %v", s, err)
			}
			if q.Flags(d) != fl {
				t.Fatalf("%q: %s: %s != %s", s, d, q.Flags(d), fl)
			}
		}
	})
}

func FuzzDissect(f *testing.F) {
	f.Add([]byte(buildGPT([]testPart{{typ: rootX86, mib: 1, fs: "ext4"}})[:8192]))
	f.Add([]byte("EFI PART"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = Dissect(memImage(b), int64(len(b)), Options{Arch: "amd64"})
	})
}
