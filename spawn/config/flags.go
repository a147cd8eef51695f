package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/netspawn/netspawn/spawn/seccomp"

	"github.com/spf13/pflag"
)

// ErrVersion is returned by ParseArgs for --version.
var ErrVersion = errors.New("version requested")

// settingMask bits record which settings the command line set; a .nspawn
// file does not override those unless --settings=override (nspawn's
// SettingsMask).
type settingMask uint64

const (
	setStartMode settingMask = 1 << iota // -b, -a, or a command
	setEnvironment
	setUser
	setCapability
	setKillSignal
	setMachineID
	setNetwork
	setPorts
	setReadOnly
	setCustomMounts
	setWorkingDirectory
	setHostname
	setNoNewPrivileges
	setResolvConf
	setTimezone
	setConsole
	setDirectory
	setSyscallFilter
	setSuppressSync
	setPersonality
	setOOMScoreAdjust
	setCPUAffinity
	setPivotRoot
	setNotifyReady
	setLinkJournal
	setBindUser
	setRlimitFirst // NumRlimits bits from here, one per resource limit

	setAll = setRlimitFirst<<NumRlimits - 1
)

type argKind int

const (
	noArg argKind = iota
	reqArg
	optArg
)

// Sentinels pflag hands us for a flag given without a value.
const (
	noArgValue  = "\x00noarg"
	optArgValue = "\x00noval"
)

// flagDef describes one systemd-nspawn option.
type flagDef struct {
	long  string
	short string
	kind  argKind
	meta  string // value placeholder in --help
	help  string
	group string
	// enum is the fixed set of values the option takes, when it has one
	// (booleans aside: a BOOLEAN meta says so). Shell completions offer
	// them and the man page lists them; the set function stays the judge.
	enum []string
	// set applies the option; nil means netspawn does not support it yet.
	set func(p *argParser, v string) error
	// noop, for unsupported options, accepts values that ask for nspawn's
	// default behaviour (so "--private-users=no" is harmless).
	noop func(v string) bool
}

// Option groups, in the order systemd-nspawn --help shows them.
var flagGroups = []string{"", "Image", "Execution", "System Identity", "Properties",
	"User Namespacing", "Networking", "Security", "Resources", "Integration", "Mounts",
	"Input/Output", "Credentials"}

