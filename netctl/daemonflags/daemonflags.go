// Package daemonflags is netspawnd's command line: one FlagSet that the
// program parses and that its man page and shell completions are generated
// from (internal/mangen), so that they cannot drift apart.
package daemonflags

import (
	"os"
	"time"

	"github.com/netspawn/netspawn/dns"
	"github.com/netspawn/netspawn/netctl"
	"github.com/netspawn/netspawn/netctl/hostsd"

	"github.com/spf13/pflag"
)

// DefaultConfig is the configuration file read when --config is not given.
const DefaultConfig = "/etc/netspawn/netspawnd.conf"

// Flags points at the values of netspawnd's options once the FlagSet has
// parsed them.
type Flags struct {
	RuntimeDir, StateDir, Pools, DNS, Domain, LogLevel *string
	DHCP, DNSServer                                    *bool
	DNSAddress, DNSListen                              *string
	DNSCacheSize                                       *int
	DNSMaxStale                                        *time.Duration
	ResolvConf                                         *string
	ZoneIsolation                                      *bool
	MachineID                                          *string
	NoIPv6                                             *bool
	IPv6Prefix, IPv6Masquerade                         *string
	NetworkdUnmanaged, Resolved                        *bool
	ClusterEtcd, ClusterCA, ClusterCert, ClusterKey    *string
	ClusterNode, ClusterAddress, ClusterPools          *string
	ClusterTTL                                         *time.Duration
	MetricsListen                                      *string
	MetricsPublic                                      *bool
	CgroupSweepInterval                                *time.Duration
	Config                                             *string
}

// Annotation keys on the flags (pflag.Flag.Annotations) for the generated
// documentation: the fixed set of values, or what else to complete.
const (
	AnnotationValues   = "netspawn_values"
	AnnotationComplete = "netspawn_complete" // "file" or "dir"
)

