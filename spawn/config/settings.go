package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/netspawn/netspawn/spawn/seccomp"

	"github.com/coreos/go-systemd/v22/unit"
)

// DefaultSettingsDirs are the trusted places for NAME.nspawn files, as
// systemd-nspawn's.
var DefaultSettingsDirs = []string{"/etc/systemd/nspawn", "/run/systemd/nspawn"}

// SettingsSearchDirs returns the trusted settings directories:
// $NETSPAWN_SETTINGS_PATH (colon separated) if set, else DefaultSettingsDirs.
func SettingsSearchDirs(getenv func(string) string) []string {
	if getenv != nil {
		if v := getenv("NETSPAWN_SETTINGS_PATH"); v != "" {
			return filepath.SplitList(v)
		}
	}
	return DefaultSettingsDirs
}

// maxSettingsSize bounds how much of a .nspawn file is read.
const maxSettingsSize = 1 << 20

// FindSettings looks for MACHINE.nspawn in searchDirs (trusted), then in the
// directory holding the container tree (untrusted), as nspawn's
// load_settings. It returns "" when there is none.
func FindSettings(machine, directory string, searchDirs []string) (path string, trusted bool, err error) {
	name := machine + ".nspawn"
	exists := func(p string) (bool, error) {
		st, err := os.Stat(p)
		switch {
		case err == nil:
			if st.IsDir() {
				return false, fmt.Errorf("settings file %s is a directory", p)
			}
			return true, nil
		case errors.Is(err, fs.ErrNotExist):
			return false, nil
		default:
			return false, fmt.Errorf("settings file: %w", err)
		}
	}
	for _, d := range searchDirs {
		p := filepath.Join(d, name)
		ok, err := exists(p)
		if err != nil {
			return "", false, err
		}
		if ok {
			return p, true, nil
		}
	}
	if directory == "" {
		return "", false, nil
	}
	dir := filepath.Clean(directory)
	if dir == "/" {
		return "", false, nil
	}
	p := filepath.Join(filepath.Dir(dir), name)
	ok, err := exists(p)
	if err != nil || !ok {
		return "", false, err
	}
	return p, false, nil
}

// LoadSettings finds the .nspawn file for c.Machine, applies it as
// c.Settings asks, records it in c.SettingsFile, and checks the merged
// configuration. The runtime calls it once after ParseArgs.
func (c *Config) LoadSettings() error {
	return c.loadSettings(SettingsSearchDirs(os.Getenv))
}

func (c *Config) loadSettings(dirs []string) error {
	if c.Settings == "no" || c.OCIBundle != "" { // nspawn reads no .nspawn file for a bundle
		return c.Validate()
	}
	root := c.Directory
	if c.Image != "" {
		root = c.Image // the file next to the image, as nspawn looks
	}
	p, trusted, err := FindSettings(c.Machine, root, dirs)
	if err != nil {
		return err
	}
	if p == "" {
		return c.Validate()
	}
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("settings file: %w", err)
	}
	defer f.Close()
	if err := ApplySettings(c, f, p, trusted, c.Settings); err != nil {
		return err
	}
	c.SettingsFile = p
	c.SettingsTrusted = trusted || c.Settings == "trusted"
	return nil
}

// Start modes of a settings file.
const (
	startUnset = iota
	startPID1
	startPID2
	startBoot
)

// fileSettings is what one .nspawn file asks for, before merging.
type fileSettings struct {
	file    string
	getwd   func() (string, error)
	trusted bool

	startMode     int
	params        []string
	paramsSet     bool
	env           []string
	user          *string
	chdir         *string
	pivotRoot     *[2]string // NEW, OLD
	capAdd        uint64
	capDrop       uint64
	capLine       int
	killSignal    syscall.Signal
	machineID     *string
	machineIDLine int
	hostname      *string
	resolvConf    *string
	timezone      *string
	linkJournal   *linkJournalSetting
	bindUsers     []string
	bindUsersSet  bool
	bindUserLine  int
	journalLine   int
	noNewPrivs    *bool
	suppressSync  *bool
	notifyReady   *bool
	readOnly      *bool
	syscallFilter []string
	rlimits       [NumRlimits]*Rlimit
	rlimitLines   [NumRlimits]int
	oomScore      *int
	oomLine       int
	cpuSet        *[]int
	cpuLine       int
	personality   *string
	ambient       uint64
	ambientLine   int

	binds      []BindMount
	tmpfs      []TmpfsMount
	mountsLine int

	netLine    int
	private    *bool
	veth       *bool
	vethExtra  []VethExtra
	interfaces []string
	macvlan    []string
	ipvlan     []string
	bridge     string
	zone       string
	ports      []Port
	portsLine  int

	storage storageSettings // -U, -x, --volatile, --overlay, --inaccessible keys (storage_settings.go)

	warnings []string
}

