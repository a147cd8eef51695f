package test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/netspawn/netspawn/internal/testutil"
	"github.com/netspawn/netspawn/test/harness"
)

// scrapeUnix gets /metrics over a Unix socket and parses it.
func scrapeUnix(t *testing.T, sock string) map[string]*dto.MetricFamily {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	resp, err := c.Get("http://netspawnd/metrics")
	if err != nil {
		t.Fatalf("scraping %s: %v", sock, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scraping %s: %s", sock, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// sample is the value of the series of family name whose labels include
// labels (a histogram's value is its count); ok is false when none has.
func sample(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
series:
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if got[k] != v {
				continue series
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// seriesOf lists a family's series, for failure messages.
func seriesOf(fams map[string]*dto.MetricFamily, name string) string {
	f := fams[name]
	if f == nil {
		return name + ": no such family"
	}
	var out []string
	for _, m := range f.GetMetric() {
		var ls []string
		for _, l := range m.GetLabel() {
			ls = append(ls, l.GetName()+"="+l.GetValue())
		}
		v, _ := sample(map[string]*dto.MetricFamily{name: {Metric: []*dto.Metric{m}}}, name, nil)
		out = append(out, fmt.Sprintf("{%s} %v", strings.Join(ls, ","), v))
	}
	sort.Strings(out)
	return name + ": " + strings.Join(out, " ")
}

// TestMetrics scrapes netspawnd's metrics (over a Unix socket) after a
// machine got a DHCP lease and the host asked DNS questions: every family
// the docs list is there with the traffic counted.
func TestMetrics(t *testing.T) {
	w := newWorld(t)
	w.withUpstream(t)
	harness.RequireTool(t, "dig")
	sock := filepath.Join(t.TempDir(), "metrics.sock")
	logs := w.StartNetspawnd("--metrics-listen", "unix:"+sock)
	// DHCP: udhcpc in the container asks for a lease (DISCOVER,
	// REQUEST); the scrapes below wait for it.
	w.startContainer(t, "metweb", "sh", "-c", "udhcpc -i host0 -n -q -s /bin/true -t 5; sleep 1000")
	// DNS from the host: a machine, an unknown name under the domain,
	// and a name the upstream answers (forwarded).
	dig := func(args ...string) string {
		out, _ := w.NS.Command("dig", append([]string{"@127.0.0.153", "+time=2", "+tries=1"}, args...)...).Output()
		return string(out)
	}
	if out := dig("metweb"); !strings.Contains(out, "status: NOERROR") {
		t.Fatalf("dig metweb:\n%s", out)
	}
	if out := dig("nosuch.netspawn.internal"); !strings.Contains(out, "status: NXDOMAIN") {
		t.Fatalf("dig nosuch:\n%s", out)
	}
	if out := dig("AAAA", "metweb.netspawn.internal"); !strings.Contains(out, "status: NOERROR") {
		t.Fatalf("dig AAAA metweb:\n%s", out)
	}
	if out := dig(upstreamName); !strings.Contains(out, upstreamAddr) {
		t.Fatalf("dig %s:\n%s", upstreamName, out)
	}

	type check struct {
		name   string
		labels map[string]string
		min    float64
	}
	checks := []check{
		{"netspawn_machines", map[string]string{"state": "running"}, 1},
		{"netspawn_links", map[string]string{"kind": "veth"}, 1},
		{"netspawn_dhcp_packets_total", map[string]string{"link": "ve-metweb", "type": "discover", "outcome": "offer"}, 1},
		{"netspawn_dhcp_packets_total", map[string]string{"link": "ve-metweb", "type": "request", "outcome": "ack"}, 1},
		{"netspawn_dhcp_leases", map[string]string{"link": "ve-metweb", "state": "bound"}, 1},
		{"netspawn_dns_queries_total", map[string]string{"type": "A", "rcode": "NOERROR"}, 2},
		{"netspawn_dns_queries_total", map[string]string{"type": "A", "rcode": "NXDOMAIN"}, 1},
		{"netspawn_dns_queries_total", map[string]string{"type": "AAAA", "rcode": "NOERROR"}, 1},
		{"netspawn_dns_upstream_duration_seconds", map[string]string{"result": "answer"}, 1},
		{"netspawn_nft_transactions_total", map[string]string{"op": "ensure"}, 1},
		{"netspawn_nft_transactions_total", map[string]string{"op": "add"}, 1},
		{"netspawn_api_requests_total", map[string]string{"method": "register", "result": "ok"}, 1},
		{"netspawn_api_request_duration_seconds", map[string]string{"method": "register"}, 1},
		{"go_goroutines", nil, 1},
	}
	var fams map[string]*dto.MetricFamily
	var failed []check
	// The counters are bumped before the answers leave, so the DNS ones
	// are there at the first scrape; udhcpc may still be at work.
	testutil.Eventually(20*time.Second, func() bool {
		fams = scrapeUnix(t, sock)
		failed = failed[:0]
		for _, c := range checks {
			if v, ok := sample(fams, c.name, c.labels); !ok || v < c.min {
				failed = append(failed, c)
			}
		}
		return len(failed) == 0
	})
	for _, c := range failed {
		t.Errorf("%s%v below %v; have %s", c.name, c.labels, c.min, seriesOf(fams, c.name))
	}
	for _, n := range []string{"netspawn_machines", "netspawn_links", "netspawn_dhcp_packets_total", "netspawn_dhcp_leases",
		"netspawn_dns_queries_total", "netspawn_dns_upstream_duration_seconds", "netspawn_nft_transactions_total",
		"netspawn_nft_errors_total", "netspawn_api_requests_total"} {
		t.Log(seriesOf(fams, n))
	}
	if t.Failed() {
		t.Logf("netspawnd's log:\n%s", logs())
	}
}

// TestMetricsListen: a loopback TCP listener answers in the daemon's
// namespace; an address that is not loopback is refused without
// --metrics-public, before netspawnd does anything.
func TestMetricsListen(t *testing.T) {
	e := harness.NewEnv(t)
	r := e.Run("netspawnd", "--runtime-dir", e.RuntimeDir, "--config", "/dev/null", "--metrics-listen", "0.0.0.0:9153")
	if r.Code == 0 || !strings.Contains(r.Stderr, "--metrics-public") {
		t.Fatalf("a wildcard metrics address: status %d, stderr %q", r.Code, r.Stderr)
	}
	logs := e.StartNetspawnd("--metrics-listen", "127.0.0.1:9153")
	var page string
	if !testutil.Eventually(10*time.Second, func() bool {
		page = fetch(e.NS, "http://127.0.0.1:9153/metrics")
		return strings.Contains(page, "netspawn_machines{state=\"running\"} 0")
	}) {
		t.Fatalf("http://127.0.0.1:9153/metrics: %.2000s\nnetspawnd: %s", page, logs())
	}
}