// flagTable is every systemd-nspawn option. Entries with a nil set are
// recognised but not supported yet: give them a set function to support them.
var flagTable = []flagDef{
	{long: "help", short: "h", kind: noArg, help: "Show this help"},
	{long: "version", kind: noArg, help: "Print version string", set: func(*argParser, string) error { return ErrVersion }},
	{long: "quiet", short: "q", kind: noArg, help: "Do not show status information", set: func(p *argParser, _ string) error { p.c.Quiet = true; return nil }},
	{long: "no-pager", kind: noArg, help: "Accepted for compatibility (netspawn never uses a pager)", set: func(*argParser, string) error { return nil }},
	{long: "settings", kind: reqArg, enum: []string{"yes", "no", "override", "trusted"}, meta: "BOOLEAN|override|trusted", help: "Load additional settings from .nspawn file", set: (*argParser).settings},

	{group: "Image", long: "directory", short: "D", kind: reqArg, meta: "PATH", help: "Root directory for the container", set: (*argParser).directory},
	{group: "Image", long: "template", kind: reqArg, set: setTemplate, meta: "PATH", help: "Initialize root directory from template directory, if missing"},
	{group: "Image", long: "ephemeral", short: "x", kind: noArg, set: setEphemeral, help: "Run container with snapshot of root directory, and remove it after exit"},
	{group: "Image", long: "image", short: "i", kind: reqArg, meta: "PATH", help: "Root file system disk image (or device node) for the container", set: (*argParser).image},
	{group: "Image", long: "image-policy", kind: reqArg, meta: "POLICY", help: "Specify disk image dissection policy", set: (*argParser).imagePolicy},
	{group: "Image", long: "oci-bundle", kind: reqArg, meta: "PATH", help: "OCI bundle directory", set: func(p *argParser, v string) error {
		if v == "" {
			return errors.New("--oci-bundle= needs the bundle directory (the one holding config.json)")
		}
		p.c.OCIBundle = v
		return nil
	}},
	{group: "Image", long: "read-only", kind: noArg, help: "Mount the root directory read-only", set: func(p *argParser, _ string) error {
		p.c.ReadOnly = true
		p.c.cmdline |= setReadOnly
		return nil
	}},
	{group: "Image", long: "volatile", kind: optArg, enum: []string{"no", "yes", "state", "overlay"}, set: setVolatile, meta: "MODE", help: "Run the system in volatile mode"},
	{group: "Image", long: "root-hash", kind: reqArg, meta: "HASH", help: "Specify verity root hash for root disk image", set: (*argParser).rootHash},
	{group: "Image", long: "root-hash-sig", kind: reqArg, meta: "SIG", help: "Specify pkcs7 signature of root hash for verity", set: (*argParser).rootHashSig},
	{group: "Image", long: "verity-data", kind: reqArg, meta: "PATH", help: "Specify hash device for verity", set: (*argParser).verityData},
	{group: "Image", long: "pivot-root", kind: reqArg, meta: "PATH[:PATH]", help: "Pivot root to given directory in the container", set: func(p *argParser, v string) error {
		n, o, err := ParsePivotRoot(v)
		if err != nil {
			return err
		}
		p.c.PivotRoot, p.c.PivotRootOld = n, o
		p.c.cmdline |= setPivotRoot
		return nil
	}},

	{group: "Execution", long: "as-pid2", short: "a", kind: noArg, help: "Maintain a stub init as PID1, invoke binary as PID2", set: (*argParser).asPid2},
	{group: "Execution", long: "boot", short: "b", kind: noArg, help: "Boot up full system (i.e. invoke init)", set: (*argParser).boot},
	{group: "Execution", long: "chdir", kind: reqArg, meta: "PATH", help: "Set working directory in the container", set: (*argParser).chdir},
	{group: "Execution", long: "setenv", short: "E", kind: reqArg, meta: "NAME[=VALUE]", help: "Pass an environment variable to PID 1", set: (*argParser).setenv},
	{group: "Execution", long: "user", short: "u", kind: reqArg, meta: "USER", help: "Run the command under specified user or UID", set: func(p *argParser, v string) error {
		p.c.User = v
		p.c.cmdline |= setUser
		return nil
	}},
	{group: "Execution", long: "kill-signal", kind: reqArg, meta: "SIGNAL", help: "Select signal to use for shutting down PID 1", set: (*argParser).killSignal},
	{group: "Execution", long: "notify-ready", kind: reqArg, meta: "BOOLEAN", help: "Receive notifications from the child init process", set: (*argParser).notifyReady},
	{group: "Execution", long: "suppress-sync", kind: reqArg, meta: "BOOLEAN", help: "Suppress any form of disk data synchronization", set: (*argParser).suppressSync},

	{group: "System Identity", long: "machine", short: "M", kind: reqArg, meta: "NAME", help: "Set the machine name for the container", set: (*argParser).machine},
	{group: "System Identity", long: "hostname", kind: reqArg, meta: "NAME", help: "Override the hostname for the container", set: (*argParser).hostname},
	{group: "System Identity", long: "uuid", kind: reqArg, meta: "UUID", help: "Set a specific machine UUID for the container", set: (*argParser).uuid},

	{group: "Properties", long: "slice", short: "S", kind: reqArg, meta: "SLICE", help: "Place the container in the specified slice", set: func(p *argParser, v string) error {
		sl, err := ParseSlice(v)
		p.c.Slice = sl
		return err
	}},
	{group: "Properties", long: "property", kind: reqArg, meta: "NAME=VALUE", help: "Set scope unit property (stored; no systemd scope is made)", set: (*argParser).property},
	{group: "Properties", long: "register", kind: reqArg, meta: "BOOLEAN", help: "Register the machine with netspawnd (default yes)", set: (*argParser).register},
	{group: "Properties", long: "keep-unit", kind: noArg, help: "Reuse the calling service unit (accepted for compatibility, no effect)", set: func(p *argParser, _ string) error { p.c.KeepUnit = true; return nil }},

	{group: "User Namespacing", long: "private-users", kind: optArg, enum: []string{"no", "yes", "pick", "identity"}, set: setPrivateUsers, meta: "no|yes|pick|identity|UIDBASE[:NUIDS]", help: "Run within a user namespace"},
	{group: "User Namespacing", long: "private-users-ownership", kind: reqArg, enum: []string{"off", "chown", "map", "auto"}, set: setPrivateUsersOwnership, meta: "MODE", help: "Adjust ('chown') or map ('map') OS tree ownership to private UID/GID range"},
	{group: "User Namespacing", long: "private-users-chown", kind: optArg, set: setPrivateUsersChown, help: "Old name of --private-users-ownership=chown"},
	{group: "User Namespacing", short: "U", kind: noArg, set: setShortU, help: "Equivalent to --private-users=pick and --private-users-ownership=auto"},

	{group: "Networking", long: "private-network", kind: noArg, help: "Disable network in container", set: func(p *argParser, _ string) error {
		p.c.Network.Private = true
		p.c.cmdline |= setNetwork
		return nil
	}},
	{group: "Networking", long: "network-interface", kind: reqArg, meta: "HOSTIF[:CONTAINERIF]", help: "Assign an existing network interface to the container", set: (*argParser).networkInterface},
	{group: "Networking", long: "network-macvlan", kind: reqArg, meta: "HOSTIF[:CONTAINERIF]", help: "Create a macvlan network interface based on an existing network interface to the container", set: (*argParser).networkMACVLAN},
	{group: "Networking", long: "network-ipvlan", kind: reqArg, meta: "HOSTIF[:CONTAINERIF]", help: "Create an ipvlan network interface based on an existing network interface to the container", set: (*argParser).networkIPVLAN},
	{group: "Networking", long: "network-veth", short: "n", kind: noArg, help: "Add a virtual Ethernet connection between host and container", set: (*argParser).networkVeth},
	{group: "Networking", long: "network-veth-extra", kind: reqArg, meta: "HOSTIF[:CONTAINERIF]", help: "Add an additional virtual Ethernet link between host and container", set: (*argParser).networkVethExtra},
	{group: "Networking", long: "network-bridge", kind: reqArg, meta: "INTERFACE", help: "Add a virtual Ethernet connection to the container and attach it to an existing bridge on the host", set: (*argParser).networkBridge},
	{group: "Networking", long: "network-zone", kind: reqArg, meta: "NAME", help: "Similar, but attach the new interface to an automatically managed bridge interface", set: (*argParser).networkZone},
	{group: "Networking", long: "network-namespace-path", kind: reqArg, meta: "PATH", help: "Set network namespace to the one represented by the specified kernel namespace file node", set: (*argParser).networkNamespacePath},
	{group: "Networking", long: "port", short: "p", kind: reqArg, meta: "[PROTOCOL:]HOSTPORT[:CONTAINERPORT]", help: "Expose a container IP port on the host", set: (*argParser).port},

	{group: "Security", long: "capability", kind: reqArg, meta: "CAP", help: "In addition to the default, retain specified capability", set: (*argParser).capability},
	{group: "Security", long: "drop-capability", kind: reqArg, meta: "CAP", help: "Drop the specified capability from the default set", set: (*argParser).dropCapability},
	{group: "Security", long: "ambient-capability", kind: reqArg, meta: "CAP", help: "Sets the specified capability for the started process", set: (*argParser).ambientCapability},
	{group: "Security", long: "no-new-privileges", kind: reqArg, meta: "BOOLEAN", help: "Set PR_SET_NO_NEW_PRIVS flag for container payload", set: (*argParser).noNewPrivileges},
	{group: "Security", long: "system-call-filter", kind: reqArg, meta: "LIST|~LIST", help: "Permit/prohibit specific system calls", set: func(p *argParser, v string) error {
		if err := seccomp.Default(0).Apply(v); err != nil {
			return fmt.Errorf("--system-call-filter=%s: %w", v, err)
		}
		p.c.SystemCallFilter = append(p.c.SystemCallFilter, v)
		p.c.cmdline |= setSyscallFilter
		return nil
	}},
	{group: "Security", long: "selinux-context", short: "Z", kind: reqArg, meta: "SECLABEL", help: "Set the SELinux security context to be used by processes in the container",
		set: func(p *argParser, v string) error { p.c.SELinuxContext = v; return nil }},
	{group: "Security", long: "selinux-apifs-context", short: "L", kind: reqArg, meta: "SECLABEL", help: "Set the SELinux security context to be used by API/tmpfs file systems in the container",
		set: func(p *argParser, v string) error { p.c.SELinuxAPIFSContext = v; return nil }},
	{group: "Security", long: "share-system", kind: noArg, help: "Obsolete: share the host's IPC, PID and UTS namespaces (use $SYSTEMD_NSPAWN_SHARE_*)", set: (*argParser).shareSystem},

	{group: "Resources", long: "rlimit", kind: reqArg, meta: "NAME=LIMIT", help: "Set a resource limit for the payload", set: (*argParser).rlimit},
	{group: "Resources", long: "oom-score-adjust", kind: reqArg, meta: "VALUE", help: "Adjust the OOM score value for the payload", set: (*argParser).oomScoreAdjust},
	{group: "Resources", long: "cpu-affinity", kind: reqArg, meta: "CPUS", help: "Adjust the CPU affinity of the container", set: (*argParser).cpuAffinity},
	{group: "Resources", long: "personality", kind: reqArg, meta: "ARCH", help: "Pick personality for this container", set: (*argParser).personality},

	{group: "Integration", long: "resolv-conf", kind: reqArg, enum: ResolvConfModes, meta: "MODE", help: "Select mode of /etc/resolv.conf initialization", set: (*argParser).resolvConf},
	{group: "Integration", long: "timezone", kind: reqArg, enum: TimezoneModes, meta: "MODE", help: "Select mode of /etc/localtime initialization", set: (*argParser).timezone},
	{group: "Integration", long: "link-journal", kind: reqArg, enum: []string{"no", "auto", "guest", "host", "try-guest", "try-host"}, meta: "MODE", help: "Link up guest journal, one of no, auto, guest, host, try-guest, try-host", set: (*argParser).linkJournal},
	{group: "Integration", short: "j", kind: noArg, help: "Equivalent to --link-journal=try-guest", set: func(p *argParser, _ string) error { return p.linkJournal("try-guest") }},

	{group: "Mounts", long: "bind", kind: reqArg, meta: "PATH[:PATH[:OPTIONS]]", help: "Bind mount a file or directory from the host into the container", set: func(p *argParser, v string) error { return p.bind(v, false) }},
	{group: "Mounts", long: "bind-ro", kind: reqArg, meta: "PATH[:PATH[:OPTIONS]]", help: "Similar, but creates a read-only bind mount", set: func(p *argParser, v string) error { return p.bind(v, true) }},
	{group: "Mounts", long: "inaccessible", kind: reqArg, set: setInaccessible, meta: "PATH", help: "Over-mount file node with inaccessible node to mask it"},
	{group: "Mounts", long: "tmpfs", kind: reqArg, meta: "PATH[:OPTIONS]", help: "Mount an empty tmpfs to the specified directory", set: (*argParser).tmpfs},
	{group: "Mounts", long: "overlay", kind: reqArg, set: setOverlay, meta: "PATH[:PATH...]:PATH", help: "Create an overlay mount from the host to the container"},
	{group: "Mounts", long: "overlay-ro", kind: reqArg, set: setOverlayRo, meta: "PATH[:PATH...]:PATH", help: "Similar, but creates a read-only overlay mount"},
	{group: "Mounts", long: "bind-user", kind: reqArg, meta: "NAME", help: "Bind user from host to container", set: (*argParser).bindUser},

	{group: "Input/Output", long: "console", kind: reqArg, enum: ConsoleModes, meta: "MODE", help: "Select how stdin/stdout/stderr and /dev/console are set up: interactive, read-only, passive, pipe, autopipe", set: (*argParser).console},
	{group: "Input/Output", long: "pipe", short: "P", kind: noArg, help: "Equivalent to --console=pipe (implies --quiet)", set: (*argParser).pipe},
	{group: "Input/Output", long: "background", kind: reqArg, meta: "COLOR", help: "Set ANSI color for background", set: (*argParser).background},

	{group: "Credentials", long: "set-credential", kind: reqArg, meta: "ID:VALUE", help: "Pass a credential with literal value to container", set: func(p *argParser, v string) error {
		c, err := ParseSetCredential(v, p.c.Credentials)
		if err != nil {
			return err
		}
		p.c.Credentials = append(p.c.Credentials, c)
		return nil
	}},
	{group: "Credentials", long: "load-credential", kind: reqArg, meta: "ID:PATH", help: "Load credential to pass to container from file or AF_UNIX stream socket", set: func(p *argParser, v string) error {
		c, err := ParseLoadCredential(v, p.c.Credentials, p.env.getenv)
		if err != nil {
			return err
		}
		p.c.Credentials = append(p.c.Credentials, c)
		return nil
	}},
}

