package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/miekg/dns"
	dto "github.com/prometheus/client_model/go"

	"github.com/netspawn/netspawn/dhcp"
	"github.com/netspawn/netspawn/dhcp/lease"
)

// value finds one series of a gathered family by its labels; ok is false
// when there is none.
func value(t *testing.T, m *Metrics, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	series:
		for _, s := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range s.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue series
				}
			}
			return metricValue(s), true
		}
	}
	return 0, false
}

func metricValue(s *dto.Metric) float64 {
	switch {
	case s.Counter != nil:
		return s.Counter.GetValue()
	case s.Gauge != nil:
		return s.Gauge.GetValue()
	case s.Histogram != nil:
		return float64(s.Histogram.GetSampleCount())
	}
	return 0
}

func want(t *testing.T, m *Metrics, name string, labels map[string]string, v float64) {
	t.Helper()
	got, ok := value(t, m, name, labels)
	if !ok || got != v {
		t.Errorf("%s%v = %v (present %v), want %v", name, labels, got, ok, v)
	}
}

func TestDNSObserver(t *testing.T) {
	m := New()
	o := m.DNS()
	o.Query(dns.TypeA, dns.RcodeSuccess)
	o.Query(dns.TypeA, dns.RcodeSuccess)
	o.Query(dns.TypeAAAA, dns.RcodeNameError)
	o.Query(0, dns.RcodeFormatError)
	o.Query(dns.TypeNULL, 11) // a type and an rcode without names of their own
	o.Query(dns.TypePTR, dns.RcodeBadVers)
	want(t, m, "netspawn_dns_queries_total", map[string]string{"type": "A", "rcode": "NOERROR"}, 2)
	want(t, m, "netspawn_dns_queries_total", map[string]string{"type": "AAAA", "rcode": "NXDOMAIN"}, 1)
	want(t, m, "netspawn_dns_queries_total", map[string]string{"type": "other", "rcode": "FORMERR"}, 1)
	want(t, m, "netspawn_dns_queries_total", map[string]string{"type": "other", "rcode": "other"}, 1)
	want(t, m, "netspawn_dns_queries_total", map[string]string{"type": "PTR", "rcode": "BADVERS"}, 1)
	if _, ok := value(t, m, "netspawn_dns_queries_total", map[string]string{"type": "MX"}); ok {
		t.Error("a series for a type never seen")
	}
	o.Upstream(3*time.Millisecond, dns.RcodeSuccess, nil)
	o.Upstream(time.Millisecond, dns.RcodeNameError, nil)
	o.Upstream(2*time.Second, -1, errors.New("timeout"))
	o.Upstream(time.Millisecond, dns.RcodeServerFailure, nil)
	want(t, m, "netspawn_dns_upstream_duration_seconds", map[string]string{"result": "answer"}, 2)
	want(t, m, "netspawn_dns_upstream_duration_seconds", map[string]string{"result": "error"}, 1)
	want(t, m, "netspawn_dns_upstream_duration_seconds", map[string]string{"result": "servfail"}, 1)
	want(t, m, "netspawn_dns_upstream_duration_seconds", map[string]string{"result": "refused"}, 0)
}