func (s *fileSettings) networkConfigured() bool {
	return s.private != nil || s.veth != nil || s.bridge != "" || s.zone != "" ||
		len(s.interfaces) > 0 || len(s.macvlan) > 0 || len(s.ipvlan) > 0 || len(s.vethExtra) > 0
}

func (s *fileSettings) privateNetwork() bool {
	return s.private != nil && *s.private || s.networkVeth() ||
		len(s.interfaces) > 0 || len(s.macvlan) > 0 || len(s.ipvlan) > 0 || len(s.vethExtra) > 0
}

func (s *fileSettings) networkVeth() bool {
	return s.veth != nil && *s.veth || s.bridge != "" || s.zone != ""
}

func (s *fileSettings) warn(line int, format string, args ...any) {
	s.warnings = append(s.warnings, fmt.Sprintf("%s:%d: ", s.file, line)+fmt.Sprintf(format, args...))
}

// settingKey is one key a .nspawn file may hold.
type settingKey struct {
	// parse stores the value; nil means netspawn does not support the key yet.
	parse func(s *fileSettings, v string) error
	// privileged keys are ignored (with a warning) from untrusted files.
	privileged bool
	// noop, for unsupported keys, accepts values that keep nspawn's default.
	noop func(v string) bool
}

func tristate(dst **bool) func(*fileSettings, string) error {
	return func(_ *fileSettings, v string) error {
		if v == "" {
			*dst = nil
			return nil
		}
		b, err := ParseBool(v)
		if err != nil {
			return err
		}
		*dst = &b
		return nil
	}
}

