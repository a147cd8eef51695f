package config

import "os"

// Storage holds the root file system and user namespace options. It is
// embedded in Config, so its fields read as cfg.Ephemeral and so on.
type Storage struct {
	PrivateUsers PrivateUsers   `json:"private_users,omitempty"` // -U, --private-users=, --private-users-ownership=
	Ephemeral    bool           `json:"ephemeral,omitempty"`     // -x
	Template     string         `json:"template,omitempty"`      // --template=
	Volatile     VolatileMode   `json:"volatile,omitempty"`      // --volatile=
	Overlays     []OverlayMount `json:"overlays,omitempty"`      // --overlay=, --overlay-ro=
	Inaccessible []string       `json:"inaccessible,omitempty"`  // --inaccessible=
	DiskImage                   // -i and the options of disk images (image.go)

	storageSet storageSet // which of these the command line set
}

// HostRootAllowed reports whether -D / may be used: only when the host's
// root is not written to (-x, --volatile=yes or state), as nspawn allows.
func HostRootAllowed(cfg *Config) bool {
	return cfg.Ephemeral || cfg.Volatile == VolatileYes || cfg.Volatile == VolatileState
}

// HostMachineName is the machine name of a container on the host's root:
// the host's name, as nspawn uses.
func HostMachineName() string {
	if h, err := os.Hostname(); err == nil {
		if n := CleanMachineName(h); ValidMachineName(n) {
			return n
		}
	}
	return "host"
}

// UserNamespacesSupported reports whether this kernel has user namespaces.
func UserNamespacesSupported() bool {
	_, err := os.Stat("/proc/self/ns/user")
	return err == nil
}
