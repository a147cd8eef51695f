// Package spawn runs a container: it turns a Config (built from
// systemd-nspawn compatible flags and .nspawn settings files) into a process
// tree in new namespaces rooted at a directory tree.
package config

import (
	"syscall"

	"github.com/netspawn/netspawn/spawn/seccomp"
)

// ConsoleMode is nspawn's --console= setting.
type ConsoleMode string

// Console modes, as systemd-nspawn names them.
const (
	ConsoleInteractive ConsoleMode = "interactive"
	ConsoleReadOnly    ConsoleMode = "read-only"
	ConsolePassive     ConsoleMode = "passive"
	ConsolePipe        ConsoleMode = "pipe"
	ConsoleAutoPipe    ConsoleMode = "autopipe"
)

// BindMount is one --bind= or --bind-ro= request.
type BindMount struct {
	Source    string // absolute host path; empty: a temporary directory removed on exit
	Dest      string // absolute path inside the container
	ReadOnly  bool
	Recursive bool // rbind (default) or norbind
	// SourceInRoot is set for "+SRC": Source is relative to the container's root.
	SourceInRoot bool
	// IDMap is the idmap option with -U: "" (noidmap), "idmap" or "rootidmap" (storage.go).
	IDMap string `json:",omitempty"`
}

// TmpfsMount is one --tmpfs= request.
type TmpfsMount struct {
	Dest    string // absolute path inside the container
	Options string // mount options; empty means mode=0755
}

// Port is one -p/--port= forward.
type Port struct {
	Protocol      string // "tcp" or "udp"
	HostPort      uint16
	ContainerPort uint16
}

// VethExtra is one --network-veth-extra=HOST[:CONTAINER] pair.
type VethExtra struct {
	Host      string
	Container string
}

// Network holds the networking flags.
type Network struct {
	Private       bool // --private-network, or implied by any of the below
	Veth          bool // -n / --network-veth
	VethExtra     []VethExtra
	Bridge        string   // --network-bridge=
	Zone          string   // --network-zone=NAME: the zone name, without the "vz-" bridge prefix
	MACVLAN       []string // --network-macvlan=: "HOSTIF:CTIF" (CTIF defaults to mv-HOSTIF)
	IPVLAN        []string // --network-ipvlan=: "HOSTIF:CTIF" (CTIF defaults to iv-HOSTIF)
	Interfaces    []string // --network-interface=: "HOSTIF:CTIF" (CTIF defaults to HOSTIF)
	NamespacePath string   // --network-namespace-path=
	Ports         []Port
}