// settingKeys maps "Section.Key" to its handler, as nspawn-gperf.gperf.
var settingKeys = map[string]settingKey{
	"Exec.Boot":       {parse: func(s *fileSettings, v string) error { return s.setStart(v, startBoot, "Boot") }},
	"Exec.ProcessTwo": {parse: func(s *fileSettings, v string) error { return s.setStart(v, startPID2, "ProcessTwo") }},
	"Exec.Parameters": {parse: func(s *fileSettings, v string) error {
		w, err := splitQuoted(v)
		s.params, s.paramsSet = w, len(w) > 0
		return err
	}},
	"Exec.Environment": {parse: func(s *fileSettings, v string) error {
		w, err := splitQuoted(v)
		if err != nil {
			return err
		}
		if len(w) == 0 {
			s.env = nil
		}
		for _, kv := range w {
			if !strings.Contains(kv, "=") {
				return fmt.Errorf("invalid assignment %q: use NAME=VALUE", kv)
			}
			a, err := envAssignment(kv, nil)
			if err != nil {
				return err
			}
			s.env = envReplace(s.env, a)
		}
		return nil
	}},
	"Exec.User": {parse: func(s *fileSettings, v string) error {
		if v == "" {
			s.user = nil
			return nil
		}
		s.user = &v
		return nil
	}},
	"Exec.WorkingDirectory": {parse: func(s *fileSettings, v string) error {
		if v == "" {
			s.chdir = nil
			return nil
		}
		if err := checkChdir(v); err != nil {
			return err
		}
		c := filepath.Clean(v)
		s.chdir = &c
		return nil
	}},
	"Exec.PivotRoot": {parse: func(s *fileSettings, v string) error {
		if v == "" {
			s.pivotRoot = nil
			return nil
		}
		n, o, err := ParsePivotRoot(v)
		if err != nil {
			return err
		}
		s.pivotRoot = &[2]string{n, o}
		return nil
	}},
	"Exec.Capability":        {privileged: true, parse: func(s *fileSettings, v string) error { return s.caps(v, &s.capAdd) }},
	"Exec.DropCapability":    {parse: func(s *fileSettings, v string) error { return s.caps(v, &s.capDrop) }},
	"Exec.AmbientCapability": {parse: func(s *fileSettings, v string) error { return s.caps(v, &s.ambient) }},
	"Exec.NoNewPrivileges":   {parse: func(s *fileSettings, v string) error { return tristate(&s.noNewPrivs)(s, v) }},
	"Exec.KillSignal": {parse: func(s *fileSettings, v string) error {
		sig, err := ParseSignal(v)
		if err != nil {
			return err
		}
		s.killSignal = sig
		return nil
	}},
	"Exec.Personality": {parse: func(s *fileSettings, v string) error {
		if v == "" {
			s.personality = nil
			return nil
		}
		n, err := ParsePersonality(v)
		s.personality = &n
		return err
	}},
	"Exec.MachineID": {privileged: true, parse: func(s *fileSettings, v string) error {
		u, err := ParseUUID(v)
		if err != nil {
			return err
		}
		s.machineID = &u
		return nil
	}},
	"Exec.PrivateUsers": {parse: parseExecPrivateUsers, privileged: true},
	"Exec.NotifyReady":  {parse: func(s *fileSettings, v string) error { return tristate(&s.notifyReady)(s, v) }},
	"Exec.SystemCallFilter": {parse: func(s *fileSettings, v string) error {
		// Untrusted files may only take system calls away.
		if !s.trusted && !strings.HasPrefix(strings.TrimSpace(v), "~") {
			return errIgnoredUntrusted
		}
		if err := seccomp.Default(0).Apply(v); err != nil {
			return err
		}
		s.syscallFilter = append(s.syscallFilter, v)
		return nil
	}},
	"Exec.OOMScoreAdjust": {parse: func(s *fileSettings, v string) error {
		n, err := ParseOOMScoreAdjust(v)
		s.oomScore = &n
		return err
	}},
	"Exec.CPUAffinity": {parse: func(s *fileSettings, v string) error {
		cpus, err := ParseCPUSet(v)
		if err != nil {
			return err
		}
		if cpus == nil {
			s.cpuSet = nil
			return nil
		}
		s.cpuSet = &cpus
		return nil
	}},
	"Exec.Hostname": {parse: func(s *fileSettings, v string) error {
		if v == "" {
			s.hostname = nil
			return nil
		}
		if !ValidMachineName(v) {
			return fmt.Errorf("invalid hostname %q", v)
		}
		s.hostname = &v
		return nil
	}},
	"Exec.ResolvConf": {parse: func(s *fileSettings, v string) error {
		m, ok := parseMode(v, ResolvConfModes)
		if !ok {
			return fmt.Errorf("invalid mode %q: use one of %s", v, strings.Join(ResolvConfModes, ", "))
		}
		s.resolvConf = &m
		return nil
	}},
	"Exec.Timezone": {parse: func(s *fileSettings, v string) error {
		m, ok := parseMode(v, TimezoneModes)
		if !ok {
			return fmt.Errorf("invalid mode %q: use one of %s", v, strings.Join(TimezoneModes, ", "))
		}
		s.timezone = &m
		return nil
	}},
	"Exec.LinkJournal": {privileged: true, parse: func(s *fileSettings, v string) error {
		m, try, err := ParseLinkJournal(v)
		if err != nil {
			return err
		}
		s.linkJournal = &linkJournalSetting{m, try}
		return nil
	}},
	"Exec.SuppressSync": {parse: func(s *fileSettings, v string) error { return tristate(&s.suppressSync)(s, v) }},
	"Exec.Ephemeral":    {parse: parseExecEphemeral},

	"Files.ReadOnly": {parse: func(s *fileSettings, v string) error { return tristate(&s.readOnly)(s, v) }},
	"Files.Volatile": {parse: parseFilesVolatile},
	"Files.Bind": {privileged: true, parse: func(s *fileSettings, v string) error {
		b, err := parseBindSpec(v, false, s.getwd)
		s.binds = append(s.binds, b)
		return err
	}},
	"Files.BindReadOnly": {privileged: true, parse: func(s *fileSettings, v string) error {
		b, err := parseBindSpec(v, true, s.getwd)
		s.binds = append(s.binds, b)
		return err
	}},
	"Files.TemporaryFileSystem": {privileged: true, parse: func(s *fileSettings, v string) error {
		t, err := parseTmpfsSpec(v)
		s.tmpfs = append(s.tmpfs, t)
		return err
	}},
	"Files.Inaccessible":          {parse: parseFilesInaccessible, privileged: true},
	"Files.Overlay":               {parse: parseFilesOverlay, privileged: true},
	"Files.OverlayReadOnly":       {parse: parseFilesOverlayReadOnly, privileged: true},
	"Files.BindUser":              {parse: parseFilesBindUser, privileged: true},
	"Files.PrivateUsersOwnership": {parse: parseFilesPrivateUsersOwnership, privileged: true},
	"Files.PrivateUsersChown":     {parse: parseFilesPrivateUsersChown, privileged: true},

	"Network.Private":         {privileged: true, parse: func(s *fileSettings, v string) error { return tristate(&s.private)(s, v) }},
	"Network.VirtualEthernet": {privileged: true, parse: func(s *fileSettings, v string) error { return tristate(&s.veth)(s, v) }},
	"Network.VirtualEthernetExtra": {privileged: true, parse: func(s *fileSettings, v string) error {
		ve, err := parseVethExtra(v)
		if err != nil {
			return err
		}
		s.vethExtra = append(s.vethExtra, ve)
		return nil
	}},
	"Network.Interface": {privileged: true, parse: func(s *fileSettings, v string) error { return s.ifaces(v, "", &s.interfaces) }},
	"Network.MACVLAN":   {privileged: true, parse: func(s *fileSettings, v string) error { return s.ifaces(v, "mv-", &s.macvlan) }},
	"Network.IPVLAN":    {privileged: true, parse: func(s *fileSettings, v string) error { return s.ifaces(v, "iv-", &s.ipvlan) }},
	"Network.Bridge": {privileged: true, parse: func(s *fileSettings, v string) error {
		if v != "" && !ValidIfname(v) {
			return fmt.Errorf("invalid interface name %q", v)
		}
		s.bridge = v
		return nil
	}},
	"Network.Zone": {privileged: true, parse: func(s *fileSettings, v string) error {
		if v != "" {
			if err := checkZone(v); err != nil {
				return err
			}
		}
		s.zone = v
		return nil
	}},
	"Network.Port": {privileged: true, parse: func(s *fileSettings, v string) error {
		pt, err := parsePort(v)
		if err != nil {
			return err
		}
		for _, o := range s.ports {
			if o.Protocol == pt.Protocol && o.HostPort == pt.HostPort {
				return fmt.Errorf("duplicate port specification %q", v)
			}
		}
		s.ports = append(s.ports, pt)
		return nil
	}},
}