// flagName is how messages name an option: --long, or -x for short-only ones.
func (d *flagDef) flagName() string {
	if d.long != "" {
		return "--" + d.long
	}
	return "-" + d.short
}

// UnsupportedFlags lists the systemd-nspawn options netspawn recognises but
// does not implement yet.
func UnsupportedFlags() []string {
	var out []string
	for i := range flagTable {
		if flagTable[i].set == nil && flagTable[i].long != "help" {
			out = append(out, flagTable[i].flagName())
		}
	}
	sort.Strings(out)
	return out
}

// Usage is the --help text: every option with a one-line description,
// grouped as systemd-nspawn groups them.
func Usage() string {
	var b strings.Builder
	b.WriteString("netspawn [OPTIONS...] [COMMAND [ARGUMENTS...]]\n\n")
	b.WriteString("Spawn a command or OS in a light-weight container, with real networking.\n")
	for _, g := range flagGroups {
		if g != "" {
			fmt.Fprintf(&b, "\n%s:\n", g)
		} else {
			b.WriteString("\n")
		}
		for i := range flagTable {
			d := &flagTable[i]
			if d.group != g {
				continue
			}
			var left string
			switch {
			case d.short != "" && d.long != "":
				left = "-" + d.short + " --" + d.long
			case d.short != "":
				left = "-" + d.short
			default:
				left = "   --" + d.long
			}
			switch d.kind {
			case reqArg:
				left += "=" + d.meta
			case optArg:
				if d.meta != "" {
					left += "[=" + d.meta + "]"
				}
			}
			help := d.help
			if d.set == nil && d.long != "help" {
				help += " (not supported yet)"
			}
			if len(left) <= 24 {
				fmt.Fprintf(&b, "  %-24s  %s\n", left, help)
			} else {
				fmt.Fprintf(&b, "  %s\n  %-24s  %s\n", left, "", help)
			}
		}
	}
	b.WriteString("\nThe default machine name is the directory's base name; -M alone looks the\n" +
		"directory up in $NETSPAWN_IMAGES_DIR or /var/lib/machines.\n")
	return b.String()
}

// sysEnv is what ParseArgs needs from the process environment; tests
// replace it.
type sysEnv struct {
	getenv    func(string) string
	getwd     func() (string, error)
	imageDirs []string                     // nil: ImageDirs(getenv)
	readFile  func(string) ([]byte, error) // nil: os.ReadFile
}

func osEnv() sysEnv { return sysEnv{getenv: os.Getenv, getwd: os.Getwd} }

// argParser holds the state of one command line parse.
type argParser struct {
	c   *Config
	env sysEnv
}

// ParseArgs parses a systemd-nspawn style command line (without argv[0])
// into a Config. Options stop at the first non-option argument or "--": the
// rest is the command. It returns an error wrapping pflag.ErrHelp for
// -h/--help and ErrVersion for --version. The machine name and directory
// are filled in as nspawn does; .nspawn settings are applied later by
// LoadSettings.
func ParseArgs(args []string) (*Config, error) {
	return parseArgs(args, osEnv())
}

func parseArgs(args []string, env sysEnv) (*Config, error) {
	c, err := parseArgsRaw(args, env)
	return c, oneLine(err)
}

// oneLine keeps an error message on one line: control characters from
// arguments are escaped. Sentinel errors pass unchanged.
func oneLine(err error) error {
	if err == nil || !strings.ContainsAny(err.Error(), "\n\r") {
		return err
	}
	q := strconv.Quote(err.Error())
	return &oneLineError{msg: q[1 : len(q)-1], err: err}
}

