package netctl

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/netspawn/netspawn/internal/netconf"
	"github.com/netspawn/netspawn/netctl/api"
	"github.com/netspawn/netspawn/netctl/links"

	"golang.org/x/sys/unix"
)

// netnsRef names a network namespace by a file no process of ours holds
// open (a CNI runtime's bind mount under /run/netns or /var/run/netns) and
// remembers which namespace the file named when the machine registered,
// so that a file re-used for another namespace is not mistaken for it.
type netnsRef struct {
	Path string `json:"path"`
	Dev  uint64 `json:"dev"`
	Ino  uint64 `json:"ino"`
}

// errNetNSGone says a machine's namespace no longer exists.
var errNetNSGone = errors.New("network namespace is gone")

// readNetNSRef identifies the network namespace path names.
func readNetNSRef(path string) (netnsRef, error) {
	f, err := openNetNSFile(path)
	if err != nil {
		return netnsRef{}, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return netnsRef{}, fmt.Errorf("stat %s: %w", path, err)
	}
	return netnsRef{Path: path, Dev: st.Dev, Ino: st.Ino}, nil
}

// openNetNSFile opens path and checks it is a network namespace.
func openNetNSFile(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("network namespace %s: %w (%w)", path, errNetNSGone, err)
		}
		return nil, fmt.Errorf("network namespace %s: %w", path, err)
	}
	t, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE)
	if err != nil || t != unix.CLONE_NEWNET {
		f.Close()
		return nil, fmt.Errorf("%s is not a network namespace (a bind mount of /proc/PID/ns/net, as `ip netns add` makes, is)", path)
	}
	return f, nil
}

// open opens the namespace, failing with errNetNSGone when the file is gone
// or now names another namespace.
func (r netnsRef) open() (*os.File, error) {
	f, err := openNetNSFile(r.Path)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Dev != r.Dev || st.Ino != r.Ino {
		f.Close()
		return nil, fmt.Errorf("network namespace %s: %w (the file names another one now)", r.Path, errNetNSGone)
	}
	return f, nil
}

// sameAsOwn reports whether f is the controller's own network namespace.
func sameAsOwn(f *os.File) (bool, error) {
	var a, b unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &a); err != nil {
		return false, fmt.Errorf("stat own network namespace: %w", err)
	}
	if err := unix.Fstat(int(f.Fd()), &b); err != nil {
		return false, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	return a.Dev == b.Dev && a.Ino == b.Ino, nil
}

// openNetNS opens the machine's network namespace: its leader's, or the
// file it registered with.
func (m *machine) openNetNS() (*os.File, error) {
	if m.NetNS != nil {
		return m.NetNS.open()
	}
	f, err := os.Open("/proc/" + strconv.Itoa(m.Leader.PID) + "/ns/net")
	if err != nil {
		return nil, fmt.Errorf("open network namespace of leader %d: %w", m.Leader.PID, err)
	}
	return f, nil
}

// netnsPath is where the machine's namespace can be entered.
func (m *machine) netnsPath() string {
	if m.NetNS != nil {
		return m.NetNS.Path
	}
	return "/proc/" + strconv.Itoa(m.Leader.PID) + "/ns/net"
}

// running reports whether the machine still exists: its leader lives, or
// its namespace file still names its namespace.
func (m *machine) running() bool {
	if m.NetNS != nil {
		f, err := m.NetNS.open()
		if err != nil {
			return false
		}
		f.Close()
		return true
	}
	fd, err := m.Leader.Open()
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}

// ifName is the name of the container side of its main link.
func (m *machine) ifName() string {
	if n := m.Req.Network.ContainerIf; n != "" {
		return n
	}
	return "host0"
}

// configureInside configures the container side from the reply, for a
// caller that asked the controller to (api.NetworkRequest.ConfigureInside).
func (c *Controller) configureInside(m *machine) error {
	f, err := m.openNetNS()
	if err != nil {
		return err
	}
	defer f.Close()
	h, err := links.NewAt(int(f.Fd()))
	if err != nil {
		return err
	}
	defer h.Close()
	return h.ApplyInside(insideOf(m.Reply.Interfaces))
}

// insideOf is what netconf applies for the reply's interfaces.
func insideOf(ifs []api.Interface) []netconf.Interface {
	out := make([]netconf.Interface, 0, len(ifs))
	for _, ifc := range ifs {
		if ifc.DHCP {
			continue
		}
		out = append(out, netconf.Interface{Name: ifc.Name, Addresses: ifc.Addresses, Gateway4: ifc.Gateway4, Gateway6: ifc.Gateway6, MTU: ifc.MTU})
	}
	return out
}
