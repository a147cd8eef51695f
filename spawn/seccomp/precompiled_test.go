package seccomp_test

import (
	"os"
	"reflect"
	"testing"

	"github.com/netspawn/netspawn/spawn/config"
	"github.com/netspawn/netspawn/spawn/seccomp"
)

// defaultCaps are the capability sets of a container without --capability=
// or --drop-capability=: the default filters netspawn ships precompiled.
var defaultCaps = []uint64{config.DefaultCapabilities(false), config.DefaultCapabilities(true)}

// TestPrecompiledCurrent checks zprecompiled.go against the compiler;
// NETSPAWN_UPDATE_PRECOMPILED=1 (go generate ./spawn/seccomp) rewrites it.
func TestPrecompiledCurrent(t *testing.T) {
	src, err := seccomp.PrecompiledSource(defaultCaps)
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("NETSPAWN_UPDATE_PRECOMPILED") == "1" {
		if err := os.WriteFile("zprecompiled.go", []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	have, err := os.ReadFile("zprecompiled.go")
	if err != nil {
		t.Fatal(err)
	}
	if string(have) != src {
		t.Fatal("zprecompiled.go is out of date with the filter's compiler or the default capabilities: run go generate ./spawn/seccomp")
	}
}

// TestPrecompiledUsed checks Compile returns the precompiled program for a
// default filter, identical to a fresh compilation, and compiles anything
// else.
func TestPrecompiledUsed(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64"} {
		for _, caps := range defaultCaps {
			f := seccomp.Default(caps)
			got, err := f.Compile(arch)
			if err != nil {
				t.Fatal(err)
			}
			want, err := seccomp.CompileFresh(seccomp.Default(caps), arch)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s %#x: the precompiled program differs from the compiler's", arch, caps)
			}
		}
	}
	f := seccomp.Default(defaultCaps[0])
	if err := f.Apply("@clock"); err != nil {
		t.Fatal(err)
	}
	got, err := f.Compile("amd64")
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := seccomp.Default(defaultCaps[0]).Compile("amd64")
	if reflect.DeepEqual(got, plain) {
		t.Fatal("a filter with --system-call-filter=@clock got the default program")
	}
}