type oneLineError struct {
	msg string
	err error
}

func (e *oneLineError) Error() string { return e.msg }
func (e *oneLineError) Unwrap() error { return e.err }

func parseArgsRaw(args []string, env sysEnv) (*Config, error) {
	p := &argParser{c: &Config{Register: true, Settings: "yes"}, env: env}
	if env.getenv != nil {
		if err := applyNspawnEnv(p.c, env.getenv); err != nil {
			return nil, err
		}
	}
	fs := pflag.NewFlagSet("netspawn", pflag.ContinueOnError)
	fs.SetInterspersed(false)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	byName := map[string]*flagDef{}
	for i := range flagTable {
		d := &flagTable[i]
		if d.long == "help" {
			continue // pflag reports -h/--help as ErrHelp
		}
		name := d.long
		if name == "" {
			name = "short-" + d.short // never typed: short-only options
		}
		byName[name] = d
		f := fs.VarPF(stringValue{new(string)}, name, d.short, d.help)
		switch d.kind {
		case noArg:
			f.NoOptDefVal = noArgValue
		case optArg:
			f.NoOptDefVal = optArgValue
		}
	}
	args, err := expandAbbreviations(args)
	if err != nil {
		return nil, err
	}
	err = fs.ParseAll(args, func(f *pflag.Flag, value string) error {
		d := byName[f.Name]
		if d == nil {
			return fmt.Errorf("unknown option --%s", f.Name)
		}
		return p.apply(d, value)
	})
	if err != nil {
		if errors.Is(err, pflag.ErrHelp) || errors.Is(err, ErrVersion) {
			return nil, err
		}
		msg := err.Error()
		if strings.HasPrefix(msg, "unknown") || strings.HasPrefix(msg, "flag needs") || strings.HasPrefix(msg, "bad flag") {
			return nil, fmt.Errorf("%s (see netspawn --help)", msg)
		}
		return nil, err
	}
	if rest := fs.Args(); len(rest) > 0 {
		p.c.Command = append([]string(nil), rest...)
		p.c.cmdline |= setStartMode
	}
	if err := p.finish(); err != nil {
		return nil, err
	}
	return p.c, nil
}

// expandAbbreviations rewrites unambiguous prefixes of long options to the
// full name (--dir=x to --directory=x), as getopt_long accepts them; pflag
// does not. It stops where option parsing stops.
func expandAbbreviations(args []string) ([]string, error) {
	shortArg := map[byte]argKind{}
	for i := range flagTable {
		if d := &flagTable[i]; d.short != "" {
			shortArg[d.short[0]] = d.kind
		}
	}
	out := append([]string(nil), args...)
	for i := 0; i < len(out); i++ {
		a := out[i]
		if a == "--" || len(a) < 2 || a[0] != '-' {
			break
		}
		if a[1] != '-' { // a bundle of short options
			for j := 1; j < len(a); j++ {
				if shortArg[a[j]] == reqArg {
					if j == len(a)-1 {
						i++ // the value is the next argument
					}
					break
				}
			}
			continue
		}
		name, val, hasVal := strings.Cut(a[2:], "=")
		d, err := lookupLong(name)
		if err != nil {
			return nil, err
		}
		if d == nil {
			continue // pflag reports it
		}
		if d.long != name {
			out[i] = "--" + d.long
			if hasVal {
				out[i] += "=" + val
			}
		}
		if d.kind == reqArg && !hasVal {
			i++
		}
	}
	return out, nil
}

// lookupLong finds a long option by its name or an unambiguous prefix.
func lookupLong(name string) (*flagDef, error) {
	if name == "" {
		return nil, nil
	}
	var found []*flagDef
	for i := range flagTable {
		d := &flagTable[i]
		if d.long == name {
			return d, nil
		}
		if d.long != "" && strings.HasPrefix(d.long, name) {
			found = append(found, d)
		}
	}
	switch len(found) {
	case 0:
		return nil, nil
	case 1:
		return found[0], nil
	}
	var names []string
	for _, d := range found {
		names = append(names, "--"+d.long)
	}
	return nil, fmt.Errorf("option --%s is ambiguous; possibilities: %s", name, strings.Join(names, " "))
}

// stringValue is a pflag.Value that only carries strings to ParseAll.
type stringValue struct{ s *string }

func (v stringValue) String() string     { return *v.s }
func (v stringValue) Set(s string) error { *v.s = s; return nil }
func (v stringValue) Type() string       { return "string" }

func (p *argParser) apply(d *flagDef, value string) error {
	switch d.kind {
	case noArg:
		if value != noArgValue {
			return fmt.Errorf("option %s does not take an argument", d.flagName())
		}
		value = ""
	case optArg:
		if value == optArgValue {
			value = ""
		}
	}
	if d.set == nil {
		if d.noop != nil && d.kind != noArg && d.noop(value) {
			return nil
		}
		return fmt.Errorf("%s is not supported yet", d.flagName())
	}
	return d.set(p, value)
}

// finish fills in defaults after all options were seen and checks the
// combination, as nspawn's parse_argv, determine_names and verify_arguments.
func (p *argParser) finish() error {
	c := p.c
	if c.OCIBundle != "" && c.Image != "" {
		return errors.New("--oci-bundle= and -i/--image= may not be combined: a bundle brings its own root directory")
	}
	if c.Image != "" {
		return p.finishImage()
	}
	if c.OCIBundle != "" {
		if err := p.ociBundle(); err != nil {
			return err
		}
	}
	if c.Directory == "" {
		if c.Machine != "" {
			dirs := p.env.imageDirs
			if dirs == nil {
				dirs = ImageDirs(p.env.getenv)
			}
			dir, img, err := FindMachineImage(c.Machine, dirs)
			if err != nil {
				return err
			}
			if img != "" {
				c.Image = img
				return p.finishImage()
			}
			c.Directory = dir
		} else {
			wd, err := p.env.getwd()
			if err != nil {
				return fmt.Errorf("cannot determine the current directory, use -D: %w", err)
			}
			c.Directory = wd
		}
	}
	abs, err := p.abs(c.Directory)
	if err != nil {
		return err
	}
	c.Directory = abs
	if c.Directory == "/" && !HostRootAllowed(c) {
		return errors.New("running a container on the host's root directory (-D /) is not supported: give the container its own tree with -D DIR (or use -x or --volatile=yes|state)")
	}
	if c.Directory == "/" && c.Machine == "" {
		c.Machine = HostMachineName() // storage.go
	}
	if c.Machine == "" {
		c.Machine = CleanMachineName(filepath.Base(c.Directory))
		if !ValidMachineName(c.Machine) {
			return fmt.Errorf("cannot derive a machine name from directory %s, please use -M NAME", c.Directory)
		}
	}
	return p.finishSettings()
}

func (p *argParser) finishSettings() error {
	c := p.c
	switch c.Settings {
	case "override":
		c.cmdline = 0 // the file wins
	case "no":
		c.cmdline = setAll
	}
	return c.validate(c.Settings == "no")
}

