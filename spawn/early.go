package spawn

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/netspawn/netspawn/spawn/config"
)

// earlyNetwork attaches a container with a private network before its first
// process exists. netspawn makes the container's network namespace itself,
// netspawnd creates the links in it (RegisterRequest.Starting) and netspawn
// configures the container's side, all while the tree, the image and the
// cgroups are prepared; the first process then joins the namespace (and
// needs no gate: the fast path clones it with CLONE_VM). Once that process
// runs, SetLeader names it to netspawnd.
//
// Without this, the registration waits for the first process (its
// namespace) and the payload for the registration: the controller's round
// trip and the kernel's work for the veth were on the start's critical path
// twice over.
type earlyNetwork struct {
	hook EarlyNetworkHook
	cfg  *config.Config // a copy taken at the start: Run changes its own later

	nsReady chan struct{} // closed once ns or err is set
	ns      *os.File      // the container's network namespace

	done     chan struct{} // closed when the attachment is over, either way
	setup    NetworkSetup  // DNS and search domains (the interfaces are configured)
	err      error
	attached bool // netspawnd holds a registration: Release it
	handed   bool // the runner releases it (runner.cleanup)
}

// earlyHook returns the hook to attach cfg's network early with, or nil where
// the late path stays: a booted OS (its network namespace is kept across
// reboots and it configures its own interfaces), an ephemeral container
// (its name is chosen later), a user namespace (the network namespace must
// belong to it), a namespace given by path, and networks whose address
// comes from a LAN's DHCP server or that move host interfaces.
func earlyHook(cfg *config.Config, hook NetworkHook) EarlyNetworkHook {
	eh, ok := hook.(EarlyNetworkHook)
	n := cfg.Network
	if !ok || os.Getenv("NETSPAWN_LATE_ATTACH") == "1" ||
		!cfg.NeedsNetworkController() || !n.Private || n.NamespacePath != "" ||
		cfg.Boot || cfg.Ephemeral || cfg.PrivateUsers.Enabled() ||
		n.Bridge != "" || len(n.MACVLAN) > 0 || len(n.IPVLAN) > 0 || len(n.Interfaces) > 0 {
		return nil
	}
	return eh
}

// startEarlyNetwork starts the early attachment in the background; nil when
// cfg's network is attached the late way.
func startEarlyNetwork(cfg *config.Config, hook NetworkHook) *earlyNetwork {
	eh := earlyHook(cfg, hook)
	if eh == nil {
		return nil
	}
	c := *cfg
	e := &earlyNetwork{hook: eh, cfg: &c, nsReady: make(chan struct{}), done: make(chan struct{})}
	go e.run()
	return e
}

func (e *earlyNetwork) run() {
	defer close(e.done)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Connecting (and starting netspawnd on demand) and making the
	// namespace, side by side.
	dialed := make(chan error, 1)
	go func() { dialed <- e.hook.Dial(ctx) }()
	ns, err := newNetNS()
	e.ns, e.err = ns, err
	close(e.nsReady)
	derr := <-dialed
	if err != nil {
		return
	}
	trace("early: network namespace made")
	if derr != nil {
		e.err = derr
		return
	}
	// netspawnd opens the namespace through this process's descriptor; it
	// lives as long as netspawn holds it.
	path := fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), ns.Fd())
	setup, err := e.hook.AttachStarting(ctx, e.cfg, path)
	if err != nil {
		e.err = err
		return
	}
	e.attached = true
	trace("early: attached")
	if !setup.Configured {
		h, err := netlink.NewHandleAt(netns.NsHandle(ns.Fd()))
		if err != nil {
			e.err = fmt.Errorf("opening netlink in the container's network namespace: %w", err)
			return
		}
		err = configureNetwork(h, &setup)
		h.Close()
		if err != nil {
			e.err = err
			return
		}
		trace("early: network configured")
	}
	setup.Interfaces = nil // configured: nothing inside does it again
	e.setup = setup
}

// namespace waits until the namespace exists and returns it.
func (e *earlyNetwork) namespace() (*os.File, error) {
	<-e.nsReady
	if e.ns == nil {
		return nil, e.err
	}
	return e.ns, nil
}

// wait waits for the attachment and returns how to finish the container's
// network (DNS; its interfaces are configured).
func (e *earlyNetwork) wait() (NetworkSetup, error) {
	<-e.done
	return e.setup, e.err
}

// close releases what the runner did not take over: on a failure before
// the container ran, the registration (once it is over) and the namespace.
func (e *earlyNetwork) close() {
	if e == nil {
		return
	}
	<-e.done
	if e.attached && !e.handed {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		e.hook.Release(ctx, e.cfg)
		cancel()
	}
	if e.ns != nil {
		e.ns.Close()
	}
}

// newNetNS makes a network namespace without moving netspawn into it: a
// thread of its own enters a new one, opens it and goes back.
func newNetNS() (*os.File, error) {
	type result struct {
		f   *os.File
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("opening netspawn's network namespace: %w", err)}
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("creating the container's network namespace: %w", err)}
			return
		}
		f, ferr := os.Open("/proc/thread-self/ns/net")
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// The thread stays in the new namespace: it ends with this
			// goroutine (still locked), and no other goroutine runs on it.
			if f != nil {
				f.Close()
			}
			ch <- result{err: fmt.Errorf("returning to netspawn's network namespace: %w", err)}
			return
		}
		runtime.UnlockOSThread()
		if ferr != nil {
			ferr = fmt.Errorf("opening the container's network namespace: %w", ferr)
		}
		ch <- result{f, ferr}
	}()
	r := <-ch
	if r.f == nil && r.err == nil {
		r.err = errors.New("creating the container's network namespace: no namespace")
	}
	return r.f, r.err
}

// dialing is a connection to a running netspawnd being made in the
// background for a machine that is only registered (no network from
// netspawnd): the round trip, a millisecond or more on a virtualised host,
// overlaps the preparation instead of following the clone.
type dialing struct {
	done chan struct{}
}

// startDialing connects cfg's network hook in the background when the
// machine will be registered without networking from netspawnd; nil
// otherwise (an early network dials itself).
func startDialing(cfg *config.Config, hook NetworkHook, early bool) *dialing {
	d, ok := hook.(ControllerDialer)
	if !ok || early || !cfg.Register || cfg.NeedsNetworkController() {
		return nil
	}
	g := &dialing{done: make(chan struct{})}
	go func() {
		defer close(g.done)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// Not running: the registration starts it, as without this.
		_ = d.DialRunning(ctx)
	}()
	return g
}

// wait waits for the connection attempt to be over, either way.
func (g *dialing) wait() {
	if g != nil {
		<-g.done
	}
}
