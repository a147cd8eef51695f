// Package api is the wire contract between netspawnd and its clients
// (netspawn, netspawnctl). It holds only types and the client; the server
// lives in package netctl.
package api

// Port is one port forward from the host to a container.
type Port struct {
	Protocol      string `json:"protocol"` // "tcp" or "udp"
	HostPort      uint16 `json:"host_port"`
	ContainerPort uint16 `json:"container_port"`
}

// VethExtra is one extra veth pair (--network-veth-extra=HOST[:CONTAINER]).
type VethExtra struct {
	Host      string `json:"host"`
	Container string `json:"container"`
}

// NetworkRequest is what a container asks of the controller.
type NetworkRequest struct {
	Veth       bool        `json:"veth,omitempty"` // -n: ve-NAME <-> host0 with an address pool
	VethExtra  []VethExtra `json:"veth_extra,omitempty"`
	Bridge     string      `json:"bridge,omitempty"` // --network-bridge=BR: vb-NAME joins BR
	Zone       string      `json:"zone,omitempty"`   // --network-zone=Z: vb-NAME joins vz-Z
	MACVLAN    []string    `json:"macvlan,omitempty"`
	IPVLAN     []string    `json:"ipvlan,omitempty"`
	Interfaces []string    `json:"interfaces,omitempty"` // moved in, moved back on exit
	Ports      []Port      `json:"ports,omitempty"`
	// MAC is host0's address instead of the one hashed from the machine
	// name ($SYSTEMD_NSPAWN_NETWORK_MAC).
	MAC string `json:"mac,omitempty"`
	// ContainerIf names the container side of the veth or zone link
	// instead of host0 (a CNI runtime's CNI_IFNAME).
	ContainerIf string `json:"container_if,omitempty"`
	// Address asks for this IPv4 address for the container (a CNI
	// runtime's "ips" capability): with a veth, the link's subnet is the
	// one that holds it; in a zone, it must lie in the zone's subnet.
	Address string `json:"address,omitempty"`
	// ConfigureInside has the controller configure the container side
	// itself (addresses, routes, MTU, loopback up), for callers that have
	// no process inside the namespace to do it.
	ConfigureInside bool `json:"configure_inside,omitempty"`
}

// CNIAttachment identifies an attachment made for a CNI runtime: the
// container and interface the runtime names in CNI_CONTAINERID and
// CNI_IFNAME, under the network configuration's name.
type CNIAttachment struct {
	ContainerID string `json:"container_id"`
	IfName      string `json:"ifname"`
	Network     string `json:"network"`
}

// RegisterRequest registers a machine whose leader process already lives in
// its own network namespace (/proc/Leader/ns/net).
type RegisterRequest struct {
	Name    string         `json:"name"`
	Leader  int            `json:"leader"`  // PID of the container's PID 1, as seen by the host
	Root    string         `json:"root"`    // root directory
	Class   string         `json:"class"`   // "container"
	Service string         `json:"service"` // "netspawn"
	Boot    bool           `json:"boot"`    // the container runs its own init (and DHCP client)
	Network NetworkRequest `json:"network"`
	// NetNS, instead of Leader, names a network namespace no process of
	// the caller's holds (a CNI runtime's CNI_NETNS, a bind mount). The
	// machine then lives until it is unregistered, and survives a restart
	// of the controller while that file still names the same namespace.
	NetNS string `json:"netns,omitempty"`
	// CNI identifies a CNI runtime's attachment (service "cni").
	CNI *CNIAttachment `json:"cni,omitempty"`
	// Starting registers a machine before its first process exists, so
	// that its links are made while the container is prepared: NetNS is a
	// namespace the caller made and holds open (/proc/CALLER/fd/N), and
	// Leader is the caller itself, whose exit ends the machine until
	// SetLeader names the container's first process.
	Starting bool `json:"starting,omitempty"`
}

// Interface is one interface inside the container and how to configure it.
type Interface struct {
	Name      string   `json:"name"`                // e.g. "host0"
	MAC       string   `json:"mac,omitempty"`       // as set by the controller
	HostLink  string   `json:"host_link,omitempty"` // the host side of its link (ve-NAME, vz-...)
	HostMAC   string   `json:"host_mac,omitempty"`
	Addresses []string `json:"addresses,omitempty"` // CIDR, e.g. "192.168.3.2/28"
	Gateway4  string   `json:"gateway4,omitempty"`
	Gateway6  string   `json:"gateway6,omitempty"`
	MTU       int      `json:"mtu,omitempty"`
	// DHCP is set when the address must come from a DHCP server the
	// controller does not own (bridged containers): the client side obtains it.
	DHCP bool `json:"dhcp,omitempty"`
}

