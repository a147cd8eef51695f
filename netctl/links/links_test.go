package links

import (
	"os"
	"slices"
	"testing"

	"github.com/netspawn/netspawn/netctl/internal/nstest"
)

func TestIsTempName(t *testing.T) {
	for n, want := range map[string]bool{
		tempName():        true,
		"nsp0123456789ab": true,
		"nsp0123456789a":  false, // too short
		"nsp0123456789ag": false, // not hex
		"ve-web":          false,
		"nspweb":          false,
	} {
		if got := isTempName(n); got != want {
			t.Errorf("isTempName(%q) = %v, want %v", n, got, want)
		}
	}
}

func openNS(t *testing.T, ns *nstest.NetNS) int {
	t.Helper()
	f, err := os.Open(ns.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return int(f.Fd())
}

// A netspawnd killed between creating a pair under its temporary name and
// naming it leaves the pair: the next netspawnd lists the host half as its
// own, and a retry of the same machine's start meets the old peer in the
// container and replaces it instead of failing with "file exists".
func TestKilledBeforeNaming(t *testing.T) {
	nstest.RequireRoot(t)
	host, ctr := nstest.New(t, "kbnh"), nstest.New(t, "kbnc")
	hostFD, ctrFD := openNS(t, host), openNS(t, ctr)
	const stale = "nsp00112233aabb"
	host.MustRun(t, "ip", "link", "add", stale, "type", "veth", "peer", "name", "host0", "netns", ctr.Name)
	host.MustRun(t, "ip", "link", "add", "nsp99887766ccdd", "type", "veth", "peer", "name", "other0")

	h, err := NewAt(hostFD)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	names, err := h.MarkedNames()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(names, stale) || !slices.Contains(names, "nsp99887766ccdd") {
		t.Errorf("MarkedNames = %v, want the links under temporary names", names)
	}
	if _, err := h.AddVeth(Veth{HostName: "ve-kbn", Marked: true, PeerName: "host0", PeerNetNS: ctrFD}); err != nil {
		t.Fatalf("retry after a killed netspawnd: %v", err)
	}
	if _, ok, _ := h.Get(stale); ok {
		t.Errorf("the stale pair %s is still there", stale)
	}
	if _, ok, _ := h.Get("ve-kbn"); !ok {
		t.Error("ve-kbn was not made")
	}
	// A host name that is taken is still an error, and says so.
	_, err = h.AddVeth(Veth{HostName: "ve-kbn", PeerName: "host1", PeerNetNS: ctrFD})
	if err == nil {
		t.Fatal("a second ve-kbn was made")
	}
	t.Log(err)
}
