package config

import (
	"sort"
	"strings"
)

// The read-only view of the flag and settings tables that the man pages
// and shell completions are generated from (internal/mangen), so that they
// cannot drift from what the parser accepts.

// Argument kinds of a FlagDoc.
const (
	ArgNone     = "none"
	ArgRequired = "required"
	ArgOptional = "optional"
)

// Completion hints of a FlagDoc: what a shell offers for the option's value
// when it has no fixed set of values.
const (
	CompleteFile      = "file"
	CompleteDir       = "dir"
	CompleteMachine   = "machine" // image names in the image directories
	CompleteInterface = "interface"
	CompleteUser      = "user"
	CompleteZone      = "zone" // the zones that exist: vz-NAME bridges
)

// FlagDoc is one netspawn option as its documentation shows it.
type FlagDoc struct {
	Long, Short string // without dashes; either may be empty
	Arg         string // ArgNone, ArgRequired or ArgOptional
	Meta        string // value placeholder (PATH, MODE, ...)
	Help        string
	Group       string // "" for the general options, else a FlagGroups entry
	Supported   bool   // false: recognised and refused ("not supported yet")
	// Values is the option's fixed set of values (a BOOLEAN takes yes and
	// no, and every other spelling of ParseBool), nil when it has none.
	Values []string
	// Complete hints what else to offer for the value (Complete* constants).
	Complete string
}

// FlagGroups returns the option groups in the order --help shows them; the
// first is the unnamed group of general options.
func FlagGroups() []string { return append([]string(nil), flagGroups...) }

// FlagDocs returns every netspawn option in flagTable order.
func FlagDocs() []FlagDoc {
	out := make([]FlagDoc, 0, len(flagTable))
	for i := range flagTable {
		d := &flagTable[i]
		fd := FlagDoc{Long: d.long, Short: d.short, Meta: d.meta, Help: d.help, Group: d.group,
			Supported: d.set != nil || d.long == "help", Values: append([]string(nil), d.enum...)}
		switch d.kind {
		case noArg:
			fd.Arg = ArgNone
		case reqArg:
			fd.Arg = ArgRequired
		case optArg:
			fd.Arg = ArgOptional
		}
		if fd.Arg != ArgNone {
			fd.Values, fd.Complete = flagValues(d, fd.Values)
		}
		out = append(out, fd)
	}
	return out
}

// flagValues derives the values and completion hint of an option that has
// no enum from its placeholder.
func flagValues(d *flagDef, enum []string) ([]string, string) {
	switch {
	case len(enum) > 0:
		return enum, ""
	case d.meta == "BOOLEAN":
		return []string{"yes", "no"}, ""
	case d.long == "machine":
		return nil, CompleteMachine
	case d.long == "directory" || d.long == "template" || d.long == "chdir":
		return nil, CompleteDir
	case d.meta == "CAP":
		return CapNames(AllCapabilities), ""
	case d.meta == "SIGNAL":
		var names []string
		for _, n := range signalNames {
			names = append(names, "SIG"+n)
		}
		sort.Strings(names)
		return names, ""
	case d.meta == "ARCH":
		var names []string
		for n := range Personalities {
			names = append(names, n)
		}
		sort.Strings(names)
		return names, ""
	case d.long == "network-zone":
		return nil, CompleteZone
	case d.meta == "USER":
		return nil, CompleteUser
	case d.meta == "INTERFACE" || strings.HasPrefix(d.meta, "HOSTIF"):
		return nil, CompleteInterface
	case strings.Contains(d.meta, "PATH"):
		return nil, CompleteFile
	}
	return nil, ""
}

// SettingDoc is one key of a .nspawn file as its documentation shows it.
type SettingDoc struct {
	Section, Key string
	// Flag is the long name of the command line option the key matches
	// ("" when none does); Help is then that option's help unless the key
	// has its own.
	Flag string
	Help string
	// Privileged keys are ignored, with a warning, in an untrusted file
	// (one next to the image rather than in /etc/systemd/nspawn).
	Privileged bool
	Supported  bool
}

// SettingSections are the sections of a .nspawn file, in order.
var SettingSections = []string{"Exec", "Files", "Network"}

