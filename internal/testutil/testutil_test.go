package testutil

import (
	"testing"
	"time"
)

func TestEventually(t *testing.T) {
	n := 0
	if !Eventually(5*time.Second, func() bool { n++; return n == 5 }) {
		t.Fatal("a condition that comes true was not seen")
	}
	start := time.Now()
	if Eventually(50*time.Millisecond, func() bool { return false }) {
		t.Fatal("a false condition was reported true")
	}
	if time.Since(start) < 50*time.Millisecond {
		t.Error("gave up early")
	}
}