func init() {
	for _, r := range []string{"CPU", "FSIZE", "DATA", "STACK", "CORE", "RSS", "NOFILE", "AS",
		"NPROC", "MEMLOCK", "LOCKS", "SIGPENDING", "MSGQUEUE", "NICE", "RTPRIO", "RTTIME"} {
		res, _ := RlimitFromName(r)
		settingKeys["Exec.Limit"+r] = settingKey{parse: func(s *fileSettings, v string) error {
			l, err := ParseRlimitValue(res, v)
			s.rlimits[res] = &l
			return err
		}}
	}
}

func (s *fileSettings) setStart(v string, mode int, key string) error {
	b, err := ParseBool(v)
	if err != nil {
		return err
	}
	if b {
		if s.startMode != startUnset && s.startMode != startPID1 && s.startMode != mode {
			return errors.New("both Boot= and ProcessTwo= are enabled: a booted init cannot run as PID 2")
		}
		s.startMode = mode
		return nil
	}
	if s.startMode == mode {
		return fmt.Errorf("%s=no conflicts with an earlier %s=yes", key, key)
	}
	if s.startMode == startUnset {
		s.startMode = startPID1
	}
	return nil
}

func (s *fileSettings) caps(v string, dst *uint64) error {
	m, err := parseCapabilityList(v, strings.Fields)
	if err != nil {
		return err
	}
	*dst |= m
	return nil
}

