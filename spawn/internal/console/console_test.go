package console

import (
	"testing"
	"time"
)

func TestEscapeDetector(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	esc := []byte{escapeByte}
	cases := []struct {
		name  string
		feeds [][]byte
		at    []time.Duration
		want  bool
	}{
		{"three at once", [][]byte{{escapeByte, escapeByte, escapeByte}}, []time.Duration{0}, true},
		{"three within a second", [][]byte{esc, esc, esc}, []time.Duration{0, 400 * time.Millisecond, 900 * time.Millisecond}, true},
		{"too slow", [][]byte{esc, esc, esc}, []time.Duration{0, 600 * time.Millisecond, 1200 * time.Millisecond}, false},
		{"another byte resets", [][]byte{esc, esc, []byte("a"), esc}, []time.Duration{0, 1, 2, 3}, false},
		{"in the middle of typing", [][]byte{[]byte("ls\x1d\x1d\x1d")}, []time.Duration{0}, true},
		{"two only", [][]byte{{escapeByte, escapeByte}}, []time.Duration{0}, false},
	}
	for _, c := range cases {
		var d escapeDetector
		got := false
		for i, f := range c.feeds {
			got = d.feed(f, t0.Add(c.at[i]))
		}
		if got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestNilConsoleNeverEscapes(t *testing.T) {
	var c *Console
	if c.Escaped() != nil {
		t.Error("a nil console has an escape channel")
	}
}
