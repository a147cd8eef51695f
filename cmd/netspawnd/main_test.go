package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

func TestClusterConfig(t *testing.T) {
	cc, err := clusterConfig("http://10.0.0.5:2379, https://10.0.0.6:2379", "", "", "", "web-01", "10.0.0.21", "10.128.0.0/9", 5*time.Second)
	if err != nil || len(cc.Endpoints) != 2 || cc.Node != "web-01" || cc.Underlay.String() != "10.0.0.21" || len(cc.Pools) != 1 {
		t.Fatalf("good options: %+v %v", cc, err)
	}
	for _, bad := range []struct {
		endpoints, cert, key, node, addr, pools string
		ttl                                     time.Duration
	}{
		{endpoints: "10.0.0.5:2379"},            // no scheme
		{endpoints: "http://e:2379", cert: "c"}, // a certificate without its key
		{endpoints: "http://e:2379", node: "a/b"},
		{endpoints: "http://e:2379", addr: "fd00::1"},
		{endpoints: "http://e:2379", pools: "nonsense"},
		{endpoints: "http://e:2379", ttl: time.Second},
		{endpoints: " , "},
	} {
		pools, ttl := bad.pools, bad.ttl
		if pools == "" {
			pools = "10.128.0.0/9"
		}
		if ttl == 0 {
			ttl = 5 * time.Second
		}
		if _, err := clusterConfig(bad.endpoints, "", bad.cert, bad.key, bad.node, bad.addr, pools, ttl); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}

// The metrics options are checked, from the command line or the
// configuration file, before netspawnd does anything.
func TestMetricsOptions(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "netspawnd.conf")
	base := []string{"--runtime-dir", filepath.Join(dir, "run"), "--state-dir", filepath.Join(dir, "state"), "--config", conf}
	for _, c := range []struct {
		conf string
		args []string
		want string
	}{
		{"metrics-listen=192.0.2.1:9153\n", nil, "--metrics-public"},
		{"metrics-listen=0.0.0.0:9153\n", nil, "not a loopback address"},
		{"", []string{"--metrics-listen", ":9153"}, "--metrics-public"},
		{"", []string{"--metrics-listen", "unix:relative.sock"}, "unix:/ABSOLUTE/PATH"},
		{"metrics-public=true\n", nil, "needs --metrics-listen"},
	} {
		if err := os.WriteFile(conf, []byte(c.conf), 0o644); err != nil {
			t.Fatal(err)
		}
		err := run(append(append([]string(nil), base...), c.args...))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("config %q, args %q: %v, want an error with %q", c.conf, c.args, err, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "run")); err == nil {
		t.Error("the runtime dir was made before the options were checked")
	}
}

func TestCgroupSweepInterval(t *testing.T) {
	err := run([]string{"--config", "/dev/null", "--cgroup-sweep-interval", "-1s"})
	if err == nil || !strings.Contains(err.Error(), "--cgroup-sweep-interval -1s: cannot be negative") {
		t.Fatalf("a negative interval: %v", err)
	}
}
