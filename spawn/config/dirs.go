package config

import "os"

// The directories every program agrees on. Each can be moved with an
// environment variable, so that tests and users can run several independent
// instances side by side.

// RuntimeDir is netspawnd's runtime state and API socket:
// $NETSPAWN_RUNTIME_DIR or /run/netspawn.
func RuntimeDir() string { return envDir("NETSPAWN_RUNTIME_DIR", "/run/netspawn") }

// StateDir is the persistent state (address allocations, UID ranges, saved
// properties, logs): $NETSPAWN_STATE_DIR or /var/lib/netspawn.
func StateDir() string { return envDir("NETSPAWN_STATE_DIR", "/var/lib/netspawn") }

// MachineDirs is where machine images are found, as machinectl and
// systemd-nspawn -M look: the first is where new images go.
var MachineDirs = []string{"/var/lib/machines", "/usr/local/lib/machines", "/usr/lib/machines", "/var/lib/container"}

// ImageDirs is where images are looked up through getenv (os.Getenv when
// nil): $NETSPAWN_IMAGES_DIR alone when set, else MachineDirs.
func ImageDirs(getenv func(string) string) []string {
	if getenv == nil {
		getenv = os.Getenv
	}
	if d := getenv("NETSPAWN_IMAGES_DIR"); d != "" {
		return []string{d}
	}
	return append([]string(nil), MachineDirs...)
}

func envDir(name, def string) string {
	if d := os.Getenv(name); d != "" {
		return d
	}
	return def
}
