// Package metrics keeps netspawnd's Prometheus metrics: it implements the
// small observer interfaces of the DHCP and DNS servers and of the
// controller (which know nothing of Prometheus), reads the machine, link
// and lease counts when scraped, and serves /metrics on an opt-in
// listener (listen.go). The metric names and labels are listed in
// docs/netspawnd.md.
//
// The per-packet paths (DNS queries, DHCP requests) cost an array index,
// an atomic load and an atomic add: each label combination's counter is
// resolved from its vector once, on first use, and kept.
package metrics

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/netspawn/netspawn/dhcp"
	ourdns "github.com/netspawn/netspawn/dns"
)

// Sources are read at each scrape for the gauges; any may be nil.
type Sources struct {
	// Machines by state, links by kind (see netctl.Census).
	Machines func() map[string]int
	Links    func() map[string]int
	// Leases lists the DHCP server's leases.
	Leases func() []dhcp.Lease
}

// Metrics is one registry of netspawnd's metrics.
type Metrics struct {
	reg *prometheus.Registry

	dnsQueries  *prometheus.CounterVec
	dnsQ        [len(dnsTypes) + 1][len(dnsRcodes) + 1]lazyCounter
	dnsUpstream *prometheus.HistogramVec
	dnsUp       [numUpResults]prometheus.Observer

	dhcpPackets *prometheus.CounterVec

	nftOps, nftErrors *prometheus.CounterVec
	apiCalls          *prometheus.CounterVec
	apiDuration       *prometheus.HistogramVec

	gauges *gauges
	dhcp   *dhcpObserver
}

// SetSources sets what the gauges read when scraped.
func (m *Metrics) SetSources(src Sources) { m.gauges.src.Store(&src) }

// lazyCounter is one label combination's counter, resolved on first use.
type lazyCounter struct {
	p atomic.Pointer[prometheus.Counter]
}

func (l *lazyCounter) inc(vec *prometheus.CounterVec, labels ...string) {
	c := l.p.Load()
	if c == nil {
		nc := vec.WithLabelValues(labels...)
		l.p.CompareAndSwap(nil, &nc)
		c = l.p.Load()
	}
	(*c).Inc()
}

const namespace = "netspawn"

