package daemonflags

import (
	"log/slog"
	"testing"
)

func TestAnnotations(t *testing.T) {
	fl, f := New()
	for name := range values {
		if fl.Lookup(name) == nil {
			t.Errorf("values: no flag --%s", name)
		}
	}
	for name := range complete {
		if fl.Lookup(name) == nil {
			t.Errorf("complete: no flag --%s", name)
		}
	}
	// The log levels offered are the ones slog takes.
	for _, v := range values["log-level"] {
		var l slog.Level
		if err := l.UnmarshalText([]byte(v)); err != nil {
			t.Errorf("--log-level=%s: %v", v, err)
		}
	}
	if err := fl.Parse([]string{"--pools=10.0.0.0/8", "--no-ipv6"}); err != nil {
		t.Fatal(err)
	}
	if *f.Pools != "10.0.0.0/8" || !*f.NoIPv6 || *f.Config != DefaultConfig {
		t.Errorf("parsed: pools %q no-ipv6 %v config %q", *f.Pools, *f.NoIPv6, *f.Config)
	}
}
