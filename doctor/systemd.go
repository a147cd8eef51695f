package doctor

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/netspawn/netspawn/netctl/hostsd"
	"github.com/netspawn/netspawn/spawn/cgroup"
)

// checkSystemd reports how netspawn fits a host run by systemd: where the
// machines' cgroups are, and what networkd, resolved and machined do with
// them. Nothing on a host without systemd.
func checkSystemd(ctx context.Context, nsswitch string) []Check {
	if !cgroup.SystemdRunning() {
		return nil
	}
	out := []Check{{"systemd", "OK", "PID 1: each machine runs in a transient unit machine-NAME.scope in machine.slice (delegated)", ""}}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := dbus.ConnectSystemBus(dbus.WithContext(ctx))
	if err != nil {
		return append(out, Check{"system bus", "WARN", "cannot reach D-Bus: networkd, resolved and machined are not checked (" + err.Error() + ")", ""})
	}
	defer conn.Close()
	owner := func(name string) bool {
		var ok bool
		_ = conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, name).Store(&ok)
		return ok
	}
	unmanaged := filepath.Join(hostsd.NetworkdDir, hostsd.UnmanagedFile)
	switch {
	case !owner("org.freedesktop.network1"):
		out = append(out, Check{"networkd", "OK", "not running", ""})
	case exists(unmanaged):
		out = append(out, Check{"networkd", "OK", "running; it leaves netspawn's links alone (" + unmanaged + ")", ""})
	default:
		out = append(out, Check{"networkd", "WARN", "running, and its 80-container-*.network match netspawn's ve-, vb- and vz- links: it would run a second DHCP server on them",
			"start netspawnd (it writes " + unmanaged + "), or drop --networkd-unmanaged=false"})
	}
	if !owner("org.freedesktop.resolve1") {
		out = append(out, Check{"resolved", "OK", "not running", ""})
	} else {
		detail := "running; netspawnd registers its DNS for the machines' domain on each container link, so nss-resolve finds machines too"
		if hostsLine(nsswitch, "resolve") >= 0 && hostsLine(nsswitch, "netspawn") > hostsLine(nsswitch, "resolve") {
			detail += " (resolve comes before netspawn in " + nsswitch + ": lookups go through resolved first)"
		}
		out = append(out, Check{"resolved", "OK", detail, ""})
	}
	var activatable []string
	_ = conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.ListActivatableNames", 0).Store(&activatable)
	switch {
	case owner("org.freedesktop.machine1") || slices.Contains(activatable, "org.freedesktop.machine1"):
		out = append(out, Check{"machined", "OK", "available: netspawn registers its machines (machinectl list shows them)", ""})
	default:
		out = append(out, Check{"machined", "OK", "not installed: machinectl does not see netspawn's machines (netspawnctl does)", ""})
	}
	return out
}

// hostsLine returns the position of a source on nsswitch.conf's hosts
// line, or -1.
func hostsLine(path, source string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(strings.SplitN(line, "#", 2)[0])
		if len(f) > 0 && f[0] == "hosts:" {
			return indexOf(f[1:], source)
		}
	}
	return -1
}
