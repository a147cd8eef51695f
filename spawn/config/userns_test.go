package config

import (
	"reflect"
	"testing"
)

func TestParsePrivateUsers(t *testing.T) {
	cases := []struct {
		in          string
		mode        UserNSMode
		shift, size uint32
		bad         bool
	}{
		{"", UserNSYes, 0, 65536, false},
		{"yes", UserNSYes, 0, 65536, false},
		{"no", UserNSOff, 0, 0, false},
		{"pick", UserNSPick, 0, 65536, false},
		{"identity", UserNSIdentity, 0, 65536, false},
		{"1000000", UserNSFixed, 1000000, 65536, false},
		{"1000000:1000", UserNSFixed, 1000000, 1000, false},
		{"1000000:0", "", 0, 0, true},
		{"4294967295:2", "", 0, 0, true},
		{"maybe", "", 0, 0, true},
		{"-5", "", 0, 0, true},
	}
	for _, c := range cases {
		m, s, n, err := ParsePrivateUsers(c.in)
		if c.bad {
			if err == nil {
				t.Errorf("%q: no error", c.in)
			}
			continue
		}
		if err != nil || m != c.mode || s != c.shift || n != c.size {
			t.Errorf("%q: %q %d %d %v; want %q %d %d", c.in, m, s, n, err, c.mode, c.shift, c.size)
		}
	}
}

func TestParseOwnership(t *testing.T) {
	for in, want := range map[string]Ownership{"off": OwnershipOff, "chown": OwnershipChown, "map": OwnershipMap, "auto": OwnershipAuto, "yes": OwnershipChown, "no": OwnershipOff} {
		if got, err := ParseOwnership(in); err != nil || got != want {
			t.Errorf("%q: %q %v", in, got, err)
		}
	}
	if _, err := ParseOwnership("bogus"); err == nil {
		t.Error("bogus accepted")
	}
	if (PrivateUsers{Mode: UserNSPick}).EffectiveOwnership() != OwnershipAuto || (PrivateUsers{Mode: UserNSYes}).EffectiveOwnership() != OwnershipOff {
		t.Error("default ownership")
	}
}

func TestParseOverlay(t *testing.T) {
	cases := []struct {
		in   string
		ro   bool
		want OverlayMount
		bad  bool
	}{
		{in: "/a:/b:/c", want: OverlayMount{Lower: []OverlayPath{{Path: "/a"}}, Upper: OverlayPath{Path: "/b"}, Dest: "/c"}},
		{in: "/a:/b", want: OverlayMount{Lower: []OverlayPath{{Path: "/a"}}, Upper: OverlayPath{Path: "/b"}, Dest: "/b"}},
		{in: "+/var::/var", want: OverlayMount{Lower: []OverlayPath{{Path: "/var", InRoot: true}}, Dest: "/var"}},
		{in: "/l1:/l2::/d", ro: true, want: OverlayMount{Lower: []OverlayPath{{Path: "/l1"}, {Path: "/l2"}}, Dest: "/d", ReadOnly: true}},
		{in: `/a\:b:/u:/d`, want: OverlayMount{Lower: []OverlayPath{{Path: "/a:b"}}, Upper: OverlayPath{Path: "/u"}, Dest: "/d"}},
		{in: "/a", bad: true},
		{in: "/a:", bad: true},
		{in: "/a:/b:rel", bad: true},
		{in: ":/b:/c", bad: true},
		{in: "+rel:/b:/c", bad: true},
	}
	for _, c := range cases {
		got, err := ParseOverlay(c.in, c.ro)
		if c.bad {
			if err == nil {
				t.Errorf("%q: no error (%+v)", c.in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: %+v %v; want %+v", c.in, got, err, c.want)
		}
	}
}

func TestParseVolatile(t *testing.T) {
	for in, want := range map[string]VolatileMode{"": VolatileYes, "yes": VolatileYes, "no": VolatileNo, "state": VolatileState, "overlay": VolatileOverlay} {
		if got, err := ParseVolatile(in); err != nil || got != want {
			t.Errorf("%q: %q %v", in, got, err)
		}
	}
	if _, err := ParseVolatile("maybe"); err == nil {
		t.Error("maybe accepted")
	}
}