// ociBundle reads --oci-bundle='s config.json and merges it under the
// command line, before the directory and machine name are derived (nspawn's
// load_oci_bundle).
func (p *argParser) ociBundle() error {
	dir, err := p.abs(p.c.OCIBundle)
	if err != nil {
		return err
	}
	p.c.OCIBundle = dir
	read := p.env.readFile
	if read == nil {
		read = os.ReadFile
	}
	b, err := ReadOCIBundle(dir, read)
	if err != nil {
		return err
	}
	p.c.applyOCIBundle(b)
	return nil
}

// validate checks settings that only make sense together, as nspawn's
// verify_arguments does. The check that -p needs private networking waits
// until the .nspawn file is merged (it may turn networking on), unless
// final is set.
func (c *Config) validate(final bool) error {
	if err := c.checkImageOptions(); err != nil {
		return err
	}
	if c.Boot && c.AsPid2 {
		return errors.New("--boot and --as-pid2 may not be combined: use -b to boot an init, or -a to run a command under a stub init")
	}
	n := &c.Network
	if n.NamespacePath != "" && (n.Veth || len(n.VethExtra) > 0 || n.Bridge != "" || n.Zone != "" ||
		len(n.MACVLAN) > 0 || len(n.IPVLAN) > 0 || len(n.Interfaces) > 0) {
		return errors.New("--network-namespace-path= cannot be combined with other network options: drop -n/--network-veth, --network-bridge=, --network-zone= and the interface options, or the namespace path")
	}
	if n.Bridge != "" && n.Zone != "" {
		return errors.New("--network-bridge= and --network-zone= may not be combined: choose one")
	}
	if final && len(n.Ports) > 0 && !n.Private {
		//lint:ignore ST1005 the wording is systemd-nspawn's
		return errors.New("Cannot use --port= without private networking: add -n/--network-veth (or --network-bridge=, --network-zone=, --private-network)")
	}
	if c.Chdir != "" {
		if err := checkChdir(c.Chdir); err != nil {
			return err
		}
	}
	if err := c.checkLinkJournal(); err != nil {
		return err
	}
	if final {
		if err := c.checkBindUser(); err != nil {
			return err
		}
		if err := c.checkAmbient(); err != nil {
			return err
		}
		return c.checkHostEnv()
	}
	return nil
}

// Validate checks the whole configuration, after .nspawn settings are
// merged; LoadSettings calls it.
func (c *Config) Validate() error { return c.validate(true) }

// FindMachineDirectory looks for the container tree of machine name in dirs,
// first match wins, as nspawn's image_find does for directories; a disk
// image NAME.raw is refused (FindMachineImage takes it).
func FindMachineDirectory(name string, dirs []string) (string, error) {
	dir, img, err := FindMachineImage(name, dirs)
	if err == nil && img != "" {
		return "", fmt.Errorf("image %s for machine %s is a disk image, not a directory: run it with -i %s", img, name, img)
	}
	return dir, err
}

// FindMachineImage looks for machine name in dirs, first match wins, as
// nspawn's image_find does: a directory NAME (returned as dir) or a disk
// image NAME.raw (returned as img).
func FindMachineImage(name string, dirs []string) (dir, img string, err error) {
	for _, d := range dirs {
		p := filepath.Join(d, name)
		st, err := os.Stat(p)
		if err == nil && st.IsDir() {
			return p, "", nil
		}
		if err == nil {
			return "", "", fmt.Errorf("image %s for machine %s is neither a directory nor a disk image named %s.raw", p, name, name)
		}
		if st, err := os.Stat(p + ".raw"); err == nil && (st.Mode().IsRegular() || st.Mode()&os.ModeDevice != 0) {
			return "", p + ".raw", nil
		}
	}
	return "", "", fmt.Errorf("no image for machine %q in %s: use -D DIR or -i IMAGE, or put the tree at %s (or a disk image at %s.raw)", name,
		strings.Join(dirs, ", "), filepath.Join(dirs[0], name), filepath.Join(dirs[0], name))
}

func (p *argParser) rlimit(v string) error {
	r, l, err := ParseRlimitAssignment(v)
	if err != nil {
		return err
	}
	p.c.Rlimits[r] = &l
	p.c.cmdline |= setRlimitFirst << r
	return nil
}

func (p *argParser) oomScoreAdjust(v string) error {
	n, err := ParseOOMScoreAdjust(v)
	if err != nil {
		return fmt.Errorf("--oom-score-adjust=%s: %w", v, err)
	}
	p.c.OOMScoreAdjust = &n
	p.c.cmdline |= setOOMScoreAdjust
	return nil
}

func (p *argParser) cpuAffinity(v string) error {
	cpus, err := ParseCPUSet(v)
	if err != nil {
		return fmt.Errorf("--cpu-affinity=%s: %w", v, err)
	}
	p.c.CPUAffinity = cpus
	p.c.cmdline |= setCPUAffinity
	return nil
}

func (p *argParser) personality(v string) error {
	n, err := ParsePersonality(v)
	if err != nil {
		return fmt.Errorf("--personality=%s: %w", v, err)
	}
	p.c.Personality = n
	p.c.cmdline |= setPersonality
	return nil
}

func (p *argParser) ambientCapability(v string) error {
	m, err := parseCapabilityList(v, commaFields)
	if err != nil {
		return fmt.Errorf("--ambient-capability=%s: %w", v, err)
	}
	p.c.AmbientCaps |= m
	p.c.cmdline |= setCapability
	return nil
}

func (p *argParser) background(v string) error {
	b, err := ParseBackground(v)
	if err != nil {
		return fmt.Errorf("--background=%s: %w", v, err)
	}
	p.c.Background = b
	return nil
}

// checkAmbient refuses ambient capabilities nspawn refuses: "all", ones
// not in the container's capability set, and any with -b.
func (c *Config) checkAmbient() error {
	switch a := c.AmbientCaps; {
	case a == 0:
		return nil
	case a == ^uint64(0):
		return errors.New("--ambient-capability=all (AmbientCapability=all) is not supported: name the capabilities")
	case a&c.Capabilities() != a:
		return fmt.Errorf("--ambient-capability= (AmbientCapability=) is not fully covered by the container's capabilities: add %s with --capability=", strings.Join(CapNames(a&^c.Capabilities()), ","))
	case c.Boot:
		return errors.New("--ambient-capability= (AmbientCapability=) is not useful with -b/--boot: an init sets its services' capabilities")
	case c.AsPid2:
		return errors.New("--ambient-capability= (AmbientCapability=) with -a/--as-pid2 is not supported by netspawn yet: run the command without -a")
	}
	return nil
}

