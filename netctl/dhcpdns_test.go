package netctl_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netspawn/netspawn/netctl/api"
)

// TestDHCPAndDNSHooks checks netspawnd's wiring of the dhcp and dns
// packages: busybox udhcpc in a container gets the machine's reserved
// address, gateway and DNS server, and the name of another machine
// resolves through the gateway (steered by nftables to the one DNS socket
// on 127.0.0.153).
func TestDHCPAndDNSHooks(t *testing.T) {
	e := newEnv(t, "--domain", "test.internal")
	e.startDaemon()
	cl := e.client()
	a, b := e.container(), e.container()
	ra, err := cl.Register(context.Background(), api.RegisterRequest{Name: "a", Leader: a.pid, Boot: true, Network: api.NetworkRequest{Veth: true}})
	if err != nil {
		t.Fatal(err)
	}
	gw := ra.Interfaces[0].Gateway4
	if len(ra.DNS) != 1 || ra.DNS[0] != gw || len(ra.SearchDomains) != 1 || ra.SearchDomains[0] != "test.internal" {
		t.Fatalf("reply DNS %v search %v, want the gateway %s and test.internal", ra.DNS, ra.SearchDomains, gw)
	}
	script := filepath.Join(t.TempDir(), "udhcpc.sh")
	os.WriteFile(script, []byte("#!/bin/sh\n[ \"$1\" = bound ] && echo \"lease ip=$ip mask=$mask router=$router dns=$dns domain=$domain\"\nexit 0\n"), 0o755)
	a.mustRun(t, "ip", "link", "set", "host0", "up")
	out := a.mustRun(t, "timeout", "10", "busybox", "udhcpc", "-i", "host0", "-n", "-q", "-f", "-s", script)
	addr := strings.Split(ra.Interfaces[0].Addresses[0], "/")[0]
	want := "lease ip=" + addr + " mask=28 router=" + gw + " dns=" + gw + " domain=test.internal"
	if !strings.Contains(out, want) {
		t.Fatalf("udhcpc:\n%s\nwant %q", out, want)
	}

	rb := register(t, cl, "b", b)
	a.mustRun(t, "ip", "addr", "add", ra.Interfaces[0].Addresses[0], "dev", "host0")
	a.mustRun(t, "ip", "route", "add", "default", "via", gw)
	bAddr := strings.Split(rb.Interfaces[0].Addresses[0], "/")[0]
	for _, name := range []string{"b", "b.test.internal"} {
		out, err := a.run("timeout", "5", "busybox", "nslookup", name, gw)
		if err != nil || !strings.Contains(out, bAddr) {
			t.Fatalf("nslookup %s from a: %v\n%s", name, err, out)
		}
	}
	// The host asks the same server on its loopback address.
	if out, err := e.host.Run("timeout", "5", "busybox", "nslookup", "b", "127.0.0.153"); err != nil || !strings.Contains(out, bAddr) {
		t.Fatalf("nslookup b from the host: %v\n%s", err, out)
	}
	if !strings.Contains(e.nftTable(), "udp dport 53 dnat ip to 127.0.0.153:53") {
		t.Fatalf("no DNS steering rule:\n%s", e.nftTable())
	}
}