// Config is everything needed to run one container.
type Config struct {
	Directory string   // -D: the root tree (absolute, symlinks resolved)
	Machine   string   // -M: machine name
	Hostname  string   // --hostname; empty: the machine name
	Boot      bool     // -b
	AsPid2    bool     // -a
	Command   []string // payload and its arguments; empty: the user's shell (or init with -b)
	Env       []string // -E NAME=VALUE, in order
	Chdir     string   // --chdir
	User      string   // -u
	// KillSignal is sent to the container's PID 1 when netspawn gets SIGTERM/SIGINT.
	// Zero means the default (see DefaultKillSignal).
	KillSignal syscall.Signal
	Quiet      bool
	Binds      []BindMount
	Tmpfs      []TmpfsMount
	ReadOnly   bool
	ResolvConf string // --resolv-conf= mode; "" = auto
	Timezone   string // --timezone= mode; "" = auto
	// CapAdd and CapDrop are bit masks over capability numbers (1<<CAP_X).
	CapAdd          uint64
	CapDrop         uint64
	NoNewPrivileges bool
	// SystemCallFilter holds --system-call-filter= values, applied in order
	// to nspawn's default allow-list.
	SystemCallFilter []string
	Console          ConsoleMode // "" = autopipe-like default (interactive on a tty, pipe otherwise)
	Settings         string      // --settings= mode: yes, no, override, trusted ("" = yes)
	Register         bool        // --register=, accepted for compatibility (default true)
	KeepUnit         bool        // accepted for compatibility
	UUID             string      // --uuid
	Network          Network
	// Properties are --property= assignments (cgroup settings), NAME=VALUE.
	Properties []string
	Storage    // user namespace and root file system options (storage.go)
	// SuppressSync makes sync(2) and its kin no-ops (--suppress-sync=,
	// $SYSTEMD_SUPPRESS_SYNC).
	SuppressSync bool
	// Rlimits are --rlimit= and [Exec] Limit*= values, by RLIMIT_* number;
	// nil ones get nspawn's defaults (EffectiveRlimits, limits.go).
	Rlimits [NumRlimits]*Rlimit `json:",omitempty"`
	// OOMScoreAdjust is --oom-score-adjust= (nil: the host's value stays).
	OOMScoreAdjust *int `json:",omitempty"`
	// CPUAffinity is --cpu-affinity=: CPU numbers, sorted (nil: unchanged).
	CPUAffinity []int `json:",omitempty"`
	// Personality is --personality= (an architecture name; "": unchanged).
	Personality string `json:",omitempty"`
	// AmbientCaps is --ambient-capability=, a mask like CapAdd.
	AmbientCaps uint64 `json:",omitempty"`
	// Credentials are --set-credential= and --load-credential=, in order:
	// files in CredentialsDir inside, named in $CREDENTIALS_DIRECTORY.
	Credentials []Credential `json:",omitempty"`
	// PivotRoot and PivotRootOld are --pivot-root=NEW[:OLD]: the directory
	// of the image that becomes the container's root, and where the image's
	// own root is then ("": nowhere).
	PivotRoot    string `json:",omitempty"`
	PivotRootOld string `json:",omitempty"`
	// Slice is -S/--slice=: the slice unit the machine's scope goes in
	// ("": machine.slice).
	Slice string `json:",omitempty"`
	// Background is --background=, an ANSI SGR color for the terminal.
	Background string `json:",omitempty"`
	// NotifyReady is --notify-ready= ([Exec] NotifyReady=): netspawn tells
	// its own supervisor ($NOTIFY_SOCKET) READY=1 only once the container's
	// PID 1 sent READY=1 to /run/host/notify, not as soon as it started.
	NotifyReady bool `json:",omitempty"`
	// SELinuxContext is -Z/--selinux-context=: the label the payload is
	// executed with. SELinuxAPIFSContext is -L/--selinux-apifs-context=:
	// the context= of the container's API and tmpfs file systems. Both
	// need SELinux enabled on the host (selinux.go in spawn).
	SELinuxContext      string `json:",omitempty"`
	SELinuxAPIFSContext string `json:",omitempty"`
	// LinkJournal is --link-journal='s mode (LinkJournalAuto, No, Guest,
	// Host) and LinkJournalTry its try- prefix: no error where the host
	// cannot take the link.
	LinkJournal    string `json:",omitempty"`
	LinkJournalTry bool   `json:",omitempty"`
	// BindUsers are --bind-user= names: host users whose records and home
	// directories the container gets (spawn/binduser.go).
	BindUsers []string `json:",omitempty"`
	HostEnv            // what systemd-nspawn's own environment variables ask for

	// OCIBundle is --oci-bundle= (absolute), whose config.json was merged
	// into this configuration; no .nspawn file is read then.
	OCIBundle string `json:",omitempty"`
	// OCIUser is the bundle's process.user: numeric IDs used as they are,
	// instead of User looked up in the container's /etc/passwd.
	OCIUser *OCIUser `json:",omitempty"`
	// MaskedPaths are the bundle's linux.maskedPaths: like Inaccessible,
	// but a path missing in the container is skipped.
	MaskedPaths []string `json:",omitempty"`
	// SeccompProfile is the bundle's linux.seccomp: the container's system
	// call filter instead of nspawn's default allow-list (nil: the default,
	// edited by SystemCallFilter).
	SeccompProfile *seccomp.Profile `json:",omitempty"`
	// ExtraDevices are the bundle's linux.devices: nodes made in the
	// container besides its standard /dev.
	ExtraDevices []DeviceNode `json:",omitempty"`
	// DeviceAllow are devices the container may use besides nspawn's
	// closed list (the bundle's linux.resources.devices allow entries).
	DeviceAllow []DeviceAllow `json:",omitempty"`

	// SettingsFile is the .nspawn file LoadSettings applied ("" if none),
	// and SettingsTrusted whether privileged keys in it were honoured.
	SettingsFile    string
	SettingsTrusted bool
	// Warnings are non-fatal problems found while parsing flags and
	// settings (for example privileged keys ignored from an untrusted
	// file); they are also logged with log/slog.
	Warnings []string

	// cmdline records which settings the command line set (settingMask
	// bits), so that a .nspawn file does not override them.
	cmdline settingMask
}

// HostEnv is what systemd-nspawn's environment variables asked of this
// container (NspawnEnv), each with nspawn's meaning.
type HostEnv struct {
	NoCgroupNS     bool   // $SYSTEMD_NSPAWN_USE_CGNS=0: the host's cgroup namespace
	APIVFSWritable string // $SYSTEMD_NSPAWN_API_VFS_WRITABLE: "" (read-only), "yes" or "network"
	NoTmpfsTmp     bool   // $SYSTEMD_NSPAWN_TMPFS_TMP=0: the image's own /tmp
	NoLock         bool   // $SYSTEMD_NSPAWN_LOCK=0: no lock on the image
	// ContainerService is $container for the payload and the machine's
	// service ($SYSTEMD_NSPAWN_CONTAINER_SERVICE); "" is "netspawn".
	ContainerService string
	// ShareIPC, SharePID and ShareUTS keep the host's namespace
	// ($SYSTEMD_NSPAWN_SHARE_NS_*, $SYSTEMD_NSPAWN_SHARE_SYSTEM).
	ShareIPC, SharePID, ShareUTS bool
	// NetworkMAC is host0's MAC ($SYSTEMD_NSPAWN_NETWORK_MAC); "" is the
	// one hashed from the machine name.
	NetworkMAC string
}

// Service is the container manager's name the payload sees in $container.
func (c *Config) Service() string {
	if c.ContainerService != "" {
		return c.ContainerService
	}
	return "netspawn"
}

// NeedsNetworkController reports whether the container's networking is made
// by netspawnd (links, addresses), beyond a bare private namespace.
func (c *Config) NeedsNetworkController() bool {
	n := c.Network
	return n.Veth || len(n.VethExtra) > 0 || n.Bridge != "" || n.Zone != "" ||
		len(n.MACVLAN) > 0 || len(n.IPVLAN) > 0 || len(n.Interfaces) > 0
}