func (s *fileSettings) ifaces(v, prefix string, dst *[]string) error {
	l, err := parseIfacePairs(v, prefix, "interface")
	if err != nil {
		return err
	}
	*dst = append(*dst, l...)
	return nil
}

// splitQuoted splits a value at white space, with '...' and "..." grouping
// words (the quotes are removed), as systemd's strv settings.
func splitQuoted(v string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, errors.New("unterminated quote")
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

// settingLine is where one option of the file starts.
type settingLine struct {
	section, key string
	line         int
}

// scanSettingLines finds the line of every key assignment in data, in
// order, so that messages can name it (go-systemd's parser gives none).
func scanSettingLines(data []byte) ([]settingLine, error) {
	var out []settingLine
	section := ""
	continued := false
	for i, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimSpace(strings.TrimSuffix(raw, "\r"))
		wasContinued := continued
		continued = strings.HasSuffix(line, "\\")
		if wasContinued {
			continue
		}
		if line == "" || line[0] == '#' || line[0] == ';' {
			continued = false
			continue
		}
		if line[0] == '[' {
			if end := strings.IndexByte(line, ']'); end > 0 {
				section = line[1:end]
			}
			continued = false
			continue
		}
		key, _, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: expected KEY=VALUE, found %q", i+1, line)
		}
		if section == "" {
			return nil, fmt.Errorf("line %d: %s= appears before any [Section]", i+1, strings.TrimSpace(key))
		}
		out = append(out, settingLine{section: section, key: strings.TrimSpace(key), line: i + 1})
	}
	return out, nil
}

// ApplySettings merges the .nspawn file read from r (named file in
// messages) into cfg with nspawn's rules: settings the command line gave win
// unless mode is "override"; privileged keys are ignored, with a warning,
// when the file is not trusted (trusted is true for files from the trusted
// directories, and mode "trusted" trusts any file); mode "no" loads
// nothing. A bad key or value is an error naming file, line and key. The
// merged configuration is checked at the end.
func ApplySettings(cfg *Config, r io.Reader, file string, trusted bool, mode string) error {
	return oneLine(applySettings(cfg, r, file, trusted, mode))
}