// shareSystem is nspawn's obsolete --share-system: accepted with a
// warning, it keeps the host's IPC, PID and UTS namespaces (as
// $SYSTEMD_NSPAWN_SHARE_SYSTEM=1 does).
func (p *argParser) shareSystem(string) error {
	p.c.addWarning("Please do not use --share-system anymore, use $SYSTEMD_NSPAWN_SHARE_* instead.")
	p.c.ShareIPC, p.c.SharePID, p.c.ShareUTS = true, true, true
	return nil
}

// --- option handlers ---

func (p *argParser) settings(v string) error {
	b, err := ParseBool(v)
	switch {
	case err == nil && b:
		p.c.Settings = "yes"
	case err == nil:
		p.c.Settings = "no"
	case v == "override" || v == "trusted":
		p.c.Settings = v
	default:
		return fmt.Errorf("invalid --settings=%s: use yes, no, override or trusted", v)
	}
	return nil
}

func (p *argParser) directory(v string) error {
	p.c.cmdline |= setDirectory
	if v == "" {
		p.c.Directory = ""
		return nil
	}
	abs, err := p.abs(v)
	if err != nil {
		return fmt.Errorf("--directory=%s: %w", v, err)
	}
	p.c.Directory = abs
	return nil
}

// abs makes v absolute against the current directory, and cleans it.
func (p *argParser) abs(v string) (string, error) {
	if filepath.IsAbs(v) {
		return filepath.Clean(v), nil
	}
	wd, err := p.env.getwd()
	if err != nil {
		return "", fmt.Errorf("cannot determine the current directory: %w", err)
	}
	return filepath.Join(wd, v), nil
}

func (p *argParser) boot(string) error {
	if p.c.AsPid2 {
		return errors.New("--boot and --as-pid2 may not be combined: use -b to boot an init, or -a to run a command under a stub init")
	}
	p.c.Boot = true
	p.c.cmdline |= setStartMode
	return nil
}

func (p *argParser) asPid2(string) error {
	if p.c.Boot {
		return errors.New("--boot and --as-pid2 may not be combined: use -b to boot an init, or -a to run a command under a stub init")
	}
	p.c.AsPid2 = true
	p.c.cmdline |= setStartMode
	return nil
}

func checkChdir(v string) error {
	if !path.IsAbs(v) {
		return fmt.Errorf("working directory %s is not an absolute path: use --chdir=/PATH", v)
	}
	for _, e := range strings.Split(v, "/") {
		if e == ".." {
			return fmt.Errorf("working directory path %s is not normalized: remove the \"..\"", v)
		}
	}
	clean := path.Clean(v)
	for _, api := range []string{"/proc", "/sys", "/dev"} {
		if clean == api || strings.HasPrefix(clean, api+"/") {
			return fmt.Errorf("working directory %s is below API file system %s, refusing: pick another directory", v, api)
		}
	}
	return nil
}

func (p *argParser) chdir(v string) error {
	if err := checkChdir(v); err != nil {
		return fmt.Errorf("--chdir: %w", err)
	}
	p.c.Chdir = path.Clean(v)
	p.c.cmdline |= setWorkingDirectory
	return nil
}

func (p *argParser) setenv(v string) error {
	kv, err := envAssignment(v, p.env.getenv)
	if err != nil {
		return fmt.Errorf("--setenv=%s: %w", v, err)
	}
	p.c.Env = envReplace(p.c.Env, kv)
	p.c.cmdline |= setEnvironment
	return nil
}

// validEnvName is systemd's env_name_is_valid: letters, digits and '_', not
// starting with a digit.
func validEnvName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// envAssignment turns NAME=VALUE or NAME (copied from getenv) into an
// assignment.
func envAssignment(v string, getenv func(string) string) (string, error) {
	name, _, hasValue := strings.Cut(v, "=")
	if !validEnvName(name) {
		return "", fmt.Errorf("invalid environment variable name %q (use NAME=VALUE, NAME of letters, digits and _)", name)
	}
	if strings.ContainsRune(v, 0) {
		return "", errors.New("environment value contains a NUL byte")
	}
	if hasValue {
		return v, nil
	}
	val := ""
	if getenv != nil {
		val = getenv(name)
	}
	return name + "=" + val, nil
}

// envReplace sets kv in env, replacing an earlier assignment of the same name.
func envReplace(env []string, kv string) []string {
	name, _, _ := strings.Cut(kv, "=")
	for i, e := range env {
		if n, _, _ := strings.Cut(e, "="); n == name {
			env[i] = kv
			return env
		}
	}
	return append(env, kv)
}

func (p *argParser) killSignal(v string) error {
	sig, err := ParseSignal(v)
	if err != nil {
		return fmt.Errorf("--kill-signal=%s: %w (use a name such as SIGTERM or SIGRTMIN+3, or a number)", v, err)
	}
	p.c.KillSignal = sig
	p.c.cmdline |= setKillSignal
	return nil
}

func (p *argParser) machine(v string) error {
	if v == "" {
		p.c.Machine = ""
		return nil
	}
	if err := CheckMachineName(v); err != nil {
		return err
	}
	p.c.Machine = v
	return nil
}

func (p *argParser) hostname(v string) error {
	p.c.cmdline |= setHostname
	if v == "" {
		p.c.Hostname = ""
		return nil
	}
	if !ValidMachineName(v) {
		return fmt.Errorf("invalid hostname %q: use letters, digits, '-' and '.', at most 64 characters", v)
	}
	p.c.Hostname = v
	return nil
}

// ParseUUID parses a 128-bit ID as 32 hex digits or in UUID form and
// returns it in UUID form, lower case. The all-zero ID is refused.
func ParseUUID(v string) (string, error) {
	h := v
	if len(v) == 36 {
		if v[8] != '-' || v[13] != '-' || v[18] != '-' || v[23] != '-' {
			return "", fmt.Errorf("invalid UUID %q", v)
		}
		h = v[0:8] + v[9:13] + v[14:18] + v[19:23] + v[24:]
	}
	if len(h) != 32 {
		return "", fmt.Errorf("invalid UUID %q: use 32 hex digits or the 8-4-4-4-12 form", v)
	}
	h = strings.ToLower(h)
	zero := true
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", fmt.Errorf("invalid UUID %q: use 32 hex digits or the 8-4-4-4-12 form", v)
		}
		if c != '0' {
			zero = false
		}
	}
	if zero {
		return "", errors.New("machine UUID may not be all zeroes")
	}
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

func (p *argParser) uuid(v string) error {
	u, err := ParseUUID(v)
	if err != nil {
		return fmt.Errorf("--uuid: %w", err)
	}
	p.c.UUID = u
	p.c.cmdline |= setMachineID
	return nil
}

func (p *argParser) property(v string) error {
	if name, _, ok := strings.Cut(v, "="); !ok || name == "" {
		return fmt.Errorf("--property=%s: expected NAME=VALUE", v)
	}
	p.c.Properties = append(p.c.Properties, v)
	return nil
}

func (p *argParser) register(v string) error {
	b, err := ParseBool(v)
	if err != nil {
		return fmt.Errorf("--register: %w", err)
	}
	p.c.Register = b
	return nil
}

