package machine

import "testing"

func TestIDMap(t *testing.T) {
	m, err := parseIDMap("         0     524288      65536\n")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		in, host uint32
		ok       bool
	}{{0, 524288, true}, {1000, 525288, true}, {65535, 589823, true}, {65536, 0, false}} {
		if h, ok := m.toHost(c.in); h != c.host || ok != c.ok {
			t.Errorf("toHost(%d) = %d %v, want %d %v", c.in, h, ok, c.host, c.ok)
		}
		if c.ok {
			if i, ok := m.toInside(c.host); i != c.in || !ok {
				t.Errorf("toInside(%d) = %d %v", c.host, i, ok)
			}
		}
	}
	if _, ok := m.toInside(0); ok {
		t.Error("host root mapped into the namespace")
	}
	if m.identity() {
		t.Error("a shifted map called identity")
	}
	id, _ := parseIDMap("0 0 4294967295\n")
	if !id.identity() {
		t.Error("the initial namespace's map not identity")
	}
	for _, bad := range []string{"0 1", "a b c", "0 0 99999999999"} {
		if _, err := parseIDMap(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
