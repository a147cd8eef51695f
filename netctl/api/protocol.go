package api

import "encoding/json"

// The protocol is JSON lines over the Unix socket netspawnd.sock in the
// runtime directory: a client writes one Request per line and reads one
// Response per line, in order, on a connection it may keep open.

// Methods.
const (
	MethodRegister   = "register"    // params RegisterRequest, result RegisterReply
	MethodUnregister = "unregister"  // params NameParams
	MethodSetLeader  = "set-leader"  // params SetLeaderParams: the first process of a machine registered while starting
	MethodList       = "list"        // params ListParams (optional), result []Machine
	MethodStatus     = "status"      // params NameParams, result MachineStatus
	MethodNetworks   = "networks"    // result []Network
	MethodPing       = "ping"        // result PingReply
	MethodLeases     = "leases"      // params NameParams (a link, "" for all), result []Lease
	MethodStart      = "start"       // params NameParams: boot image NAME as a background service
	MethodEnable     = "enable"      // params NameParams: start NAME whenever netspawnd starts
	MethodDisable    = "disable"     // params NameParams
	MethodZoneCreate = "zone-create" // params ZoneParams, result Network (cluster zones)
	MethodRelease    = "release"     // params NameParams: a stopped machine's zone addresses go back
	MethodCapacity   = "capacity"    // params ZoneParams (Name: a zone, "" for veth links), result Capacity
)

// Capacity says whether the controller can give one more machine an
// address: in the pools of veth links' subnets, or in a zone.
type Capacity struct {
	Room   bool   `json:"room"`
	Detail string `json:"detail,omitempty"` // why not, when Room is false
}

// ZoneParams creates a zone.
type ZoneParams struct {
	Name   string `json:"name"`
	Subnet string `json:"subnet,omitempty"` // CIDR; "" picks one
}

// SocketName is the API socket's file name in the runtime directory.
const SocketName = "netspawnd.sock"

// Request is one call.
type Request struct {
	ID     uint64          `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params,omitempty"`
}

// Response answers the Request with the same ID.
type Response struct {
	ID     uint64          `json:"id"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *Error          `json:"error,omitempty"`
}

// ListParams narrows a list to the machine of one CNI attachment (a
// container ID and its interface). A netspawnd older than the filter
// ignores it and lists every machine: callers filter the reply too.
type ListParams struct {
	CNIContainerID string `json:"cni_container_id,omitempty"`
	CNIIfName      string `json:"cni_ifname,omitempty"`
}

// Match reports whether m is in a list narrowed by p (pure).
func (p ListParams) Match(m Machine) bool {
	if p.CNIContainerID == "" {
		return true
	}
	return m.CNI != nil && m.CNI.ContainerID == p.CNIContainerID && m.CNI.IfName == p.CNIIfName
}

// SetLeaderParams names the first process of a machine registered with
// RegisterRequest.Starting, once it runs in the machine's namespace.
type SetLeaderParams struct {
	Name   string `json:"name"`
	Leader int    `json:"leader"`
}

// NameParams names a machine.
type NameParams struct {
	Name string `json:"name"`
}

// PingReply identifies the daemon.
type PingReply struct {
	PID     int    `json:"pid"`
	Version string `json:"version"`
}
