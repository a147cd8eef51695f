package links

import (
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/netspawn/netspawn/netctl/internal/nstest"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
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

// The life of a container's links, as netspawnd drives it: a marked veth
// pair, a bridge it joins, the addresses that block subnets, and deletion.
func TestLinkLifecycle(t *testing.T) {
	nstest.RequireRoot(t)
	host, ctr := nstest.New(t, "lifeh"), nstest.New(t, "lifec")
	hostFD, ctrFD := openNS(t, host), openNS(t, ctr)
	h, err := NewAt(hostFD)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()

	idx, err := h.AddVeth(Veth{HostName: "ve-life", HostAltName: "ve-life-alt", Marked: true, PeerName: "host0", PeerNetNS: ctrFD, MTU: 1400})
	if err != nil {
		t.Fatal(err)
	}
	l, ok, err := h.Get("ve-life")
	if err != nil || !ok || l.Index != idx || l.Kind != "veth" || !l.Marked || l.Up {
		t.Fatalf("Get(ve-life) = %+v %v %v", l, ok, err)
	}
	if out, _ := ctr.Run("ip", "-o", "link", "show", "host0"); !strings.Contains(out, "mtu 1400") {
		t.Errorf("host0 in the container: %q", out)
	}
	if out, _ := host.Run("ip", "-o", "link", "show", "ve-life"); !strings.Contains(out, "altname "+Mark("ve-life")) || !strings.Contains(out, "altname ve-life-alt") {
		t.Errorf("altnames: %q", out)
	}
	if names, _ := h.MarkedNames(); !slices.Contains(names, "ve-life") {
		t.Errorf("MarkedNames = %v", names)
	}

	if made, err := h.EnsureBridge("vz-life"); err != nil || !made {
		t.Fatalf("EnsureBridge: %v %v", made, err)
	}
	if made, err := h.EnsureBridge("vz-life"); err != nil || made {
		t.Fatalf("EnsureBridge again: %v %v", made, err)
	}
	if _, err := h.EnsureBridge("ve-life"); err == nil {
		t.Error("EnsureBridge over a veth worked")
	}
	if err := h.Enslave("ve-life", "vz-life"); err != nil {
		t.Fatal(err)
	}
	if b, err := h.GetBridge("vz-life"); err != nil || b.Ports != 1 {
		t.Errorf("GetBridge = %+v %v", b, err)
	}
	if _, err := h.GetBridge("nothere"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("GetBridge(nothere): %v", err)
	}
	if _, err := h.GetBridge("ve-life"); err == nil || !strings.Contains(err.Error(), "not a bridge") {
		t.Errorf("GetBridge(ve-life): %v", err)
	}

	host.MustRun(t, "ip", "addr", "add", "10.77.0.1/24", "dev", "vz-life")
	host.MustRun(t, "ip", "link", "set", "vz-life", "up")
	inUse, err := h.InUse(nil)
	if err != nil || !slices.Contains(inUse, netip.MustParsePrefix("10.77.0.0/24")) {
		t.Errorf("InUse = %v %v", inUse, err)
	}
	br, _, _ := h.Get("vz-life")
	if skipped, _ := h.InUse(func(i int) bool { return i == br.Index }); slices.Contains(skipped, netip.MustParsePrefix("10.77.0.0/24")) {
		t.Errorf("InUse did not skip the bridge: %v", skipped)
	}

	if err := h.Delete("ve-life"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := h.Get("ve-life"); ok {
		t.Error("ve-life still there")
	}
	if out, err := ctr.Run("ip", "link", "show", "host0"); err == nil {
		t.Errorf("host0 outlived its pair: %q", out)
	}
	if err := h.Delete("ve-life"); err != nil {
		t.Errorf("deleting a link already gone: %v", err)
	}
}

// RenameAway frees a link that is up, as a deleted machine's is: its
// alternative names and its name are free for a new link at once, and it is
// listed under its temporary name until it is deleted.
func TestRenameAway(t *testing.T) {
	nstest.RequireRoot(t)
	host, ctr := nstest.New(t, "rnah"), nstest.New(t, "rnac")
	hostFD, ctrFD := openNS(t, host), openNS(t, ctr)
	h, err := NewAt(hostFD)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	veth := Veth{HostName: "ve-rna", HostAltName: "ve-rna-longer-name", Marked: true, PeerName: "host0", PeerNetNS: ctrFD}
	if _, err := h.AddVeth(veth); err != nil {
		t.Fatal(err)
	}
	host.MustRun(t, "ip", "addr", "add", "10.78.0.1/28", "dev", "ve-rna")
	host.MustRun(t, "ip", "link", "set", "ve-rna", "up")
	ctr.MustRun(t, "ip", "link", "set", "host0", "up")

	tmp, err := h.RenameAway("ve-rna")
	if err != nil {
		t.Fatal(err)
	}
	if !isTempName(tmp) {
		t.Errorf("RenameAway gave %q, not a temporary name", tmp)
	}
	if _, ok, err := h.Get(tmp); err != nil || !ok {
		t.Fatalf("Get(%s) = %v %v", tmp, ok, err)
	}
	if out := host.MustRun(t, "ip", "-o", "link", "show", tmp); strings.Contains(out, "altname") {
		t.Errorf("alternative names left: %q", out)
	}
	if names, _ := h.MarkedNames(); !slices.Contains(names, tmp) {
		t.Errorf("MarkedNames = %v, want %s (deleted by the next netspawnd if this one dies)", names, tmp)
	}
	// The names are free at once: a new pair takes them while the old one
	// still exists (its peer is still host0 in the old container).
	ctr2 := nstest.New(t, "rnad")
	veth.PeerNetNS = openNS(t, ctr2)
	if _, err := h.AddVeth(veth); err != nil {
		t.Fatalf("a new ve-rna while the old one waits to be deleted: %v", err)
	}
	if err := h.Delete(tmp); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := h.Get("ve-rna"); !ok {
		t.Error("deleting the old link took the new one")
	}
}

// The live view of prefixes has every route and address added before it is
// read, however soon after: a subnet is never handed out over a route the
// administrator added just before a container started.
func TestPrefixesSeeWhatWasAddedBefore(t *testing.T) {
	nstest.RequireRoot(t)
	host := nstest.New(t, "pfxh")
	fd := openNS(t, host)
	h, err := NewAt(fd)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var p *Prefixes
	if err := inNetNS(fd, func() error {
		var err error
		p, err = h.WatchPrefixes()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	host.MustRun(t, "ip", "link", "add", "lan0", "type", "veth", "peer", "name", "lan1")
	host.MustRun(t, "ip", "link", "set", "lan0", "up")
	host.MustRun(t, "ip", "addr", "add", "10.200.0.1/24", "dev", "lan0")
	c, err := h.h.LinkByName("lan0")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		dst := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 201, byte(i), 0}), 24)
		// Through a netlink request of another socket, as ip(8) would.
		r := &netlink.Route{LinkIndex: c.Attrs().Index, Dst: &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(24, 32)}}
		if err := h.h.RouteAdd(r); err != nil {
			t.Fatal(err)
		}
		got, ok := p.InUse(nil)
		if !ok {
			t.Fatalf("round %d: the view counts as incomplete", i)
		}
		if !slices.Contains(got, dst) {
			t.Fatalf("round %d: %s, added just before, is not in the view", i, dst)
		}
		if err := h.h.RouteDel(r); err != nil {
			t.Fatal(err)
		}
		if got, _ := p.InUse(nil); slices.Contains(got, dst) {
			t.Fatalf("round %d: %s, deleted just before, is still in the view", i, dst)
		}
	}
	if got, _ := p.InUse(nil); !slices.Contains(got, netip.MustParsePrefix("10.200.0.0/24")) {
		t.Errorf("the address's prefix is missing: %v", got)
	}
}

// inNetNS runs fn on a thread inside the network namespace nsFD (sockets it
// opens belong there), then takes the thread back to its own namespace.
func inNetNS(nsFD int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer own.Close()
		if err := unix.Setns(nsFD, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		ferr := fn()
		if err := unix.Setns(int(own.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err // the thread stays locked and ends with this goroutine
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
