package devpolicy

import (
	"os"
	"testing"
)

// BenchmarkLoad: what the verifier costs a start (go test -bench Load, as
// root).
func BenchmarkLoad(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	rules := Closed(nil)
	for b.Loop() {
		f, err := Load(rules)
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}
