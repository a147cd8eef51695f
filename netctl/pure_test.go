package netctl

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/netspawn/netspawn/netctl/api"
	"github.com/netspawn/netspawn/netctl/nft"
)

func TestParseStatStart(t *testing.T) {
	stat := "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0"
	st, err := parseStatStart([]byte(stat))
	if err != nil || st != 987654 {
		t.Fatalf("start %d %v", st, err)
	}
	for _, bad := range []string{"", "1 (x", "1 (x) S 1 2"} {
		if _, err := parseStatStart([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	self, err := ReadLeader(os.Getpid())
	if err != nil || self.Start == 0 {
		t.Fatalf("self: %+v %v", self, err)
	}
	if _, err := ReadLeader(0); err == nil {
		t.Fatal("PID 0 accepted")
	}
}

func TestHostResolversAndOSName(t *testing.T) {
	dir := t.TempDir()
	rc := filepath.Join(dir, "resolv.conf")
	os.WriteFile(rc, []byte("# x\nnameserver 127.0.0.53\nnameserver 10.0.0.1\nnameserver ::1\nnameserver fd00::1\nsearch lan\n"), 0o644)
	got := hostResolvers(rc)
	if len(got) != 2 || got[0].String() != "10.0.0.1" || got[1].String() != "fd00::1" {
		t.Fatalf("resolvers %v", got)
	}
	if got := hostResolvers(filepath.Join(dir, "none")); got == nil || len(got) != 0 {
		t.Fatalf("missing file: %v", got)
	}
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc/os-release"), []byte("ID=debian\nPRETTY_NAME=\"Debian 12\"\n"), 0o644)
	if n := osName(dir); n != "Debian 12" {
		t.Fatalf("os %q", n)
	}
	if n := osName(""); n != "" {
		t.Fatalf("os of empty root %q", n)
	}
}

func TestPhases(t *testing.T) {
	p := newPhases()
	p.last = p.last.Add(-time.Millisecond)
	p.mark("a")
	if s := p.String(); len(s) < 4 || s[:2] != "a=" {
		t.Fatalf("%q", s)
	}
}

func TestMachineIDFallback(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "id")
	os.WriteFile(p, []byte("3d1219c7c4c5404aaa1f6d2a48adfda4\n"), 0o644)
	id, err := machineID(Config{MachineIDPath: p, StateDir: dir})
	if err != nil || id[0] != 0x3d {
		t.Fatalf("%x %v", id, err)
	}
	if _, err := machineID(Config{MachineIDPath: filepath.Join(dir, "missing"), StateDir: dir}); err == nil {
		t.Fatal("an explicit missing file is an error")
	}
}

func TestForwardsTo(t *testing.T) {
	a := netip.MustParseAddr("10.0.0.2")
	got := forwardsTo([]api.Port{{HostPort: 8080, ContainerPort: 80}, {Protocol: "UDP", HostPort: 53}}, a)
	want := []nft.Forward{{Proto: "tcp", HostPort: 8080, Addr: a, Port: 80}, {Proto: "udp", HostPort: 53, Addr: a, Port: 53}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("forwardsTo = %+v, want %+v", got, want)
	}
}
