package cgroup

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// SystemdRunning reports whether systemd is the host's init (sd_booted:
// /run/systemd/system is a directory). The cgroup tree is then systemd's:
// a machine's cgroup must be a unit of its own, or systemd disables the
// controllers it does not know of and may remove the cgroup.
func SystemdRunning() bool {
	st, err := os.Stat("/run/systemd/system")
	return err == nil && st.IsDir()
}

// systemdTimeout bounds a start of a transient unit.
const systemdTimeout = 30 * time.Second

// systemdScope asks systemd for the machine's scope, as systemd-nspawn does
// when machined is not asked: a transient machine-NAME.scope in
// machine.slice holding netspawn itself, delegated (the cgroups below it are
// netspawn's to make and write), removed by systemd once empty. It talks to
// systemd over its private socket (/run/systemd/private), so no D-Bus
// daemon is needed. It returns the scope's v2 directory and the unit.
func systemdScope(ctx context.Context, root, slice, machine string) (string, string, error) {
	if slice == "" {
		slice = DefaultSlice
	}
	ctx, cancel := context.WithTimeout(ctx, systemdTimeout)
	defer cancel()
	conn, err := sddbus.NewSystemdConnectionContext(ctx)
	if err != nil {
		return "", "", fmt.Errorf("connecting to systemd: %w", err)
	}
	defer conn.Close()
	unit := ScopeUnit(machine)
	props := []sddbus.Property{
		sddbus.PropDescription("netspawn container " + machine),
		sddbus.PropSlice(slice),
		sddbus.PropPids(uint32(os.Getpid())),
		{Name: "Delegate", Value: godbus.MakeVariant(true)},
		{Name: "CollectMode", Value: godbus.MakeVariant("inactive-or-failed")},
	}
	done := make(chan string, 1)
	if _, err := conn.StartTransientUnitContext(ctx, unit, "fail", props, done); err != nil {
		if strings.Contains(err.Error(), "already exists") {
			return "", "", ErrRunning
		}
		return "", "", fmt.Errorf("systemd: starting %s: %w", unit, err)
	}
	select {
	case r := <-done:
		if r != "done" {
			return "", "", fmt.Errorf("systemd: starting %s: job %s", unit, r)
		}
	case <-ctx.Done():
		return "", "", fmt.Errorf("systemd: starting %s: %w", unit, ctx.Err())
	}
	own, err := ProcCgroups(0)
	if err != nil {
		return "", "", err
	}
	dir := filepath.Join(root, own[""])
	if filepath.Base(dir) != unit {
		return "", "", fmt.Errorf("systemd started %s but netspawn is in cgroup %s", unit, own[""])
	}
	return dir, unit, nil
}

// keptUnit is --keep-unit: the unit netspawn runs in (a service such as
// systemd-nspawn@.service's counterpart) is the machine's, and must be
// delegated so that systemd leaves the cgroups below it alone.
func keptUnit(ctx context.Context, root string) (string, string, error) {
	own, err := ProcCgroups(0)
	if err != nil {
		return "", "", err
	}
	dir := filepath.Join(root, own[""])
	unit := filepath.Base(dir)
	kind := strings.TrimPrefix(filepath.Ext(unit), ".")
	if kind != "service" && kind != "scope" {
		return "", "", fmt.Errorf("netspawn runs in %s, not in a service or scope", own[""])
	}
	ctx, cancel := context.WithTimeout(ctx, systemdTimeout)
	defer cancel()
	conn, err := sddbus.NewSystemdConnectionContext(ctx)
	if err != nil {
		return "", "", fmt.Errorf("connecting to systemd: %w", err)
	}
	defer conn.Close()
	p, err := conn.GetUnitTypePropertyContext(ctx, unit, strings.ToUpper(kind[:1])+kind[1:], "Delegate")
	if err != nil {
		return "", "", fmt.Errorf("reading Delegate= of %s: %w", unit, err)
	}
	if d, ok := p.Value.Value().(bool); !ok || !d {
		return "", "", fmt.Errorf("the unit %s is not delegated (add Delegate=yes to it)", unit)
	}
	return dir, unit, nil
}
