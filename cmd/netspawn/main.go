// Command netspawn runs a command or boots an OS in a container, with the
// flags of systemd-nspawn.
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"

	"github.com/netspawn/netspawn/spawn/config"
	"github.com/netspawn/netspawn/spawn/netclient"

	"github.com/spf13/pflag"

	"github.com/netspawn/netspawn/spawn"
)

// The main goroutine keeps the main thread to itself. Work that enters a
// container's namespaces runs on locked threads that end with their
// goroutine; were one of them the main thread, the runtime could not end it
// and would park it inside the container, and /proc/PID/ns/* (which show the
// main thread) would name the container's namespaces.
func init() { runtime.LockOSThread() }

func main() {
	spawn.Trace("main")
	if spawn.IsStub() {
		spawn.StubMain()
	}
	if spawn.IsInit() {
		spawn.InitMain()
		return
	}
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	slog.SetDefault(slog.New(newCLIHandler(os.Stderr)))
	cfg, err := config.ParseArgs(args)
	spawn.Trace("arguments parsed")
	switch {
	case errors.Is(err, pflag.ErrHelp):
		fmt.Print(config.Usage())
		return 0
	case errors.Is(err, config.ErrVersion):
		fmt.Println("netspawn", version)
		return 0
	case err != nil:
		fmt.Fprintf(os.Stderr, "netspawn: %v\n", err)
		return 1
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "netspawn: must be run as root (it creates namespaces and mounts)")
		return 1
	}
	if err := cfg.LoadSettings(); err != nil {
		fmt.Fprintf(os.Stderr, "netspawn: %v\n", err)
		return 1
	}
	spawn.Trace("settings loaded")
	err = spawn.Run(cfg, spawn.Options{Network: &netclient.Network{}})
	var ee *spawn.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.Code
	case err != nil:
		fmt.Fprintf(os.Stderr, "netspawn: %v\n", err)
		return 1
	}
	return 0
}

// version is set at build time.
var version = "devel"