// New returns netspawnd's FlagSet (ContinueOnError) and its values.
func New() (*pflag.FlagSet, *Flags) {
	fl := pflag.NewFlagSet("netspawnd", pflag.ContinueOnError)
	f := &Flags{}
	f.RuntimeDir = fl.String("runtime-dir", netctl.DefaultRuntimeDir(), "runtime state and the API socket ($NETSPAWN_RUNTIME_DIR)")
	f.StateDir = fl.String("state-dir", netctl.DefaultStateDir(), "persistent state: address allocations ($NETSPAWN_STATE_DIR)")
	f.Pools = fl.String("pools", "192.168.0.0/16,172.16.0.0/12,10.0.0.0/8", "IPv4 pools for container subnets, tried in order")
	f.DNS = fl.String("dns", "", "resolvers handed to containers (comma-separated; default: the host's non-loopback ones)")
	f.Domain = fl.String("domain", "", "search domain handed to containers")
	f.LogLevel = fl.String("log-level", "info", "debug, info, warn or error")
	f.DHCP = fl.Bool("dhcp", true, "serve DHCP on container links (the machine's address reserved for its MAC)")
	f.DNSServer = fl.Bool("dns-server", true, "serve DNS for machine names on each container link's gateway address (and forward the rest)")
	f.DNSAddress = fl.String("dns-address", "127.0.0.153:53", "the DNS server's socket: containers' queries to their gateway are redirected to it by nftables, and the host can use it")
	f.DNSListen = fl.String("dns-listen", "", "extra addresses for the DNS server (comma-separated)")
	f.DNSCacheSize = fl.Int("dns-cache-size", dns.DefaultCacheSize, "answers from the upstream resolvers the DNS server keeps (0: no cache)")
	f.DNSMaxStale = fl.Duration("dns-max-stale", dns.DefaultMaxStale, "how long past their TTL cached answers are kept to be served stale (TTL 30s) when the upstream resolvers fail or take longer than 1.8s (RFC 8767); 0 turns serve-stale off")
	f.ResolvConf = fl.String("resolv-conf", envOr("NETSPAWN_RESOLV_CONF", "/etc/resolv.conf"), "where the upstream resolvers for names outside the machines' domain are listed ($NETSPAWN_RESOLV_CONF); followed when it changes")
	f.ZoneIsolation = fl.Bool("zone-isolation", true, "drop routed traffic between a zone and other zones or ve- containers (--zone-isolation=false lets them reach each other)")
	f.MachineID = fl.String("machine-id", "/etc/machine-id", "file with the host's machine id (seeds stable MACs)")
	f.NoIPv6 = fl.Bool("no-ipv6", false, "give container links IPv4 only (no ULA prefix, no router advertisements, IPv6 off on the host side of ve- links)")
	f.IPv6Prefix = fl.String("ipv6-prefix", "", "IPv6 prefix (/48../64) to carve one /64 per link from; default: a random ULA /48 chosen once and kept in the state dir (ula-prefix). A global prefix routed to this host is delegated as is")
	f.IPv6Masquerade = fl.String("ipv6-masquerade", "auto", "masquerade containers' IPv6 traffic to the outside: auto (only for a ULA prefix), yes or no")
	f.NetworkdUnmanaged = fl.Bool("networkd-unmanaged", true, "on a host run by systemd, write "+hostsd.NetworkdDir+"/"+hostsd.UnmanagedFile+" so systemd-networkd leaves netspawn's links alone")
	f.Resolved = fl.Bool("resolved", true, "tell a running systemd-resolved that netspawnd's DNS answers for the machines' domain on each container link")
	f.ClusterEtcd = fl.String("cluster-etcd", "", "etcd endpoints (comma-separated URLs): every zone becomes a cluster zone spanning the hosts that share this etcd (see docs/cluster.md); unset: single host, no etcd")
	f.ClusterCA = fl.String("cluster-etcd-ca", "", "CA certificate (PEM) that signed etcd's server certificate")
	f.ClusterCert = fl.String("cluster-etcd-cert", "", "client certificate (PEM) for etcd")
	f.ClusterKey = fl.String("cluster-etcd-key", "", "client key (PEM) for etcd")
	f.ClusterNode = fl.String("cluster-node", "", "this host's name in the cluster (default: the hostname)")
	f.ClusterAddress = fl.String("cluster-address", "", "this host's underlay IPv4 address for VXLAN (default: the address of the default route's interface)")
	f.ClusterPools = fl.String("cluster-pools", "10.128.0.0/9", "IPv4 pools the cluster zones' subnets (a /16 each) come from")
	f.ClusterTTL = fl.Duration("cluster-ttl", 5*time.Second, "lease of this host's names in etcd: a host that dies without a clean exit has its names removed this long after")
	f.MetricsListen = fl.String("metrics-listen", "", "serve Prometheus metrics at /metrics on this HOST:PORT (a loopback address, e.g. 127.0.0.1:9153) or unix:/PATH; unset: no metrics")
	f.MetricsPublic = fl.Bool("metrics-public", false, "let --metrics-listen take an address that is not loopback (the metrics name machines and links)")
	f.CgroupSweepInterval = fl.Duration("cgroup-sweep-interval", time.Minute, "on a host without systemd as PID 1: how often to remove the empty cgroups of machines whose netspawn was killed before it registered them (also once at start; 0: never)")
	f.Config = fl.String("config", DefaultConfig, "configuration file of KEY=VALUE lines named as the long options")

	for name, vals := range values {
		_ = fl.SetAnnotation(name, AnnotationValues, vals) // TestAnnotations: every name is a flag
	}
	for name, kind := range complete {
		_ = fl.SetAnnotation(name, AnnotationComplete, []string{kind})
	}
	return fl, f
}

// values are the fixed sets of values of options that have one (booleans
// aside: pflag knows them).
var values = map[string][]string{
	"log-level":       {"debug", "info", "warn", "error"},
	"ipv6-masquerade": {"auto", "yes", "no"},
}

// complete says which options take a file or a directory.
var complete = map[string]string{
	"runtime-dir": "dir", "state-dir": "dir", "resolv-conf": "file", "machine-id": "file",
	"cluster-etcd-ca": "file", "cluster-etcd-cert": "file", "cluster-etcd-key": "file", "config": "file",
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
