package doctor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netspawn/netspawn/internal/neightable"
)

func write(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCheckNsswitch(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ content, status, detail string }{
		{"passwd: files\nhosts: files netspawn dns\n", "OK", "hosts: files netspawn dns"},
		{"hosts: files dns netspawn # late\n", "WARN", "after dns"},
		{"hosts: files dns\n", "WARN", "lacks netspawn"},
		{"# hosts: files netspawn\npasswd: files\n", "WARN", "no hosts: line"},
	}
	for i, c := range cases {
		p := filepath.Join(dir, "nsswitch"+string(rune('a'+i)))
		write(t, p, c.content)
		got := checkNsswitch(p)
		if got.Status != c.status || !strings.Contains(got.Detail, c.detail) {
			t.Errorf("%q: %+v, want %s with %q", c.content, got, c.status, c.detail)
		}
		if got.Status != "OK" && got.Fix == "" {
			t.Errorf("%q: no fix given", c.content)
		}
	}
	if got := checkNsswitch(filepath.Join(dir, "none")); got.Status != "WARN" || !strings.Contains(got.Detail, "cannot read") {
		t.Errorf("missing file: %+v", got)
	}
}

func TestCheckModule(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	if got := checkModule([]string{a, b}); got.Status != "WARN" {
		t.Errorf("no module: %+v", got)
	}
	write(t, filepath.Join(b, "libnss_netspawn.so.2"), "")
	if got := checkModule([]string{a, b}); got.Status != "OK" || got.Detail != filepath.Join(b, "libnss_netspawn.so.2") {
		t.Errorf("module in %s: %+v", b, got)
	}
}

// fakeHost is a /proc and /sys with forwarding off, br_netfilter on, veth
// loaded, macvlan built in (a kallsyms symbol) and a pure cgroup v2.
func fakeHost(t *testing.T) Paths {
	root := t.TempDir()
	p := Paths{NSSwitch: filepath.Join(root, "nsswitch.conf"), NSSDirs: []string{root}, RuntimeDir: filepath.Join(root, "run"),
		Proc: filepath.Join(root, "proc"), Sys: filepath.Join(root, "sys"), Modules: filepath.Join(root, "modules")}
	write(t, p.NSSwitch, "hosts: files netspawn dns\n")
	write(t, filepath.Join(p.Proc, "sys/net/ipv4/ip_forward"), "0\n")
	write(t, filepath.Join(p.Proc, "sys/net/ipv6/conf/all/forwarding"), "1\n")
	write(t, filepath.Join(p.Proc, "sys/net/bridge/bridge-nf-call-iptables"), "1\n")
	write(t, filepath.Join(p.Proc, "sys/user/max_user_namespaces"), "63000\n")
	write(t, filepath.Join(p.Proc, "kallsyms"), "ffffffff81000000 T macvlan_start_xmit\nffffffff81000010 t other\n")
	write(t, filepath.Join(p.Proc, "filesystems"), "nodev\tsysfs\nnodev\toverlay\n")
	write(t, filepath.Join(p.Sys, "module/veth/refcnt"), "0\n")
	write(t, filepath.Join(p.Sys, "fs/cgroup/cgroup.controllers"), "cpu memory pids\n")
	return p
}

func TestRun(t *testing.T) {
	p := fakeHost(t)
	got := map[string]Check{}
	for _, c := range Run(context.Background(), p) {
		if _, seen := got[c.Name]; !seen {
			got[c.Name] = c
		}
	}
	want := map[string]string{
		"IPv4 forwarding": "WARN", "IPv6 forwarding": "OK", "nsswitch.conf": "OK", "NSS module": "WARN",
		"netspawnd": "WARN", "NSS socket": "WARN", "veth": "OK", "macvlan": "OK", "overlayfs": "OK",
		"user namespaces": "OK", "cgroup version": "OK", "nf_tables": "WARN",
	}
	for name, status := range want {
		if c, ok := got[name]; !ok || c.Status != status {
			t.Errorf("%s: %+v, want %s", name, c, status)
		}
	}
	if c := got["IPv4 forwarding"]; c.Fix != "sysctl -w net.ipv4.ip_forward=1" {
		t.Errorf("forwarding fix: %q", c.Fix)
	}
	if c := got["cgroup version"]; c.Detail != "v2 (unified)" {
		t.Errorf("cgroup: %+v", c)
	}
	var b strings.Builder
	Print(&b, Run(context.Background(), p))
	if !strings.Contains(b.String(), "fix: sysctl -w net.ipv4.ip_forward=1") {
		t.Errorf("table lacks the fix:\n%s", b.String())
	}
}

func TestCgroupLayouts(t *testing.T) {
	p := fakeHost(t)
	os.Remove(filepath.Join(p.Sys, "fs/cgroup/cgroup.controllers"))
	write(t, filepath.Join(p.Sys, "fs/cgroup/unified/cgroup.procs"), "")
	for _, c := range Run(context.Background(), p) {
		if c.Name == "cgroup version" && (c.Status != "WARN" || !strings.Contains(c.Detail, "hybrid")) {
			t.Errorf("hybrid: %+v", c)
		}
	}
}

// TestCheckModuleKernel: a feature neither loaded nor in the module index
// fails where the index exists, and is "cannot tell" where it does not (a
// container has no /lib/modules of its host's kernel).
func TestCheckModuleKernel(t *testing.T) {
	p := fakeHost(t)
	if c := checkModuleKernel(p, "6.1.0", "nf_tables", "nf_tables", "FAIL", "NAT"); c.Status != "WARN" || !strings.Contains(c.Detail, "cannot tell") {
		t.Errorf("without a module index: %+v", c)
	}
	write(t, filepath.Join(p.Modules, "6.1.0", "modules.dep"), "kernel/net/bridge/bridge.ko:\n")
	if c := checkModuleKernel(p, "6.1.0", "nf_tables", "nf_tables", "FAIL", "NAT"); c.Status != "FAIL" {
		t.Errorf("absent from the module index: %+v", c)
	}
	if c := checkModuleKernel(p, "6.1.0", "bridge", "bridge", "WARN", "bridges"); c.Status != "OK" || c.Detail != "available as a module" {
		t.Errorf("in the module index: %+v", c)
	}
	if c := checkModuleKernel(p, "6.1.0", "veth", "veth", "FAIL", "-n"); c.Status != "OK" || c.Detail != "loaded" {
		t.Errorf("loaded: %+v", c)
	}
}

func TestNeighTable(t *testing.T) {
	arp := neightable.Tables[0]
	c := neighCheck(arp, neightable.Stat{Entries: 1024, Fulls: 5998, Limit: 1024})
	if c.Status != "WARN" || !strings.Contains(c.Detail, "found full 5998 times") || !strings.Contains(c.Fix, "gc_thresh3=8192") {
		t.Fatalf("full table: %+v", c)
	}
	if c := neighCheck(arp, neightable.Stat{Entries: 800, Limit: 1024}); c.Status != "WARN" {
		t.Fatalf("800 of 1024: %+v", c)
	}
	if c := neighCheck(arp, neightable.Stat{Entries: 12, Limit: 1024}); c.Status != "OK" {
		t.Fatalf("12 of 1024: %+v", c)
	}
	// A procfs without the tables (a container's network namespace).
	for _, c := range checkNeigh(Paths{Proc: t.TempDir()}) {
		if c.Status != "OK" || !strings.Contains(c.Detail, "not visible") {
			t.Errorf("without the tables: %+v", c)
		}
	}
}