func TestDHCPObserver(t *testing.T) {
	m := New()
	o := m.DHCP()
	l := o.Link("ve-web")
	l.Packet(dhcpv4.MessageTypeDiscover, dhcp.OutcomeOffer)
	l.Packet(dhcpv4.MessageTypeRequest, dhcp.OutcomeAck)
	l.Packet(dhcpv4.MessageTypeRequest, dhcp.OutcomeAck)
	l.Packet(dhcpv4.MessageTypeNone, dhcp.OutcomeDropped)
	l.Packet(dhcpv4.MessageTypeRelease, dhcp.OutcomeNoReply)
	l.Packet(dhcpv4.MessageTypeDiscover, dhcp.NumOutcomes) // ignored
	o.Link("ve-db").Packet(dhcpv4.MessageTypeRequest, dhcp.OutcomeNak)
	lbl := func(link, typ, out string) map[string]string {
		return map[string]string{"link": link, "type": typ, "outcome": out}
	}
	want(t, m, "netspawn_dhcp_packets_total", lbl("ve-web", "discover", "offer"), 1)
	want(t, m, "netspawn_dhcp_packets_total", lbl("ve-web", "request", "ack"), 2)
	want(t, m, "netspawn_dhcp_packets_total", lbl("ve-web", "other", "dropped"), 1)
	want(t, m, "netspawn_dhcp_packets_total", lbl("ve-web", "release", "noreply"), 1)
	want(t, m, "netspawn_dhcp_packets_total", lbl("ve-db", "request", "nak"), 1)
	o.LinkRemoved("ve-web")
	if _, ok := value(t, m, "netspawn_dhcp_packets_total", map[string]string{"link": "ve-web"}); ok {
		t.Error("a removed link's series are still there")
	}
	want(t, m, "netspawn_dhcp_packets_total", lbl("ve-db", "request", "nak"), 1)
	// A packet of the removed link still in flight does not bring it back.
	l.Packet(dhcpv4.MessageTypeInform, dhcp.OutcomeAck)
	if _, ok := value(t, m, "netspawn_dhcp_packets_total", map[string]string{"link": "ve-web"}); ok {
		t.Error("a removed link's late packet made a series")
	}
	// Served again: counted again, from zero.
	o.Link("ve-web").Packet(dhcpv4.MessageTypeDiscover, dhcp.OutcomeOffer)
	want(t, m, "netspawn_dhcp_packets_total", lbl("ve-web", "discover", "offer"), 1)
}

func TestControllerObserverAndGauges(t *testing.T) {
	m := New()
	m.NFT("add", nil)
	m.NFT("add", errors.New("EEXIST"))
	m.NFT("delete", nil)
	m.APICall("register", 20*time.Millisecond, nil)
	m.APICall("register", time.Millisecond, errors.New("no"))
	m.APICall("list", time.Millisecond, nil)
	want(t, m, "netspawn_nft_transactions_total", map[string]string{"op": "add"}, 2)
	want(t, m, "netspawn_nft_errors_total", map[string]string{"op": "add"}, 1)
	want(t, m, "netspawn_nft_transactions_total", map[string]string{"op": "delete"}, 1)
	want(t, m, "netspawn_api_requests_total", map[string]string{"method": "register", "result": "ok"}, 1)
	want(t, m, "netspawn_api_requests_total", map[string]string{"method": "register", "result": "error"}, 1)
	want(t, m, "netspawn_api_request_duration_seconds", map[string]string{"method": "register"}, 2)

	if _, ok := value(t, m, "netspawn_machines", nil); ok {
		t.Error("gauges before SetSources")
	}
	m.SetSources(Sources{
		Machines: func() map[string]int { return map[string]int{"running": 3} },
		Links:    func() map[string]int { return map[string]int{"veth": 3, "moved": 1} },
		Leases: func() []dhcp.Lease {
			return []dhcp.Lease{{Link: "ve-a", State: lease.Bound}, {Link: "ve-a", State: lease.Bound}, {Link: "ve-b", State: lease.Released}}
		},
	})
	want(t, m, "netspawn_machines", map[string]string{"state": "running"}, 3)
	want(t, m, "netspawn_links", map[string]string{"kind": "veth"}, 3)
	want(t, m, "netspawn_links", map[string]string{"kind": "moved"}, 1)
	want(t, m, "netspawn_dhcp_leases", map[string]string{"link": "ve-a", "state": lease.Bound.String()}, 2)
	want(t, m, "netspawn_dhcp_leases", map[string]string{"link": "ve-b", "state": lease.Released.String()}, 1)
}

