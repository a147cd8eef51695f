package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseProperties(t *testing.T) {
	l, err := ParseProperties([]string{"MemoryMax=2G", "MemoryHigh=1G", "CPUQuota=200%", "TasksMax=512", "CPUWeight=50"})
	if err != nil {
		t.Fatal(err)
	}
	wantV2 := map[string]string{
		"memory.max": "2147483648", "memory.high": "1073741824", "cpu.max": "200000 100000",
		"pids.max": "512", "cpu.weight": "50",
	}
	if got := l.V2Files(); !reflect.DeepEqual(got, wantV2) {
		t.Errorf("v2: %v, want %v", got, wantV2)
	}
	wantV1 := map[string]map[string]string{
		"memory": {"memory.limit_in_bytes": "2147483648", "memory.soft_limit_in_bytes": "1073741824"},
		"cpu":    {"cpu.cfs_quota_us": "200000", "cpu.cfs_period_us": "100000", "cpu.shares": "512"},
		"pids":   {"pids.max": "512"},
	}
	if got := l.V1Files(); !reflect.DeepEqual(got, wantV1) {
		t.Errorf("v1: %v, want %v", got, wantV1)
	}
	l, _ = ParseProperties([]string{"MemoryMax=256M", "MemoryMax=infinity", "TasksMax=infinity"})
	if got := l.V2Files(); got["memory.max"] != "max" || got["pids.max"] != "max" {
		t.Errorf("infinity: %v", got)
	}
	if got := l.V1Files(); got["memory"]["memory.limit_in_bytes"] != "-1" {
		t.Errorf("v1 infinity: %v", got)
	}
	for _, bad := range []string{"MemoryMax=lots", "CPUQuota=2", "TasksMax=0", "Bogus=1", "MemoryMax", "CPUWeight=0", "MemoryMax=150%"} {
		if _, err := ParseProperties([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		} else if !strings.Contains(err.Error(), strings.SplitN(bad, "=", 2)[0]) {
			t.Errorf("%q: error %q does not name the property", bad, err)
		}
	}
}

func TestSaveProperties(t *testing.T) {
	dir := t.TempDir()
	if err := SaveProperties(dir, "web", []string{"MemoryMax=1G", "TasksMax=10"}); err != nil {
		t.Fatal(err)
	}
	if err := SaveProperties(dir, "web", []string{"MemoryMax=2G"}); err != nil {
		t.Fatal(err)
	}
	got, err := LoadProperties(dir, "web")
	if err != nil || !reflect.DeepEqual(got, []string{"MemoryMax=2G", "TasksMax=10"}) {
		t.Fatalf("loaded %v, %v", got, err)
	}
}
