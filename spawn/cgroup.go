package spawn

import "github.com/netspawn/netspawn/spawn/cgroup"

// containerCgroupMode says how the container sees /sys/fs/cgroup: its own
// cgroup (the root of its cgroup namespace) writable for a booted OS,
// read-only for a command, nothing without a cgroup.
func containerCgroupMode(m *cgroup.Machine, boot bool) string {
	switch {
	case m == nil || m.Payload == "":
		return ""
	case boot:
		return "rw"
	}
	return "ro"
}

// limitControllers lists the v1 controllers limits set files in.
func limitControllers(v1 map[string]map[string]string) []string {
	var c []string
	for ctrl := range v1 {
		c = append(c, ctrl)
	}
	return c
}