// RegisterReply tells the container how to configure its network.
type RegisterReply struct {
	Interfaces    []Interface `json:"interfaces,omitempty"`
	DNS           []string    `json:"dns,omitempty"`            // resolvers for the container's resolv.conf
	SearchDomains []string    `json:"search_domains,omitempty"` // search list
	HostLinks     []string    `json:"host_links,omitempty"`     // host-side links created (ve-NAME, ...)
}

// Machine is one registered machine as `netspawnctl list` shows it.
type Machine struct {
	Name      string         `json:"name"`
	Class     string         `json:"class"`
	Service   string         `json:"service"`
	OS        string         `json:"os,omitempty"` // PRETTY_NAME or ID of the root's os-release
	Leader    int            `json:"leader"`
	Root      string         `json:"root,omitempty"`
	Addresses []string       `json:"addresses,omitempty"` // container addresses (CIDR)
	Since     string         `json:"since,omitempty"`     // RFC 3339 registration time
	Host      string         `json:"host,omitempty"`      // cluster node it runs on (cluster zones)
	Zone      string         `json:"zone,omitempty"`      // its zone, when it is a zone member
	NetNS     string         `json:"netns,omitempty"`     // the namespace's file when it has no leader (CNI)
	CNI       *CNIAttachment `json:"cni,omitempty"`
	// Starting: netspawn has attached it and is about to start its first
	// process, which is its leader from then on (Leader is 0 until then).
	Starting bool `json:"starting,omitempty"`
}

// Link is one link the controller made for a machine.
type Link struct {
	Host      string `json:"host"`               // host-side name (ve-NAME, possibly shortened)
	AltName   string `json:"altname,omitempty"`  // full name when Host was shortened
	Container string `json:"container"`          // name inside (host0)
	Kind      string `json:"kind"`               // "veth", "veth-extra"
	HostMAC   string `json:"host_mac,omitempty"` // host side
	MAC       string `json:"mac,omitempty"`      // container side
	Subnet    string `json:"subnet,omitempty"`
	Gateway   string `json:"gateway,omitempty"`  // on the host side
	Address   string `json:"address,omitempty"`  // the container's
	Subnet6   string `json:"subnet6,omitempty"`  // the link's IPv6 /64
	Gateway6  string `json:"gateway6,omitempty"` // ::1 of it, on the host side
	Address6  string `json:"address6,omitempty"` // the container's (EUI-64 of its MAC)
	Index     int    `json:"index,omitempty"`    // host-side ifindex (0 when gone)
	Up        bool   `json:"up,omitempty"`
}

// MachineStatus is `netspawnctl status NAME`.
type MachineStatus struct {
	Machine
	Links    []Link   `json:"links,omitempty"`
	Ports    []Port   `json:"ports,omitempty"`
	Boot     bool     `json:"boot,omitempty"`
	NetNS    string   `json:"netns,omitempty"` // /proc/LEADER/ns/net
	Warnings []string `json:"warnings,omitempty"`
}

// Network is one subnet the controller manages.
type Network struct {
	Link    string `json:"link"`
	Subnet  string `json:"subnet"`
	Gateway string `json:"gateway"`
	Machine string `json:"machine,omitempty"` // owner ("" for allocations of stopped machines)
	Address string `json:"address,omitempty"`
	Active  bool   `json:"active"` // the machine runs now
	// Cluster zones: the zone, its VXLAN network identifier and the hosts
	// that carry it.
	Zone  string   `json:"zone,omitempty"`
	VNI   uint32   `json:"vni,omitempty"`
	Hosts []string `json:"hosts,omitempty"`
}

// Error codes carried in Error.Code.
const (
	CodeInvalid   = "invalid"   // malformed request
	CodeConflict  = "conflict"  // name, link or port already in use
	CodeNotFound  = "not_found" // no such machine
	CodeExhausted = "exhausted" // address pools full
	CodeInternal  = "internal"
)

// Error is an error returned by netspawnd.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return "netspawnd: " + e.Message }

// Lease is one DHCP lease the controller's server holds.
type Lease struct {
	Link     string `json:"link"`
	Address  string `json:"address"`
	MAC      string `json:"mac,omitempty"`
	ClientID string `json:"client_id,omitempty"` // hex
	Hostname string `json:"hostname,omitempty"`
	Expiry   string `json:"expiry,omitempty"` // RFC 3339
	State    string `json:"state"`
}
