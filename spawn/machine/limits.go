package machine

import (
	"github.com/netspawn/netspawn/spawn/cgroup"
	"github.com/netspawn/netspawn/spawn/config"
)

// SetMachineLimits applies properties to a running machine's cgroups: its
// v2 container cgroup and, on hybrid hosts, v1 cgroups of its own, made
// (and the machine's processes moved in) the first time a v1 limit is set.
func SetMachineLimits(machine string, leader int, props []string) error {
	l, err := config.ParseProperties(props)
	if err != nil {
		return err
	}
	return cgroup.SetLimits(machine, leader, l.V2Files(), l.V1Files())
}