// New makes the registry: the Go runtime's and the process's metrics,
// and netspawnd's own. The gauges read nothing until SetSources.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), gauges: &gauges{}}
	m.dhcp = &dhcpObserver{m: m, links: map[string]*linkCounters{}}
	m.dnsQueries = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "dns",
		Name: "queries_total", Help: "DNS queries answered, by question type and response code."},
		[]string{"type", "rcode"})
	m.dnsUpstream = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Subsystem: "dns",
		Name: "upstream_duration_seconds", Help: "Time from a forwarded query's send to an upstream resolver's answer (or failure), by result.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}, []string{"result"})
	for r := range numUpResults {
		m.dnsUp[r] = m.dnsUpstream.WithLabelValues(upResultNames[r])
	}
	m.dhcpPackets = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "dhcp",
		Name: "packets_total", Help: "DHCP requests received, by link, message type and outcome."},
		[]string{"link", "type", "outcome"})
	m.nftOps = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "nft",
		Name: "transactions_total", Help: "nftables transactions on netspawnd's table, by operation."}, []string{"op"})
	m.nftErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "nft",
		Name: "errors_total", Help: "nftables transactions the kernel refused, by operation."}, []string{"op"})
	m.apiCalls = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "api",
		Name: "requests_total", Help: "Calls on netspawnd's API socket, by method and result (ok or error)."},
		[]string{"method", "result"})
	m.apiDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Subsystem: "api",
		Name: "request_duration_seconds", Help: "Time netspawnd took to answer an API call, by method.",
		Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"method"})
	m.reg.MustRegister(m.dnsQueries, m.dnsUpstream, m.dhcpPackets, m.nftOps, m.nftErrors, m.apiCalls, m.apiDuration,
		m.gauges, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is where the metrics are gathered from.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// DNS is the DNS server's observer.
func (m *Metrics) DNS() ourdns.Observer { return dnsObserver{m} }

// DHCP is the DHCP server's observer.
func (m *Metrics) DHCP() dhcp.Observer { return m.dhcp }

// NFT counts one nftables transaction (netctl.Observer).
func (m *Metrics) NFT(op string, err error) {
	m.nftOps.WithLabelValues(op).Inc()
	if err != nil {
		m.nftErrors.WithLabelValues(op).Inc()
	}
}

// APICall counts one API call (netctl.Observer).
func (m *Metrics) APICall(method string, took time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.apiCalls.WithLabelValues(method, result).Inc()
	m.apiDuration.WithLabelValues(method).Observe(took.Seconds())
}

// The DNS label values: the common types and rcodes by name, the rest
// as "other".
var (
	dnsTypes = [...]uint16{dns.TypeA, dns.TypeAAAA, dns.TypePTR, dns.TypeSRV, dns.TypeMX, dns.TypeTXT,
		dns.TypeCNAME, dns.TypeNS, dns.TypeSOA, dns.TypeANY, dns.TypeHTTPS, dns.TypeSVCB, dns.TypeCAA, dns.TypeDS,
		dns.TypeDNSKEY}
	dnsRcodes = [...]int{dns.RcodeSuccess, dns.RcodeFormatError, dns.RcodeServerFailure, dns.RcodeNameError,
		dns.RcodeNotImplemented, dns.RcodeRefused, dns.RcodeBadVers}
	// miekg/dns names 16 BADSIG; a DNS server's 16 is BADVERS.
	dnsRcodeNames = [len(dnsRcodes)]string{"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS"}
)

// dnsTypeIndex maps a query type to its label's index (len: other).
func dnsTypeIndex(t uint16) int {
	for i, v := range dnsTypes {
		if v == t {
			return i
		}
	}
	return len(dnsTypes)
}

func dnsRcodeIndex(r int) int {
	for i, v := range dnsRcodes {
		if v == r {
			return i
		}
	}
	return len(dnsRcodes)
}

// DNSTypeLabel and DNSRcodeLabel are the label values of a type and an
// rcode: "A", "NXDOMAIN"..., "other" for the rest.
func DNSTypeLabel(t uint16) string {
	if i := dnsTypeIndex(t); i < len(dnsTypes) {
		return dns.TypeToString[dnsTypes[i]]
	}
	return "other"
}

func DNSRcodeLabel(r int) string {
	if i := dnsRcodeIndex(r); i < len(dnsRcodes) {
		return dnsRcodeNames[i]
	}
	return "other"
}

type dnsObserver struct{ m *Metrics }

func (o dnsObserver) Query(qtype uint16, rcode int) {
	ti, ri := dnsTypeIndex(qtype), dnsRcodeIndex(rcode)
	lc := &o.m.dnsQ[ti][ri]
	if c := lc.p.Load(); c != nil {
		(*c).Inc()
		return
	}
	lc.inc(o.m.dnsQueries, DNSTypeLabel(qtype), DNSRcodeLabel(rcode))
}

// Upstream results.
const (
	upAnswer   = iota // an answer the client gets (NOERROR, NXDOMAIN...)
	upServfail        // SERVFAIL: the next upstream is asked
	upRefused         // REFUSED: the next upstream is asked
	upError           // no answer: timeout, network error
	numUpResults
)

var upResultNames = [numUpResults]string{"answer", "servfail", "refused", "error"}

func (o dnsObserver) Upstream(took time.Duration, rcode int, err error) {
	r := upAnswer
	switch {
	case err != nil:
		r = upError
	case rcode == dns.RcodeServerFailure:
		r = upServfail
	case rcode == dns.RcodeRefused:
		r = upRefused
	}
	o.m.dnsUp[r].Observe(took.Seconds())
}

// The DHCP message types counted by name; the rest (and unreadable
// packets) are "other".
var dhcpTypes = [...]dhcpv4.MessageType{dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest,
	dhcpv4.MessageTypeRelease, dhcpv4.MessageTypeDecline, dhcpv4.MessageTypeInform}

var dhcpTypeNames = [len(dhcpTypes) + 1]string{"discover", "request", "release", "decline", "inform", "other"}

func dhcpTypeIndex(t dhcpv4.MessageType) int {
	for i, v := range dhcpTypes {
		if v == t {
			return i
		}
	}
	return len(dhcpTypes)
}

type dhcpObserver struct {
	m     *Metrics
	mu    sync.Mutex
	links map[string]*linkCounters // served links
}

// linkCounters are one link's DHCP counters.
type linkCounters struct {
	m    *Metrics
	name string
	c    [len(dhcpTypes) + 1][dhcp.NumOutcomes]lazyCounter
	// gone: the link is no longer served; a packet still in flight must
	// not bring its series back.
	gone atomic.Bool
}

func (o *dhcpObserver) Link(name string) dhcp.LinkObserver {
	l := &linkCounters{m: o.m, name: name}
	o.mu.Lock()
	if old := o.links[name]; old != nil {
		old.gone.Store(true)
	}
	o.links[name] = l
	o.mu.Unlock()
	return l
}

// LinkRemoved drops the link's series: links come and go with machines.
func (o *dhcpObserver) LinkRemoved(name string) {
	o.mu.Lock()
	if l := o.links[name]; l != nil {
		l.gone.Store(true)
		delete(o.links, name)
	}
	o.m.dhcpPackets.DeletePartialMatch(prometheus.Labels{"link": name})
	o.mu.Unlock()
}

func (l *linkCounters) Packet(t dhcpv4.MessageType, out dhcp.Outcome) {
	if out >= dhcp.NumOutcomes {
		return
	}
	ti := dhcpTypeIndex(t)
	lc := &l.c[ti][out]
	if c := lc.p.Load(); c != nil {
		(*c).Inc()
		return
	}
	l.m.dhcp.mu.Lock() // orders the series' creation with LinkRemoved
	defer l.m.dhcp.mu.Unlock()
	if l.gone.Load() {
		return
	}
	lc.inc(l.m.dhcpPackets, l.name, dhcpTypeNames[ti], out.String())
}

// gauges reads the counts of machines, links and leases when scraped.
type gauges struct{ src atomic.Pointer[Sources] }

var (
	machinesDesc = prometheus.NewDesc(namespace+"_machines", "Machines known to netspawnd, by state (running: on this host; remote: on other hosts of the cluster).", []string{"state"}, nil)
	linksDesc    = prometheus.NewDesc(namespace+"_links", "Network links netspawnd made or moved for machines, by kind.", []string{"kind"}, nil)
	leasesDesc   = prometheus.NewDesc(namespace+"_dhcp_leases", "DHCP leases, by link and state.", []string{"link", "state"}, nil)
)

func (g *gauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- machinesDesc
	ch <- linksDesc
	ch <- leasesDesc
}

func (g *gauges) Collect(ch chan<- prometheus.Metric) {
	src := g.src.Load()
	if src == nil {
		return
	}
	if f := src.Machines; f != nil {
		for state, n := range f() {
			ch <- prometheus.MustNewConstMetric(machinesDesc, prometheus.GaugeValue, float64(n), state)
		}
	}
	if f := src.Links; f != nil {
		for kind, n := range f() {
			ch <- prometheus.MustNewConstMetric(linksDesc, prometheus.GaugeValue, float64(n), kind)
		}
	}
	if f := src.Leases; f != nil {
		type key struct{ link, state string }
		counts := map[key]int{}
		for _, l := range f() {
			counts[key{l.Link, l.State.String()}]++
		}
		for k, n := range counts {
			ch <- prometheus.MustNewConstMetric(leasesDesc, prometheus.GaugeValue, float64(n), k.link, k.state)
		}
	}
}