func applySettings(cfg *Config, r io.Reader, file string, trusted bool, mode string) error {
	switch mode {
	case "", "yes", "override", "trusted":
	case "no":
		return nil
	default:
		return fmt.Errorf("invalid settings mode %q: use yes, no, override or trusted", mode)
	}
	data, err := io.ReadAll(io.LimitReader(r, maxSettingsSize+1))
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if len(data) > maxSettingsSize {
		return fmt.Errorf("%s: settings file larger than %d bytes", file, maxSettingsSize)
	}
	lines, err := scanSettingLines(data)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	opts, err := unit.DeserializeOptions(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	s := &fileSettings{file: file, getwd: os.Getwd, trusted: trusted || mode == "trusted"}
	li := 0
	for _, o := range opts {
		line := 0
		for j := li; j < len(lines); j++ {
			if lines[j].section == o.Section && lines[j].key == o.Name {
				line, li = lines[j].line, j+1
				break
			}
		}
		// A line ending in a backslash continues on the next; systemd turns
		// the backslash into a space, go-systemd keeps both.
		value := strings.ReplaceAll(strings.ReplaceAll(o.Value, "\\\r\n", " "), "\\\n", " ")
		if err := s.option(o.Section, o.Name, value, line); err != nil {
			return err
		}
	}
	mask := cfg.cmdline
	if mode == "override" {
		mask = 0
	}
	s.merge(cfg, mask)
	s.mergeStorage(cfg, mode == "override")
	for _, w := range s.warnings {
		cfg.Warnings = append(cfg.Warnings, w)
		slog.Warn(w)
	}
	return cfg.Validate()
}

func (s *fileSettings) option(section, key, value string, line int) error {
	switch section {
	case "Exec", "Files", "Network":
	default:
		s.warn(line, "unknown section [%s], ignoring %s=", section, key)
		return nil
	}
	k, ok := settingKeys[section+"."+key]
	if !ok {
		s.warn(line, "unknown key [%s] %s=, ignoring", section, key)
		return nil
	}
	if k.parse == nil {
		switch {
		case k.privileged && !s.trusted:
			s.warn(line, "ignoring [%s] %s= setting, file is not trusted", section, key)
		case value == "" || k.noop != nil && k.noop(value):
		case section == "Exec" && key == "SystemCallFilter" && !s.trusted && !strings.HasPrefix(value, "~"):
			s.warn(line, "ignoring [%s] %s= setting, file is not trusted", section, key)
		default:
			return fmt.Errorf("%s:%d: [%s] %s=: not supported by netspawn yet", s.file, line, section, key)
		}
		return nil
	}
	var invalid errIgnoredInvalidUser
	if err := k.parse(s, value); errors.As(err, &invalid) {
		s.warn(line, "[%s] %s=: %v", section, key, err)
		return nil
	} else if err == errIgnoredUntrusted {
		s.warn(line, "ignoring [%s] %s= setting, file is not trusted", section, key)
		return nil
	} else if err != nil {
		return fmt.Errorf("%s:%d: [%s] %s=: %w", s.file, line, section, key, err)
	}
	switch {
	case section == "Network" && key == "Port":
		if s.portsLine == 0 {
			s.portsLine = line
		}
	case section == "Network":
		if s.netLine == 0 {
			s.netLine = line
		}
	case key == "Capability":
		if s.capLine == 0 {
			s.capLine = line
		}
	case key == "MachineID":
		s.machineIDLine = line
	case key == "LinkJournal":
		s.journalLine = line
	case key == "BindUser":
		s.bindUserLine = line
	case key == "AmbientCapability":
		s.ambientLine = line
	case key == "OOMScoreAdjust":
		s.oomLine = line
	case key == "CPUAffinity":
		s.cpuLine = line
	case strings.HasPrefix(key, "Limit"):
		if r, ok := RlimitFromName(key); ok {
			s.rlimitLines[r] = line
		}
	case key == "Bind" || key == "BindReadOnly" || key == "TemporaryFileSystem":
		if s.mountsLine == 0 {
			s.mountsLine = line
		}
	default:
		s.storage.noteLine(key, line)
	}
	return nil
}

// merge copies the file's settings into c, unless the command line set them
// (mask), following nspawn's merge_settings.
func (s *fileSettings) merge(c *Config, mask settingMask) {
	free := func(bit settingMask) bool { return mask&bit == 0 }
	if free(setStartMode) && (s.startMode != startUnset || s.paramsSet) {
		if s.startMode != startUnset {
			c.Boot = s.startMode == startBoot
			c.AsPid2 = s.startMode == startPID2
		}
		c.Command = s.params
	}
	if free(setEnvironment) && len(s.env) > 0 {
		c.Env = s.env
	}
	if free(setUser) && s.user != nil {
		c.User = *s.user
	}
	if free(setPivotRoot) && s.pivotRoot != nil {
		c.PivotRoot, c.PivotRootOld = s.pivotRoot[0], s.pivotRoot[1]
	}
	if free(setWorkingDirectory) && s.chdir != nil {
		c.Chdir = *s.chdir
	}
	if free(setCapability) {
		plus := s.capAdd
		var netMinus uint64
		if free(setNetwork) && s.networkConfigured() {
			if s.privateNetwork() {
				plus |= 1 << CapNetAdmin
			} else {
				netMinus = 1 << CapNetAdmin
			}
		}
		if !s.trusted && plus != 0 {
			if s.capAdd != 0 {
				s.warn(s.capLine, "ignoring Capability= setting, file is not trusted")
			}
		} else {
			c.CapAdd &^= netMinus
			c.CapAdd |= s.capAdd
			c.CapDrop &^= s.capAdd
		}
		c.CapDrop |= s.capDrop
		if !s.trusted && s.ambient != 0 {
			s.warn(s.ambientLine, "ignoring AmbientCapability= setting, file is not trusted")
		} else {
			c.AmbientCaps |= s.ambient
		}
	}
	if free(setKillSignal) && s.killSignal > 0 {
		c.KillSignal = s.killSignal
	}
	if free(setMachineID) && s.machineID != nil {
		if !s.trusted {
			s.warn(s.machineIDLine, "ignoring MachineID= setting, file is not trusted")
		} else {
			c.UUID = *s.machineID
		}
	}
	if free(setReadOnly) && s.readOnly != nil {
		c.ReadOnly = *s.readOnly
	}
	if free(setCustomMounts) && len(s.binds)+len(s.tmpfs) > 0 {
		if !s.trusted {
			s.warn(s.mountsLine, "ignoring TemporaryFileSystem=, Bind= and BindReadOnly= settings, file is not trusted")
		} else {
			c.Binds, c.Tmpfs = s.binds, s.tmpfs
		}
	}
	if free(setNetwork) && s.networkConfigured() {
		if !s.trusted {
			s.warn(s.netLine, "ignoring [Network] settings, file is not trusted")
		} else {
			n := &c.Network
			n.Veth = s.networkVeth()
			n.Private = s.privateNetwork()
			n.Interfaces, n.MACVLAN, n.IPVLAN, n.VethExtra = s.interfaces, s.macvlan, s.ipvlan, s.vethExtra
			n.Bridge, n.Zone, n.NamespacePath = s.bridge, s.zone, ""
		}
	}
	if free(setPorts) && len(s.ports) > 0 {
		if !s.trusted {
			s.warn(s.portsLine, "ignoring Port= setting, file is not trusted")
		} else {
			c.Network.Ports = s.ports
		}
	}
	if free(setHostname) && s.hostname != nil {
		c.Hostname = *s.hostname
	}
	if free(setNoNewPrivileges) && s.noNewPrivs != nil {
		c.NoNewPrivileges = *s.noNewPrivs
	}
	if free(setSuppressSync) && s.suppressSync != nil {
		c.SuppressSync = *s.suppressSync
	}
	if free(setNotifyReady) && s.notifyReady != nil {
		c.NotifyReady = *s.notifyReady
	}
	if free(setResolvConf) && s.resolvConf != nil {
		c.ResolvConf = *s.resolvConf
	}
	if free(setTimezone) && s.timezone != nil {
		c.Timezone = *s.timezone
	}
	if free(setBindUser) && s.bindUsersSet {
		if !s.trusted {
			s.warn(s.bindUserLine, "ignoring BindUser= setting, file is not trusted")
		} else {
			c.BindUsers = s.bindUsers
		}
	}
	if free(setLinkJournal) && s.linkJournal != nil {
		if !s.trusted {
			s.warn(s.journalLine, "ignoring LinkJournal= setting, file is not trusted")
		} else {
			c.LinkJournal, c.LinkJournalTry = s.linkJournal.mode, s.linkJournal.try
		}
	}
	for r := range s.rlimits {
		if !free(setRlimitFirst<<r) || s.rlimits[r] == nil {
			continue
		}
		if !s.trusted {
			s.warn(s.rlimitLines[r], "ignoring Limit%s= setting, file is not trusted", RlimitNames[r])
			continue
		}
		c.Rlimits[r] = s.rlimits[r]
	}
	if free(setOOMScoreAdjust) && s.oomScore != nil {
		if !s.trusted {
			s.warn(s.oomLine, "ignoring OOMScoreAdjust= setting, file is not trusted")
		} else {
			c.OOMScoreAdjust = s.oomScore
		}
	}
	if free(setCPUAffinity) && s.cpuSet != nil {
		if !s.trusted {
			s.warn(s.cpuLine, "ignoring CPUAffinity= setting, file is not trusted")
		} else {
			c.CPUAffinity = *s.cpuSet
		}
	}
	if free(setPersonality) && s.personality != nil {
		c.Personality = *s.personality
	}
	if free(setSyscallFilter) && len(s.syscallFilter) > 0 {
		c.SystemCallFilter = append(c.SystemCallFilter, s.syscallFilter...)
	}
}

// errIgnoredUntrusted tells the loader a privileged value from an untrusted
// file was ignored (with a warning), not that it was wrong.
var errIgnoredUntrusted = errors.New("ignored: file is not trusted")
