package spawn

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/netspawn/netspawn/spawn/config"

	"github.com/godbus/dbus/v5"

	"github.com/netspawn/netspawn/spawn/cgroup"
)

// registerMachined registers a started container with systemd-machined, as
// systemd-nspawn's --register=yes does, where systemd is PID 1 and machined
// runs or can be started on the system bus: machinectl list, status and
// login then see it. The machine's scope is already a systemd unit
// (spawn/cgroup), so machined finds it from the leader; it forgets the
// machine when the unit ends. Hosts without machined skip this quietly;
// a failure is a warning, never fatal.
func registerMachined(ctx context.Context, cfg *config.Config, leader int) error {
	if !cgroup.SystemdRunning() {
		return nil
	}
	conn, err := dbus.ConnectSystemBus(dbus.WithContext(ctx))
	if err != nil {
		return nil // no system bus: nobody to tell
	}
	defer conn.Close()
	const name = "org.freedesktop.machine1"
	var owned bool
	_ = conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, name).Store(&owned)
	if !owned {
		var activatable []string
		_ = conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.ListActivatableNames", 0).Store(&activatable)
		if !slices.Contains(activatable, name) {
			return nil // machined is not installed
		}
	}
	id, err := hex.DecodeString(strings.ReplaceAll(cfg.UUID, "-", ""))
	if err != nil || len(id) != 16 {
		id = []byte{} // machined makes one
	}
	root := cfg.Directory
	if cfg.Image != "" {
		root = "" // the image's tree has no path on the host
	}
	obj := conn.Object(name, "/org/freedesktop/machine1")
	if err := obj.CallWithContext(ctx, "org.freedesktop.machine1.Manager.RegisterMachine", 0,
		cfg.Machine, id, cfg.Service(), "container", uint32(leader), root).Err; err != nil {
		var de dbus.Error
		if errors.As(err, &de) && strings.Contains(de.Name, "MachineExists") {
			return fmt.Errorf("machined already has a machine named %s", cfg.Machine)
		}
		return fmt.Errorf("RegisterMachine: %w", err)
	}
	return nil
}

// registerMachinedAsync is registerMachined off the start's critical path.
func registerMachinedAsync(cfg *config.Config, leader int) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := registerMachined(ctx, cfg, leader); err != nil {
			warnf(cfg.Quiet, "not registered with systemd-machined (machinectl will not list this machine): %v", err)
		}
	}()
}
