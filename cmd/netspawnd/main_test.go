package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestConfigFile(t *testing.T) {
	mk := func() (*pflag.FlagSet, *string, *string) {
		fl := pflag.NewFlagSet("t", pflag.ContinueOnError)
		return fl, fl.String("pools", "default", ""), fl.String("log-level", "info", "")
	}
	// The shipped example parses.
	fl, _, _ := mk()
	fl.String("dns", "", "")
	fl.String("domain", "", "")
	fl.String("runtime-dir", "", "")
	fl.String("state-dir", "", "")
	if err := applyConfigFile(fl, "../../configs/netspawnd.conf", true); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "c.conf")
	os.WriteFile(p, []byte("# c\npools = 10.0.0.0/8\nlog-level=\"debug\"\n"), 0o644)
	fl, pools, lvl := mk()
	fl.Parse([]string{"--log-level", "warn"})
	if err := applyConfigFile(fl, p, true); err != nil {
		t.Fatal(err)
	}
	if *pools != "10.0.0.0/8" || *lvl != "warn" {
		t.Fatalf("pools %q level %q (command line must win)", *pools, *lvl)
	}
	os.WriteFile(p, []byte("bogus=1\n"), 0o644)
	fl, _, _ = mk()
	if err := applyConfigFile(fl, p, true); err == nil || !strings.Contains(err.Error(), "unknown key") {
		t.Fatalf("unknown key: %v", err)
	}
	if err := applyConfigFile(fl, filepath.Join(dir, "missing"), false); err != nil {
		t.Fatalf("optional missing file: %v", err)
	}
	if err := applyConfigFile(fl, filepath.Join(dir, "missing"), true); err == nil {
		t.Fatal("explicit missing file accepted")
	}
}