// settingDocs documents each key of settingKeys: the option it matches,
// and its own help where the option's does not say it. TestSettingDocs
// checks that every key has an entry.
var settingDocs = map[string]struct{ flag, help string }{
	"Exec.Boot":              {"boot", "Takes a boolean; yes boots the tree's init (-b)"},
	"Exec.ProcessTwo":        {"as-pid2", "Takes a boolean; yes runs the command as PID 2 under a stub init (-a)"},
	"Exec.Parameters":        {"", "The command line (or, with Boot=yes, the init's arguments), split like a shell's words"},
	"Exec.Environment":       {"setenv", "NAME=VALUE assignments for PID 1, space separated; may be given more than once"},
	"Exec.User":              {"user", ""},
	"Exec.WorkingDirectory":  {"chdir", ""},
	"Exec.PivotRoot":         {"pivot-root", ""},
	"Exec.Capability":        {"capability", ""},
	"Exec.DropCapability":    {"drop-capability", ""},
	"Exec.AmbientCapability": {"ambient-capability", ""},
	"Exec.NoNewPrivileges":   {"no-new-privileges", ""},
	"Exec.KillSignal":        {"kill-signal", ""},
	"Exec.Personality":       {"personality", ""},
	"Exec.MachineID":         {"uuid", ""},
	"Exec.PrivateUsers":      {"private-users", ""},
	"Exec.NotifyReady":       {"notify-ready", ""},
	"Exec.SystemCallFilter":  {"system-call-filter", "Permit or (with ~) prohibit system calls; an untrusted file may only prohibit"},
	"Exec.OOMScoreAdjust":    {"oom-score-adjust", ""},
	"Exec.CPUAffinity":       {"cpu-affinity", ""},
	"Exec.Hostname":          {"hostname", ""},
	"Exec.ResolvConf":        {"resolv-conf", ""},
	"Exec.Timezone":          {"timezone", ""},
	"Exec.LinkJournal":       {"link-journal", ""},
	"Exec.SuppressSync":      {"suppress-sync", ""},
	"Exec.Ephemeral":         {"ephemeral", "Takes a boolean; yes runs on a snapshot of the tree, removed on exit (-x)"},

	"Files.ReadOnly":              {"read-only", "Takes a boolean; yes mounts the root directory read-only"},
	"Files.Volatile":              {"volatile", ""},
	"Files.Bind":                  {"bind", ""},
	"Files.BindReadOnly":          {"bind-ro", ""},
	"Files.TemporaryFileSystem":   {"tmpfs", ""},
	"Files.Inaccessible":          {"inaccessible", ""},
	"Files.Overlay":               {"overlay", ""},
	"Files.OverlayReadOnly":       {"overlay-ro", ""},
	"Files.BindUser":              {"bind-user", ""},
	"Files.PrivateUsersOwnership": {"private-users-ownership", ""},
	"Files.PrivateUsersChown":     {"private-users-chown", ""},

	"Network.Private":              {"private-network", "Takes a boolean; yes disconnects the container from the host's network"},
	"Network.VirtualEthernet":      {"network-veth", "Takes a boolean; yes adds a virtual Ethernet link between host and container (-n)"},
	"Network.VirtualEthernetExtra": {"network-veth-extra", ""},
	"Network.Interface":            {"network-interface", "Host interfaces to move into the container, space separated"},
	"Network.MACVLAN":              {"network-macvlan", "Host interfaces to make macvlan interfaces of, space separated"},
	"Network.IPVLAN":               {"network-ipvlan", "Host interfaces to make ipvlan interfaces of, space separated"},
	"Network.Bridge":               {"network-bridge", ""},
	"Network.Zone":                 {"network-zone", ""},
	"Network.Port":                 {"port", ""},
}

// SettingDocs returns every .nspawn key, by section (SettingSections
// order), Limit keys after the others, then by name.
func SettingDocs() []SettingDoc {
	help := map[string]string{}
	for i := range flagTable {
		if d := &flagTable[i]; d.long != "" {
			help[d.long] = d.help
		}
	}
	var out []SettingDoc
	for k, sk := range settingKeys {
		sec, key, _ := strings.Cut(k, ".")
		sd := SettingDoc{Section: sec, Key: key, Privileged: sk.privileged, Supported: sk.parse != nil}
		if doc, ok := settingDocs[k]; ok {
			sd.Flag, sd.Help = doc.flag, doc.help
		} else if r, ok := strings.CutPrefix(key, "Limit"); ok {
			sd.Flag, sd.Help = "rlimit", "Resource limit RLIMIT_"+r+": SOFT[:HARD] or infinity, as --rlimit=RLIMIT_"+r+"="
		}
		if sd.Help == "" {
			sd.Help = help[sd.Flag]
		}
		out = append(out, sd)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Section != b.Section {
			return sectionIndex(a.Section) < sectionIndex(b.Section)
		}
		la, lb := strings.HasPrefix(a.Key, "Limit"), strings.HasPrefix(b.Key, "Limit")
		if la != lb {
			return lb
		}
		return a.Key < b.Key
	})
	return out
}

func sectionIndex(s string) int {
	for i, x := range SettingSections {
		if x == s {
			return i
		}
	}
	return len(SettingSections)
}