// The per-packet observers allocate nothing once a series exists.
func TestObserversDoNotAllocate(t *testing.T) {
	m := New()
	d := m.DNS()
	d.Query(dns.TypeA, dns.RcodeSuccess)
	if n := testing.AllocsPerRun(1000, func() { d.Query(dns.TypeA, dns.RcodeSuccess) }); n != 0 {
		t.Errorf("DNS Query allocates %v times", n)
	}
	if n := testing.AllocsPerRun(1000, func() { d.Upstream(time.Millisecond, 0, nil) }); n != 0 {
		t.Errorf("DNS Upstream allocates %v times", n)
	}
	l := m.DHCP().Link("ve-x")
	l.Packet(dhcpv4.MessageTypeDiscover, dhcp.OutcomeOffer)
	if n := testing.AllocsPerRun(1000, func() { l.Packet(dhcpv4.MessageTypeDiscover, dhcp.OutcomeOffer) }); n != 0 {
		t.Errorf("DHCP Packet allocates %v times", n)
	}
}

func TestParseEndpoint(t *testing.T) {
	for _, c := range []struct {
		in      string
		public  bool
		network string
		err     string
	}{
		{"127.0.0.1:9153", false, "tcp", ""},
		{"[::1]:9153", false, "tcp", ""},
		{"localhost:9153", false, "tcp", ""},
		{"127.0.0.53:0", false, "tcp", ""},
		{"unix:/run/netspawn/metrics.sock", false, "unix", ""},
		{"unix:metrics.sock", false, "", "ABSOLUTE"},
		{"0.0.0.0:9153", false, "", "--metrics-public"},
		{":9153", false, "", "--metrics-public"},
		{"192.0.2.1:9153", false, "", "not a loopback"},
		{"192.0.2.1:9153", true, "tcp", ""},
		{":9153", true, "tcp", ""},
		{"example.com:9153", true, "", "not an IP address"},
		{"127.0.0.1", false, "", "HOST:PORT"},
		{"127.0.0.1:http-alt-nope", false, "", "bad port"},
	} {
		ep, err := ParseEndpoint(c.in, c.public)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseEndpoint(%q, %v) = %v, %v; want error with %q", c.in, c.public, ep, err, c.err)
			}
			continue
		}
		if err != nil || ep.Network != c.network {
			t.Errorf("ParseEndpoint(%q, %v) = %v, %v; want %s", c.in, c.public, ep, err, c.network)
		}
	}
}

// Scraped over a Unix socket, the way a local agent would.
func TestServeUnix(t *testing.T) {
	m := New()
	m.DNS().Query(dns.TypeA, dns.RcodeSuccess)
	sock := filepath.Join(t.TempDir(), "metrics.sock")
	ln, err := Listen(Endpoint{Network: "unix", Address: sock})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx, ln, slog.Default()) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}, Timeout: 10 * time.Second}
	resp, err := c.Get("http://netspawnd/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, s := range []string{`netspawn_dns_queries_total{rcode="NOERROR",type="A"} 1`, "go_goroutines", "process_start_time_seconds"} {
		if !strings.Contains(string(b), s) {
			t.Errorf("/metrics lacks %q:\n%s", s, b)
		}
	}
}

func TestServeTCP(t *testing.T) {
	m := New()
	ln, err := Listen(Endpoint{Network: "tcp", Address: netip.MustParseAddrPort("127.0.0.1:0").String()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx, ln, slog.Default()) }()
	defer func() { cancel(); <-done }()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "/metrics") {
		t.Errorf("/ says %q", b)
	}
	resp, err = (&http.Client{Timeout: 10 * time.Second}).Get("http://" + ln.Addr().String() + "/nothing")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/nothing: %s", resp.Status)
	}
}

func BenchmarkDNSQuery(b *testing.B) {
	d := New().DNS()
	b.ReportAllocs()
	for b.Loop() {
		d.Query(dns.TypeAAAA, dns.RcodeSuccess)
	}
}

func BenchmarkDHCPPacket(b *testing.B) {
	l := New().DHCP().Link("ve-x")
	b.ReportAllocs()
	for b.Loop() {
		l.Packet(dhcpv4.MessageTypeRequest, dhcp.OutcomeAck)
	}
}
