package spawn

import (
	"fmt"
	"log/slog"

	"github.com/netspawn/netspawn/internal/sdnotify"
)

// The notification socket, as systemd-nspawn's (setup_notify_child,
// nspawn_dispatch_notify_fd): every container's PID 1 finds it at
// /run/host/notify, named by $NOTIFY_SOCKET, and netspawn holds the
// receiving end. netspawn heeds only the container's PID 1 (the sender's
// credentials, as nspawn checks them: with --as-pid2 that is the stub, so
// the payload's messages are ignored there too). READY=1 is passed on to
// netspawn's own supervisor ($NOTIFY_SOCKET of netspawn: systemd for a
// Type=notify unit, netspawnd for a started machine) and STATUS=TEXT as
// "STATUS=Container running: TEXT". netspawn says READY=1 itself once the
// payload runs, unless --notify-ready=yes leaves that to the container;
// and STOPPING=1 when it ends.

// notifySocketPath is the socket's path inside the container.
const notifySocketPath = "/run/host/notify"

// forwardNotify reads the container's notifications until conn is closed.
func forwardNotify(conn *sdnotify.Conn, leader int) {
	for {
		d, err := conn.Read()
		if err != nil {
			return
		}
		if d.PID != leader {
			slog.Debug("notification not from the container's PID 1, ignored", "pid", d.PID, "leader", leader)
			continue
		}
		if d.Message.Ready {
			if err := sdnotify.Send("READY=1"); err != nil {
				warnf(false, "failed to send readiness notification, ignoring: %v", err)
			}
		}
		if d.Message.HasStatus {
			_ = sdnotify.Send("STATUS=Container running: " + d.Message.Status)
		}
	}
}

// announce tells netspawn's supervisor that the container runs (once its
// payload was executed), and that it is ready unless the container is to
// say so itself.
func (r *runner) announce(pid int) {
	_ = sdnotify.Send(fmt.Sprintf("STATUS=Container running.\nX_NSPAWN_LEADER_PID=%d", pid))
	if !r.cfg.NotifyReady {
		if err := sdnotify.Send("READY=1"); err != nil {
			warnf(false, "failed to send readiness notification, ignoring: %v", err)
		}
	}
}