func (p *argParser) privateNet() {
	p.c.Network.Private = true
	p.c.cmdline |= setNetwork
}

func (p *argParser) networkVeth(string) error {
	p.c.Network.Veth = true
	p.privateNet()
	return nil
}

func (p *argParser) networkInterface(v string) error {
	l, err := parseIfacePairs(v, "", "--network-interface")
	if err != nil {
		return err
	}
	p.c.Network.Interfaces = append(p.c.Network.Interfaces, l...)
	p.privateNet()
	return nil
}

func (p *argParser) networkMACVLAN(v string) error {
	l, err := parseIfacePairs(v, "mv-", "--network-macvlan")
	if err != nil {
		return err
	}
	p.c.Network.MACVLAN = append(p.c.Network.MACVLAN, l...)
	p.privateNet()
	return nil
}

func (p *argParser) networkIPVLAN(v string) error {
	l, err := parseIfacePairs(v, "iv-", "--network-ipvlan")
	if err != nil {
		return err
	}
	p.c.Network.IPVLAN = append(p.c.Network.IPVLAN, l...)
	p.privateNet()
	return nil
}

func (p *argParser) networkVethExtra(v string) error {
	ve, err := parseVethExtra(v)
	if err != nil {
		return fmt.Errorf("--network-veth-extra=%s: %w", v, err)
	}
	p.c.Network.VethExtra = append(p.c.Network.VethExtra, ve)
	p.privateNet()
	return nil
}

func (p *argParser) networkBridge(v string) error {
	if !ValidIfname(v) {
		return fmt.Errorf("bridge interface name not valid: %q (1-15 characters, no '/', ':', '%%' or spaces)", v)
	}
	p.c.Network.Bridge = v
	return p.networkVeth("")
}

func (p *argParser) networkZone(v string) error {
	if err := checkZone(v); err != nil {
		return err
	}
	p.c.Network.Zone = v
	return p.networkVeth("")
}

func checkZone(v string) error {
	if !ValidIfname("vz-" + v) {
		return fmt.Errorf("network zone name not valid: %q (the bridge vz-%s must be a valid interface name: at most 12 characters, no '/', ':', '%%' or spaces)", v, v)
	}
	return nil
}

func (p *argParser) networkNamespacePath(v string) error {
	p.c.cmdline |= setNetwork
	if v == "" {
		p.c.Network.NamespacePath = ""
		return nil
	}
	abs, err := p.abs(v)
	if err != nil {
		return fmt.Errorf("--network-namespace-path=%s: %w", v, err)
	}
	p.c.Network.NamespacePath = abs
	return nil
}

func (p *argParser) port(v string) error {
	pt, err := parsePort(v)
	if err != nil {
		return fmt.Errorf("--port=%s: %w", v, err)
	}
	for _, o := range p.c.Network.Ports {
		if o.Protocol == pt.Protocol && o.HostPort == pt.HostPort {
			return fmt.Errorf("duplicate port specification: %s (host port %s/%d is already forwarded)", v, pt.Protocol, pt.HostPort)
		}
	}
	p.c.Network.Ports = append(p.c.Network.Ports, pt)
	p.c.cmdline |= setPorts
	return nil
}

// parsePort parses [tcp:|udp:]HOST[:CONTAINER].
func parsePort(v string) (Port, error) {
	pt := Port{Protocol: "tcp"}
	rest := v
	if r, ok := strings.CutPrefix(v, "tcp:"); ok {
		rest = r
	} else if r, ok := strings.CutPrefix(v, "udp:"); ok {
		pt.Protocol, rest = "udp", r
	}
	hostS, ctS, two := strings.Cut(rest, ":")
	h, err := parseIPPort(hostS)
	if err != nil {
		return pt, err
	}
	pt.HostPort, pt.ContainerPort = h, h
	if two {
		if pt.ContainerPort, err = parseIPPort(ctS); err != nil {
			return pt, err
		}
	}
	return pt, nil
}

func parseIPPort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("invalid port %q (use 1-65535)", s)
	}
	return uint16(n), nil
}

// parseIfacePairs parses a white-space separated list of HOSTIF[:CTIF];
// CTIF defaults to prefix+HOSTIF. Each result is "HOSTIF:CTIF".
func parseIfacePairs(v, prefix, what string) ([]string, error) {
	words := strings.Fields(v)
	if len(words) == 0 {
		return nil, fmt.Errorf("%s: no interface given", what)
	}
	var out []string
	for _, w := range words {
		host, ct, _ := strings.Cut(w, ":")
		if !ValidIfname(host) {
			return nil, fmt.Errorf("%s: interface name not valid: %q", what, host)
		}
		if ct == "" {
			ct = prefix + host
		} else if !ValidIfname(ct) {
			return nil, fmt.Errorf("%s: interface name not valid: %q", what, ct)
		}
		out = append(out, host+":"+ct)
	}
	return out, nil
}

// SplitIfacePair splits a "HOSTIF:CTIF" entry of Network.Interfaces,
// MACVLAN or IPVLAN.
func SplitIfacePair(s string) (host, container string) {
	host, container, _ = strings.Cut(s, ":")
	if container == "" {
		container = host
	}
	return host, container
}

func parseVethExtra(v string) (VethExtra, error) {
	words, err := splitEscaped(v, 3)
	if err != nil {
		return VethExtra{}, err
	}
	if len(words) > 2 {
		return VethExtra{}, errors.New("expected HOSTIF[:CONTAINERIF]")
	}
	ve := VethExtra{Host: words[0], Container: words[0]}
	if !ValidIfname(ve.Host) {
		return ve, fmt.Errorf("interface name not valid: %q", ve.Host)
	}
	if len(words) == 2 && words[1] != "" {
		if !ValidIfname(words[1]) {
			return ve, fmt.Errorf("interface name not valid: %q", words[1])
		}
		ve.Container = words[1]
	}
	return ve, nil
}

// splitEscaped splits s at ':' into at most max words, where "\x" stands
// for x (so "\:" is a colon inside a word), as systemd's extract_first_word
// with ":" and no coalescing. The last word keeps the rest of s unescaped
// only if max is reached: see splitBindSpec for the raw remainder case.
func splitEscaped(s string, max int) ([]string, error) {
	var words []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("trailing backslash")
			}
			i++
			cur.WriteByte(s[i])
		case c == ':' && len(words) < max-1:
			words = append(words, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(words, cur.String()), nil
}

// extractWord takes the first ':'-separated word off s, unescaping "\x";
// rest is what follows the separator, and more says a separator was seen.
func extractWord(s string) (word, rest string, more bool, err error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\':
			if i+1 >= len(s) {
				return "", "", false, errors.New("trailing backslash")
			}
			i++
			b.WriteByte(s[i])
		case ':':
			return b.String(), s[i+1:], true, nil
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), "", false, nil
}

// parseBindSpec parses [+]SRC[:DST[:OPTIONS]] as nspawn's bind_mount_parse.
func parseBindSpec(v string, readOnly bool, getwd func() (string, error)) (BindMount, error) {
	b := BindMount{ReadOnly: readOnly, Recursive: true}
	src, rest, more, err := extractWord(v)
	if err != nil {
		return b, err
	}
	dst := strings.TrimPrefix(src, "+")
	var opts string
	if more {
		var more2 bool
		dst, opts, more2, err = extractWord(rest)
		if err != nil {
			return b, err
		}
		if !more2 {
			opts = ""
		}
	}
	switch {
	case src == "":
		// a temporary directory, removed on exit
	case strings.HasPrefix(src, "+"):
		if !path.IsAbs(src[1:]) {
			return b, fmt.Errorf("source %s must be an absolute path after '+'", src)
		}
		b.SourceInRoot = true
		b.Source = path.Clean(src[1:])
	case path.IsAbs(src):
		b.Source = path.Clean(src)
	default:
		wd, err := getwd()
		if err != nil {
			return b, fmt.Errorf("relative source %s: %w", src, err)
		}
		b.Source = filepath.Join(wd, src)
	}
	if !path.IsAbs(dst) {
		return b, fmt.Errorf("destination %q must be an absolute path", dst)
	}
	b.Dest = path.Clean(dst)
	for _, o := range strings.Split(opts, ",") {
		switch o {
		case "":
		case "rbind":
			b.Recursive = true
		case "norbind":
			b.Recursive = false
		case "noidmap":
			b.IDMap = ""
		case "idmap", "rootidmap":
			b.IDMap = o
		case "owneridmap":
			return b, fmt.Errorf("bind option %s is not supported yet", o)
		default:
			return b, fmt.Errorf("invalid bind mount option %q (use rbind or norbind)", o)
		}
	}
	return b, nil
}

func (p *argParser) bind(v string, ro bool) error {
	b, err := parseBindSpec(v, ro, p.env.getwd)
	if err != nil {
		name := "--bind"
		if ro {
			name = "--bind-ro"
		}
		return fmt.Errorf("%s=%s: %w", name, v, err)
	}
	p.c.Binds = append(p.c.Binds, b)
	p.c.cmdline |= setCustomMounts
	return nil
}

// parseTmpfsSpec parses PATH[:OPTIONS] as nspawn's tmpfs_mount_parse.
func parseTmpfsSpec(v string) (TmpfsMount, error) {
	dst, opts, _, err := extractWord(v)
	if err != nil {
		return TmpfsMount{}, err
	}
	if !path.IsAbs(dst) {
		return TmpfsMount{}, fmt.Errorf("path %q must be absolute", dst)
	}
	return TmpfsMount{Dest: path.Clean(dst), Options: opts}, nil
}

func (p *argParser) tmpfs(v string) error {
	t, err := parseTmpfsSpec(v)
	if err != nil {
		return fmt.Errorf("--tmpfs=%s: %w", v, err)
	}
	p.c.Tmpfs = append(p.c.Tmpfs, t)
	p.c.cmdline |= setCustomMounts
	return nil
}

func (p *argParser) capability(v string) error {
	m, err := parseCapabilityList(v, commaFields)
	if err != nil {
		return fmt.Errorf("--capability=%s: %w", v, err)
	}
	p.c.CapAdd |= m
	p.c.cmdline |= setCapability
	return nil
}

func (p *argParser) dropCapability(v string) error {
	m, err := parseCapabilityList(v, commaFields)
	if err != nil {
		return fmt.Errorf("--drop-capability=%s: %w", v, err)
	}
	p.c.CapDrop |= m
	p.c.cmdline |= setCapability
	return nil
}

func commaFields(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f != "" {
			out = append(out, f)
		}
	}
	return out
}

func (p *argParser) suppressSync(v string) error {
	b, err := ParseBool(v)
	if err != nil {
		return fmt.Errorf("--suppress-sync: %w", err)
	}
	p.c.SuppressSync = b
	p.c.cmdline |= setSuppressSync
	return nil
}

// notifyReady is --notify-ready=: a boolean (nspawn's message names a
// "ready" mode it never accepted).
func (p *argParser) notifyReady(v string) error {
	b, err := ParseBool(v)
	if err != nil {
		return fmt.Errorf("--notify-ready: %q is not a valid notify mode; use yes or no", v)
	}
	p.c.NotifyReady = b
	p.c.cmdline |= setNotifyReady
	return nil
}

func (p *argParser) noNewPrivileges(v string) error {
	b, err := ParseBool(v)
	if err != nil {
		return fmt.Errorf("--no-new-privileges: %w", err)
	}
	p.c.NoNewPrivileges = b
	p.c.cmdline |= setNoNewPrivileges
	return nil
}

// ResolvConfModes are the --resolv-conf= modes.
var ResolvConfModes = []string{"off", "copy-host", "copy-static", "copy-uplink", "copy-stub",
	"replace-host", "replace-static", "replace-uplink", "replace-stub",
	"bind-host", "bind-static", "bind-uplink", "bind-stub", "delete", "auto"}

// TimezoneModes are the --timezone= modes.
var TimezoneModes = []string{"off", "copy", "bind", "symlink", "delete", "auto"}

// parseMode accepts one of modes, or a boolean (yes = auto, no = off), as
// systemd's string tables "with boolean" do.
func parseMode(v string, modes []string) (string, bool) {
	for _, m := range modes {
		if v == m {
			return m, true
		}
	}
	if b, err := ParseBool(v); err == nil {
		if b {
			return "auto", true
		}
		return "off", true
	}
	return "", false
}

func (p *argParser) resolvConf(v string) error {
	m, ok := parseMode(v, ResolvConfModes)
	if !ok {
		return fmt.Errorf("invalid --resolv-conf=%s: use one of %s", v, strings.Join(ResolvConfModes, ", "))
	}
	p.c.ResolvConf = m
	p.c.cmdline |= setResolvConf
	return nil
}

func (p *argParser) timezone(v string) error {
	m, ok := parseMode(v, TimezoneModes)
	if !ok {
		return fmt.Errorf("invalid --timezone=%s: use one of %s", v, strings.Join(TimezoneModes, ", "))
	}
	p.c.Timezone = m
	p.c.cmdline |= setTimezone
	return nil
}

// ConsoleModes are the --console= modes.
var ConsoleModes = []string{string(ConsoleInteractive), string(ConsoleReadOnly), string(ConsolePassive), string(ConsolePipe), string(ConsoleAutoPipe)}

func (p *argParser) console(v string) error {
	if !slices.Contains(ConsoleModes, v) {
		return fmt.Errorf("unknown console mode %q: use interactive, read-only, passive, pipe or autopipe", v)
	}
	p.c.Console = ConsoleMode(v)
	p.c.cmdline |= setConsole
	return nil
}

func (p *argParser) pipe(string) error {
	p.c.Console = ConsolePipe
	p.c.Quiet = true
	p.c.cmdline |= setConsole
	return nil
}
