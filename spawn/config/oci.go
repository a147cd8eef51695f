package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/netspawn/netspawn/spawn/seccomp"
)

// OCIBundle is what the config.json of an OCI runtime bundle asks of a
// container, in netspawn's terms (ParseOCIConfig). Config.applyOCIBundle
// merges it under the command line, as systemd-nspawn's --oci-bundle=.
type OCIBundle struct {
	Dir      string // the bundle directory, absolute
	Root     string // root.path, absolute ("" when the bundle has none)
	ReadOnly *bool  // root.readonly

	Args            []string
	Env             []string
	Cwd             string
	User            *OCIUser
	Pipe            bool // process.terminal is false: nspawn's --console=pipe
	NoNewPrivileges *bool
	OOMScoreAdjust  *int
	Rlimits         [NumRlimits]*Rlimit
	// CapBounding is process.capabilities.bounding (nil: not given): it
	// becomes the whole capability set, as nspawn's Capability= plus
	// DropCapability= of everything else.
	CapBounding *uint64
	CapAmbient  uint64

	Hostname string
	Binds    []BindMount
	Tmpfs    []TmpfsMount
	Masked   []string // linux.maskedPaths (missing paths are skipped)

	// Namespaces is linux.namespaces (nil: not given).
	Namespaces *OCINamespaces
	UserNS     *PrivateUsers // linux.uidMappings and gidMappings

	// Seccomp is linux.seccomp: a filter used instead of netspawn's default
	// one (nil: not given).
	Seccomp *seccomp.Profile

	// Devices are linux.devices: nodes to make in the container (those
	// every container gets anyway left out).
	Devices []DeviceNode
	// DeviceAllow are linux.resources.devices' allow entries.
	DeviceAllow []DeviceAllow

	Properties  []string // --property= assignments from linux.resources
	CPUAffinity []int    // linux.resources.cpu.cpus
	Slice       string   // linux.cgroupsPath

	// Warnings are the parts of the bundle netspawn accepts but ignores.
	Warnings []string
}

// OCIUser is process.user: numeric IDs, not looked up in /etc/passwd.
type OCIUser struct {
	UID    uint32
	GID    uint32
	Groups []uint32 `json:",omitempty"` // additionalGids: the whole supplementary group list
}

// OCINamespaces are the namespace types linux.namespaces lists. The mount
// namespace is always there (a bundle without it is refused).
type OCINamespaces struct {
	Network, User, Cgroup, IPC, PID, UTS bool
	NetworkPath                          string // the "path" of the network entry: join it
}

// ociMaxConfig bounds config.json.
const ociMaxConfig = 4 << 20

// ReadOCIBundle reads DIR/config.json and parses it (ParseOCIConfig).
func ReadOCIBundle(dir string, readFile func(string) ([]byte, error)) (*OCIBundle, error) {
	p := filepath.Join(dir, "config.json")
	data, err := readFile(p)
	if err != nil {
		return nil, fmt.Errorf("--oci-bundle=%s: %w (an OCI bundle is a directory with config.json and a root file system)", dir, err)
	}
	b, err := ParseOCIConfig(data, dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return b, nil
}

// ParseOCIConfig parses the config.json of the OCI bundle in directory
// bundle (absolute) as systemd-nspawn 252 does: what it honours maps to
// netspawn's settings, what it refuses is an error naming the JSON field,
// and what it ignores is a warning. Unknown fields are refused.
func ParseOCIConfig(data []byte, bundle string) (*OCIBundle, error) {
	if len(data) > ociMaxConfig {
		return nil, fmt.Errorf("larger than %d bytes", ociMaxConfig)
	}
	if !path.IsAbs(bundle) {
		return nil, fmt.Errorf("bundle directory %q is not absolute", bundle)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var top any
	if err := dec.Decode(&top); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("not valid JSON: data after the top-level object")
	}
	m, ok := top.(map[string]any)
	if !ok {
		return nil, errors.New("not an OCI runtime configuration: the top level is not a JSON object")
	}
	v, ok := m["ociVersion"]
	if !ok {
		return nil, errors.New("ociVersion: missing: this is not an OCI runtime configuration")
	}
	ver, err := ociString("ociVersion", v)
	if err != nil {
		return nil, err
	}
	if major, _, _ := strings.Cut(ver, "."); major != "1" {
		return nil, fmt.Errorf("ociVersion: version %q is not supported: netspawn reads version 1.x of the OCI runtime specification", ver)
	}
	b := &OCIBundle{Dir: path.Clean(bundle)}
	if err := ociCheckKeys("", m, "ociVersion", "process", "root", "hostname", "mounts", "linux", "hooks", "annotations"); err != nil {
		return nil, err
	}
	if _, ok := m["process"]; !ok {
		return nil, errors.New("process: missing: the bundle must name the command to run (process.args)")
	}
	steps := []struct {
		key string
		fn  func(string, any) error
	}{
		{"process", b.process}, {"root", b.root}, {"hostname", b.hostname}, {"mounts", b.mounts},
		{"linux", b.linux}, {"hooks", b.hooks}, {"annotations", b.annotations},
	}
	for _, s := range steps {
		if err := ociIf(m, "", s.key, s.fn); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func (b *OCIBundle) warn(field, format string, a ...any) {
	b.Warnings = append(b.Warnings, field+": "+fmt.Sprintf(format, a...))
}

// ociErr is an error about one JSON field.
func ociErr(field, format string, a ...any) error {
	return fmt.Errorf("%s: %s", field, fmt.Sprintf(format, a...))
}

func ociJoin(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// ociCheckKeys refuses fields netspawn does not know, as nspawn does.
func ociCheckKeys(parent string, m map[string]any, known ...string) error {
	var unknown []string
	for k := range m {
		found := false
		for _, n := range known {
			if k == n {
				found = true
				break
			}
		}
		if !found {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	return ociErr(ociJoin(parent, unknown[0]), "unknown field, refusing (known here: %s)", strings.Join(known, ", "))
}

func ociType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func ociObject(field string, v any) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, ociErr(field, "expected an object, got %s", ociType(v))
	}
	return m, nil
}

func ociArray(field string, v any) ([]any, error) {
	a, ok := v.([]any)
	if !ok {
		return nil, ociErr(field, "expected an array, got %s", ociType(v))
	}
	return a, nil
}

func ociString(field string, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", ociErr(field, "expected a string, got %s", ociType(v))
	}
	return s, nil
}

func ociBool(field string, v any) (bool, error) {
	x, ok := v.(bool)
	if !ok {
		return false, ociErr(field, "expected true or false, got %s", ociType(v))
	}
	return x, nil
}

func ociStrings(field string, v any) ([]string, error) {
	return ociList(field, v, ociString)
}

// ociList parses the array v, each element with parse.
func ociList[T any](field string, v any, parse func(string, any) (T, error)) ([]T, error) {
	a, err := ociArray(field, v)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(a))
	for i, e := range a {
		x, err := parse(fmt.Sprintf("%s[%d]", field, i), e)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, nil
}

// ociFields is the object v, which may have only the keys known.
func ociFields(field string, v any, known ...string) (map[string]any, error) {
	m, err := ociObject(field, v)
	if err != nil {
		return nil, err
	}
	if err := ociCheckKeys(field, m, known...); err != nil {
		return nil, err
	}
	return m, nil
}

// ociObjects calls fn on each element of the array v, an object with only
// the keys known; f names the element (field[i]).
func ociObjects(field string, v any, known []string, fn func(f string, m map[string]any) error) error {
	a, err := ociArray(field, v)
	if err != nil {
		return err
	}
	for i, e := range a {
		f := fmt.Sprintf("%s[%d]", field, i)
		m, err := ociFields(f, e, known...)
		if err != nil {
			return err
		}
		if err := fn(f, m); err != nil {
			return err
		}
	}
	return nil
}

// ociNeed parses the field key of the object m (at parent), which must be
// there.
func ociNeed[T any](m map[string]any, parent, key string, parse func(string, any) (T, error)) (T, error) {
	f := parent + "." + key
	x, ok := m[key]
	if !ok {
		var zero T
		return zero, ociErr(f, "missing")
	}
	return parse(f, x)
}

// ociMay parses the field key of the object m (at parent) into *dst when m
// has it, and leaves *dst alone when not.
func ociMay[T any](m map[string]any, parent, key string, parse func(string, any) (T, error), dst *T) error {
	x, ok := m[key]
	if !ok {
		return nil
	}
	v, err := parse(parent+"."+key, x)
	if err != nil {
		return err
	}
	*dst = v
	return nil
}

// ociPtr makes a parser of T one of *T, for ociMay into an optional field.
func ociPtr[T any](parse func(string, any) (T, error)) func(string, any) (*T, error) {
	return func(field string, v any) (*T, error) {
		x, err := parse(field, v)
		if err != nil {
			return nil, err
		}
		return &x, nil
	}
}

// ociIf calls fn on the field key of the object m (at parent) when m has it.
func ociIf(m map[string]any, parent, key string, fn func(string, any) error) error {
	if x, ok := m[key]; ok {
		return fn(ociJoin(parent, key), x)
	}
	return nil
}

// ociRlimit reads a resource limit: nspawn reads a negative one as infinity.
func ociRlimit(field string, v any) (uint64, error) {
	_, u, neg, err := ociInt(field, v)
	if neg {
		return Unlimited, nil
	}
	return u, err
}

// ociEach calls fn on each field of the object m (at parent), in the order
// of their keys; f is parent.key.
func ociEach(parent string, m map[string]any, fn func(key, f string, x any) error) error {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if err := fn(k, parent+"."+k, m[k]); err != nil {
			return err
		}
	}
	return nil
}

// ociInt reads an integer; negative reports a negative one (its value is
// then in n as a signed number).
func ociInt(field string, v any) (n int64, u uint64, negative bool, err error) {
	num, ok := v.(json.Number)
	if !ok {
		return 0, 0, false, ociErr(field, "expected an integer, got %s", ociType(v))
	}
	if x, err := strconv.ParseUint(num.String(), 10, 64); err == nil {
		return int64(min(x, math.MaxInt64)), x, false, nil
	}
	if x, err := strconv.ParseInt(num.String(), 10, 64); err == nil && x < 0 {
		return x, 0, true, nil
	}
	return 0, 0, false, ociErr(field, "expected an integer, got %s", num)
}

func ociUnsigned(field string, v any) (uint64, error) {
	_, u, neg, err := ociInt(field, v)
	if err != nil {
		return 0, err
	}
	if neg {
		return 0, ociErr(field, "must not be negative")
	}
	return u, nil
}

func ociID(field string, v any) (uint32, error) {
	u, err := ociUnsigned(field, v)
	if err != nil {
		return 0, err
	}
	// (uid_t)-1 and (uid_t)-2 are not valid IDs (nspawn's uid_is_valid).
	if u >= math.MaxUint32-1 {
		return 0, ociErr(field, "UID/GID %d is out of range", u)
	}
	return uint32(u), nil
}

func ociAbsPath(field string, v any) (string, error) {
	s, err := ociString(field, v)
	if err != nil {
		return "", err
	}
	if !path.IsAbs(s) {
		return "", ociErr(field, "path %q is not absolute", s)
	}
	return path.Clean(s), nil
}

func (b *OCIBundle) process(field string, v any) error {
	m, err := ociFields(field, v, "terminal", "consoleSize", "cwd", "env", "args", "rlimits",
		"apparmorProfile", "capabilities", "noNewPrivileges", "oomScoreAdj", "selinuxLabel", "user")
	if err != nil {
		return err
	}
	if v, ok := m["terminal"]; ok {
		t, err := ociBool(field+".terminal", v)
		if err != nil {
			return err
		}
		b.Pipe = !t
	}
	if err := ociIf(m, field, "consoleSize", b.consoleSize); err != nil {
		return err
	}
	if err := ociMay(m, field, "cwd", ociAbsPath, &b.Cwd); err != nil {
		return err
	}
	if v, ok := m["env"]; ok {
		env, err := ociStrings(field+".env", v)
		if err != nil {
			return err
		}
		for i, e := range env {
			name, _, ok := strings.Cut(e, "=")
			if !ok || !validEnvName(name) {
				return ociErr(fmt.Sprintf("%s.env[%d]", field, i), "%q is not a NAME=VALUE assignment", e)
			}
		}
		b.Env = env
	}
	v, ok := m["args"]
	if !ok {
		return ociErr(field+".args", "missing: the bundle must name the command to run")
	}
	if b.Args, err = ociStrings(field+".args", v); err != nil {
		return err
	}
	if len(b.Args) == 0 {
		return ociErr(field+".args", "the argument list is empty, refusing")
	}
	if b.Args[0] == "" {
		return ociErr(field+".args[0]", "the executable name is empty, refusing")
	}
	if err := ociIf(m, field, "rlimits", b.rlimits); err != nil {
		return err
	}
	for _, k := range []string{"apparmorProfile", "selinuxLabel"} {
		if v, ok := m[k]; ok {
			if _, err := ociString(field+"."+k, v); err != nil {
				return err
			}
			b.warn(field+"."+k, "not supported, ignoring (as systemd-nspawn)")
		}
	}
	if err := ociIf(m, field, "capabilities", b.capabilities); err != nil {
		return err
	}
	if err := ociMay(m, field, "noNewPrivileges", ociPtr(ociBool), &b.NoNewPrivileges); err != nil {
		return err
	}
	if v, ok := m["oomScoreAdj"]; ok {
		n, _, _, err := ociInt(field+".oomScoreAdj", v)
		if err != nil {
			return err
		}
		if n < -1000 || n > 1000 {
			return ociErr(field+".oomScoreAdj", "%d is out of range -1000..1000", n)
		}
		x := int(n)
		b.OOMScoreAdjust = &x
	}
	return ociIf(m, field, "user", b.user)
}

func (b *OCIBundle) consoleSize(field string, v any) error {
	m, err := ociFields(field, v, "height", "width")
	if err != nil {
		return err
	}
	for _, k := range []string{"height", "width"} {
		n, err := ociNeed(m, field, k, ociUnsigned)
		if err != nil {
			return err
		}
		if n == 0 || n > math.MaxUint16 {
			return ociErr(field+"."+k, "%d is out of range 1..65535", n)
		}
	}
	b.warn(field, "ignored: the container's terminal takes the size of netspawn's own")
	return nil
}

func (b *OCIBundle) rlimits(field string, v any) error {
	return ociObjects(field, v, []string{"type", "soft", "hard"}, func(f string, m map[string]any) error {
		t, err := ociNeed(m, f, "type", ociString)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(t, "RLIMIT_") {
			return ociErr(f+".type", "%q does not begin with RLIMIT_", t)
		}
		r, ok := RlimitFromName(t)
		if !ok {
			return ociErr(f+".type", "unknown resource limit %q", t)
		}
		if b.Rlimits[r] != nil {
			return ociErr(f+".type", "%s is given twice", t)
		}
		var l Rlimit
		if l.Cur, err = ociNeed(m, f, "soft", ociRlimit); err != nil {
			return err
		}
		if l.Max, err = ociNeed(m, f, "hard", ociRlimit); err != nil {
			return err
		}
		if l.Cur > l.Max {
			return ociErr(f, "the soft limit %d is above the hard limit %d", l.Cur, l.Max)
		}
		b.Rlimits[r] = &l
		return nil
	})
}

func (b *OCIBundle) capabilities(field string, v any) error {
	m, err := ociFields(field, v, "effective", "bounding", "inheritable", "permitted", "ambient")
	if err != nil {
		return err
	}
	sets := map[string]uint64{}
	for k, x := range m {
		names, err := ociStrings(field+"."+k, x)
		if err != nil {
			return err
		}
		var mask uint64
		for i, n := range names {
			c, err := CapabilityFromName(n)
			if err != nil || !strings.HasPrefix(strings.ToUpper(n), "CAP_") {
				return ociErr(fmt.Sprintf("%s.%s[%d]", field, k, i), "unknown capability %q", n)
			}
			if c >= 64 {
				return ociErr(fmt.Sprintf("%s.%s[%d]", field, k, i), "capability %q is out of range", n)
			}
			mask |= 1 << uint(c)
		}
		sets[k] = mask
	}
	if bnd, ok := sets["bounding"]; ok {
		b.CapBounding = &bnd
	}
	b.CapAmbient = sets["ambient"]
	if b.CapBounding != nil && b.CapAmbient&^*b.CapBounding != 0 {
		return ociErr(field+".ambient", "%s are not in the bounding set, refusing", strings.Join(CapNames(b.CapAmbient&^*b.CapBounding), ", "))
	}
	for _, k := range []string{"effective", "permitted", "inheritable"} {
		s, ok := sets[k]
		if !ok {
			continue
		}
		if b.CapBounding != nil && s&^*b.CapBounding != 0 {
			return ociErr(field+"."+k, "%s are not in the bounding set, refusing", strings.Join(CapNames(s&^*b.CapBounding), ", "))
		}
		if b.CapBounding == nil || s != *b.CapBounding {
			b.warn(field+"."+k, "netspawn derives this set from the bounding set (all of it for UID 0, the ambient set for other users), ignoring the one given")
		}
	}
	return nil
}

func (b *OCIBundle) user(field string, v any) error {
	m, err := ociFields(field, v, "uid", "gid", "additionalGids")
	if err != nil {
		return err
	}
	u := &OCIUser{}
	if u.UID, err = ociNeed(m, field, "uid", ociID); err != nil {
		return err
	}
	if u.GID, err = ociNeed(m, field, "gid", ociID); err != nil {
		return err
	}
	if x, ok := m["additionalGids"]; ok {
		gs, err := ociList(field+".additionalGids", x, ociID)
		if err != nil {
			return err
		}
		if len(gs) > 0 {
			u.Groups = gs
		}
	}
	b.User = u
	return nil
}

func (b *OCIBundle) root(field string, v any) error {
	m, err := ociFields(field, v, "path", "readonly")
	if err != nil {
		return err
	}
	if x, ok := m["path"]; ok {
		p, err := ociString(field+".path", x)
		if err != nil {
			return err
		}
		if p == "" {
			return ociErr(field+".path", "empty")
		}
		if !path.IsAbs(p) {
			p = path.Join(b.Dir, p)
		}
		b.Root = path.Clean(p)
	}
	return ociMay(m, field, "readonly", ociPtr(ociBool), &b.ReadOnly)
}

func (b *OCIBundle) hostname(field string, v any) error {
	h, err := ociString(field, v)
	if err != nil {
		return err
	}
	if !ValidMachineName(h) {
		return ociErr(field, "%q is not a valid hostname", h)
	}
	b.Hostname = h
	return nil
}

// ociExcluded reports the mount points netspawn sets up itself, whatever a
// bundle says (nspawn's oci_exclude_mount).
func ociExcluded(p string) bool {
	switch p {
	case "/dev", "/dev/mqueue", "/dev/pts", "/dev/shm", "/proc", "/proc/acpi", "/proc/apm",
		"/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/kallsyms", "/proc/kcore",
		"/proc/keys", "/proc/scsi", "/proc/sys", "/proc/sys/net", "/proc/sysrq-trigger",
		"/proc/timer_list", "/run", "/sys", "/sys/fs/selinux", "/tmp":
		return true
	}
	return p == "/sys/fs/cgroup" || strings.HasPrefix(p, "/sys/fs/cgroup/")
}

// Mount options without a meaning for netspawn's bind mounts: propagation
// (the container's mounts never propagate back to the host) and flags a
// bind mount keeps from its source.
var ociIgnoredMountOptions = map[string]bool{
	"private": true, "rprivate": true, "slave": true, "rslave": true, "shared": true, "rshared": true,
	"unbindable": true, "runbindable": true, "rw": true,
}

func (b *OCIBundle) mounts(field string, v any) error {
	return ociObjects(field, v, []string{"destination", "source", "options", "type"}, b.mount)
}

func (b *OCIBundle) mount(f string, m map[string]any) error {
	dest, err := ociNeed(m, f, "destination", ociAbsPath)
	if err != nil {
		return err
	}
	var src, typ string
	var opts []string
	if err := ociMay(m, f, "source", ociString, &src); err != nil {
		return err
	}
	if err := ociMay(m, f, "type", ociString, &typ); err != nil {
		return err
	}
	if err := ociMay(m, f, "options", ociStrings, &opts); err != nil {
		return err
	}
	if ociExcluded(dest) {
		return nil
	}
	switch typ {
	case "", "bind":
		if src == "" {
			return ociErr(f+".source", "a bind mount needs a source")
		}
		if !path.IsAbs(src) {
			src = path.Join(b.Dir, src)
		}
		bm := BindMount{Source: path.Clean(src), Dest: dest, Recursive: true}
		for _, o := range opts {
			switch {
			case o == "ro":
				bm.ReadOnly = true
			case o == "rbind":
				bm.Recursive = true
			case o == "bind":
				bm.Recursive = false
			case ociIgnoredMountOptions[o]:
			default:
				b.warn(f+".options", "option %q of the bind mount on %s is not supported, ignoring", o, dest)
			}
		}
		b.Binds = append(b.Binds, bm)
	case "tmpfs":
		var keep []string
		for _, o := range opts {
			name, _, _ := strings.Cut(o, "=")
			switch name {
			case "ro", "rw", "suid", "nosuid", "dev", "nodev", "exec", "noexec",
				"mode", "size", "nr_inodes", "nr_blocks", "uid", "gid", "huge", "mpol", "inode64", "inode32":
				keep = append(keep, o)
			default:
				if !ociIgnoredMountOptions[o] {
					b.warn(f+".options", "option %q of the tmpfs on %s is not supported, ignoring", o, dest)
				}
			}
		}
		b.Tmpfs = append(b.Tmpfs, TmpfsMount{Dest: dest, Options: strings.Join(keep, ",")})
	default:
		return ociErr(f+".type", "mounts of type %q (on %s) are not supported by netspawn: only bind and tmpfs mounts, besides the API file systems it mounts itself", typ, dest)
	}
	return nil
}

func (b *OCIBundle) linux(field string, v any) error {
	m, err := ociFields(field, v, "namespaces", "uidMappings", "gidMappings", "devices", "cgroupsPath",
		"resources", "intelRdt", "sysctl", "seccomp", "rootfsPropagation", "maskedPaths", "readonlyPaths", "mountLabel")
	if err != nil {
		return err
	}
	err = ociEach(field, m, func(k, f string, x any) (err error) {
		switch k {
		case "namespaces":
			err = b.namespaces(f, x)
		case "uidMappings", "gidMappings":
			err = b.idMappings(f, x)
		case "devices":
			err = b.devices(f, x)
		case "cgroupsPath":
			err = b.cgroupsPath(f, x)
		case "resources":
			err = b.resources(f, x)
		case "intelRdt":
			if _, err = ociObject(f, x); err == nil {
				b.warn(f, "not supported, ignoring (as systemd-nspawn)")
			}
		case "mountLabel":
			if _, err = ociString(f, x); err == nil {
				b.warn(f, "not supported, ignoring (as systemd-nspawn)")
			}
		case "sysctl":
			err = b.sysctl(f, x)
		case "seccomp":
			err = b.seccomp(f, x)
		case "rootfsPropagation":
			_, err = ociString(f, x) // ignored, as nspawn
		case "maskedPaths", "readonlyPaths":
			err = b.paths(f, x, k == "readonlyPaths")
		}
		return err
	})
	if err != nil {
		return err
	}
	if b.UserNS != nil && (b.Namespaces == nil || !b.Namespaces.User) {
		return ociErr(field+".uidMappings", "ID mappings need a user namespace in linux.namespaces")
	}
	return nil
}

func (b *OCIBundle) namespaces(field string, v any) error {
	ns := &OCINamespaces{}
	seen := map[string]bool{}
	err := ociObjects(field, v, []string{"type", "path"}, func(f string, m map[string]any) error {
		t, err := ociNeed(m, f, "type", ociString)
		if err != nil {
			return err
		}
		switch t {
		case "pid":
			ns.PID = true
		case "network":
			ns.Network = true
		case "mount":
		case "ipc":
			ns.IPC = true
		case "uts":
			ns.UTS = true
		case "user":
			ns.User = true
		case "cgroup":
			ns.Cgroup = true
		default:
			return ociErr(f+".type", "unknown namespace type %q, refusing (known: pid, network, mount, ipc, uts, user, cgroup)", t)
		}
		if seen[t] {
			return ociErr(f+".type", "namespace %q is listed twice", t)
		}
		seen[t] = true
		if x, ok := m["path"]; ok {
			p, err := ociAbsPath(f+".path", x)
			if err != nil {
				return err
			}
			if t != "network" {
				return ociErr(f+".path", "joining an existing %s namespace is not supported: only the network namespace may have a path", t)
			}
			ns.NetworkPath = p
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !seen["mount"] {
		return ociErr(field, "containers without a mount namespace are not supported: add {\"type\": \"mount\"}")
	}
	if ns.User && !(ns.PID && ns.IPC && ns.UTS) {
		return ociErr(field, "a container with a user namespace needs its own pid, ipc and uts namespaces too in netspawn: add them, or drop \"user\"")
	}
	b.Namespaces = ns
	return nil
}

func (b *OCIBundle) idMappings(field string, v any) error {
	a, err := ociArray(field, v)
	if err != nil {
		return err
	}
	if len(a) == 0 {
		return nil
	}
	if len(a) > 1 {
		return ociErr(field, "more than one mapping is not supported: give one range, container ID 0 onwards")
	}
	f := field + "[0]"
	m, err := ociFields(f, a[0], "containerID", "hostID", "size")
	if err != nil {
		return err
	}
	var vals [3]uint64
	for i, k := range []string{"containerID", "hostID", "size"} {
		if vals[i], err = ociNeed(m, f, k, ociUnsigned); err != nil {
			return err
		}
	}
	cont, host, size := vals[0], vals[1], vals[2]
	if size == 0 {
		return ociErr(f+".size", "the range may not be empty")
	}
	if host+size > math.MaxUint32 || cont+size > math.MaxUint32 {
		return ociErr(f, "the range goes beyond the valid UIDs/GIDs")
	}
	if cont != 0 {
		return ociErr(f+".containerID", "mappings that do not start at container ID 0 are not supported")
	}
	if size < UIDRangeSize {
		b.warn(f+".size", "a mapping of fewer than 65536 IDs is likely to break the container")
	}
	if b.UserNS != nil && (b.UserNS.Shift != uint32(host) || b.UserNS.Range != uint32(size)) {
		return ociErr(field, "UID and GID mappings that differ are not supported")
	}
	b.UserNS = &PrivateUsers{Mode: UserNSFixed, Shift: uint32(host), Range: uint32(size)}
	return nil
}

func (b *OCIBundle) cgroupsPath(field string, v any) error {
	p, err := ociString(field, v)
	if err != nil {
		return err
	}
	p = strings.TrimSuffix(p, "/")
	last := p
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		last = p[i+1:]
	}
	if !strings.HasSuffix(last, ".slice") {
		return ociErr(field, "%q does not name a slice unit: netspawn only places the machine's scope in a slice (such as /machine.slice/machine-web.slice)", p)
	}
	s, err := ParseSlice(last)
	if err != nil {
		return ociErr(field, "%v", err)
	}
	b.Slice = s
	return nil
}

func (b *OCIBundle) resources(field string, v any) error {
	m, err := ociFields(field, v, "devices", "memory", "cpu", "blockIO", "hugepageLimits", "network", "pids", "rdma")
	if err != nil {
		return err
	}
	return ociEach(field, m, func(k, f string, x any) error {
		switch k {
		case "devices":
			return b.cgroupDevices(f, x)
		case "memory":
			return b.memory(f, x)
		case "cpu":
			return b.cpu(f, x)
		case "pids":
			return b.pids(f, x)
		case "blockIO":
			return b.blockIO(f, x)
		}
		return ociErr(f, "not supported by netspawn: remove it (netspawn's resource controls are %s)", strings.Join(SupportedProperties, ", "))
	})
}

// ociLimit reads a limit where a negative number means none (nil).
func ociLimit(field string, v any) (*uint64, error) {
	_, u, neg, err := ociInt(field, v)
	if err != nil || neg {
		return nil, err
	}
	return &u, nil
}

func (b *OCIBundle) memory(field string, v any) error {
	m, err := ociFields(field, v, "limit", "reservation", "swap", "kernel", "kernelTCP", "swappiness", "disableOOMKiller")
	if err != nil {
		return err
	}
	var limit *uint64
	if err := ociMay(m, field, "limit", ociLimit, &limit); err != nil {
		return err
	}
	if limit != nil {
		b.Properties = append(b.Properties, fmt.Sprintf("MemoryMax=%d", *limit))
	}
	for _, k := range []string{"reservation", "swap"} {
		if x, ok := m[k]; ok {
			if _, err := ociLimit(field+"."+k, x); err != nil {
				return err
			}
			b.warn(field+"."+k, "not supported by netspawn, ignoring")
		}
	}
	for _, k := range []string{"kernel", "kernelTCP", "swappiness", "disableOOMKiller"} {
		if _, ok := m[k]; ok {
			b.warn(field+"."+k, "not supported, ignoring (as systemd-nspawn)")
		}
	}
	return nil
}

func (b *OCIBundle) cpu(field string, v any) error {
	m, err := ociFields(field, v, "shares", "quota", "period", "realtimeRuntime", "realtimePeriod", "cpus", "mems")
	if err != nil {
		return err
	}
	for _, k := range []string{"realtimeRuntime", "realtimePeriod", "mems"} {
		if _, ok := m[k]; ok {
			return ociErr(field+"."+k, "not supported, refusing (as systemd-nspawn)")
		}
	}
	if x, ok := m["shares"]; ok {
		s, err := ociUnsigned(field+".shares", x)
		if err != nil {
			return err
		}
		if s < 2 || s > 262144 {
			return ociErr(field+".shares", "%d is out of range 2..262144", s)
		}
		// systemd's conversion of CPUShares= to CPUWeight= on cgroup v2.
		w := min(max(s*100/1024, 1), 10000)
		b.Properties = append(b.Properties, fmt.Sprintf("CPUWeight=%d", w))
	}
	var qp [2]uint64
	var have [2]bool
	for i, k := range []string{"quota", "period"} {
		if x, ok := m[k]; ok {
			n, err := ociUnsigned(field+"."+k, x)
			if err != nil {
				return err
			}
			if n == 0 || n >= math.MaxUint32 {
				return ociErr(field+"."+k, "%d is out of range", n)
			}
			qp[i], have[i] = n, true
		}
	}
	if have[0] != have[1] {
		return ociErr(field, "quota and period must be given together")
	}
	if have[0] {
		pct := max((qp[0]*100+qp[1]-1)/qp[1], 1)
		b.Properties = append(b.Properties, fmt.Sprintf("CPUQuota=%d%%", pct))
	}
	if x, ok := m["cpus"]; ok {
		s, err := ociString(field+".cpus", x)
		if err != nil {
			return err
		}
		if b.CPUAffinity, err = ParseCPUSet(s); err != nil {
			return ociErr(field+".cpus", "%v", err)
		}
	}
	return nil
}

func (b *OCIBundle) pids(field string, v any) error {
	m, err := ociFields(field, v, "limit")
	if err != nil {
		return err
	}
	l, err := ociNeed(m, field, "limit", ociLimit)
	if err != nil {
		return err
	}
	if l == nil || *l == 0 {
		b.Properties = append(b.Properties, "TasksMax=infinity")
	} else {
		b.Properties = append(b.Properties, fmt.Sprintf("TasksMax=%d", *l))
	}
	return nil
}

// validSysctlKey is nspawn's sysctl_key_valid: dot-separated, no empty
// component, no '/', printable ASCII.
func validSysctlKey(k string) bool {
	if k == "" || k[0] == '.' || k[len(k)-1] == '.' || strings.Contains(k, "..") {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] <= ' ' || k[i] >= 127 || k[i] == '/' {
			return false
		}
	}
	return true
}

func (b *OCIBundle) sysctl(field string, v any) error {
	m, err := ociObject(field, v)
	if err != nil {
		return err
	}
	keys := slices.Sorted(maps.Keys(m))
	for _, k := range keys {
		if _, err := ociString(field+"."+k, m[k]); err != nil {
			return err
		}
		if !validSysctlKey(k) {
			return ociErr(field, "invalid sysctl key %q", k)
		}
	}
	if len(keys) > 0 {
		b.warn(field, "ignoring %s (systemd-nspawn 252 checks these keys but does not apply them either)", strings.Join(keys, ", "))
	}
	return nil
}

func (b *OCIBundle) paths(field string, v any, readOnly bool) error {
	ps, err := ociStrings(field, v)
	if err != nil {
		return err
	}
	for i, p := range ps {
		if !path.IsAbs(p) {
			return ociErr(fmt.Sprintf("%s[%d]", field, i), "path %q is not absolute", p)
		}
		p = path.Clean(p)
		if ociExcluded(p) {
			continue
		}
		if readOnly {
			b.Binds = append(b.Binds, BindMount{Source: p, Dest: p, ReadOnly: true, Recursive: true, SourceInRoot: true})
		} else {
			b.Masked = append(b.Masked, p)
		}
	}
	return nil
}

func (b *OCIBundle) hooks(field string, v any) error {
	m, err := ociFields(field, v, "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
	if err != nil {
		return err
	}
	return ociEach(field, m, func(_, f string, x any) error {
		a, err := ociArray(f, x)
		if err != nil {
			return err
		}
		if len(a) > 0 {
			return ociErr(f, "OCI hooks are not run by netspawn (systemd-nspawn 252 does not run them either): remove them from config.json")
		}
		return nil
	})
}

func (b *OCIBundle) annotations(field string, v any) error {
	m, err := ociObject(field, v)
	if err != nil {
		return err
	}
	for k, x := range m {
		if k == "" {
			return ociErr(field, "an annotation has an empty key")
		}
		if _, err := ociString(field+"."+k, x); err != nil {
			return err
		}
	}
	return nil // nspawn honours no annotation
}

// applyOCIBundle merges the bundle into c under the command line (c.cmdline),
// as systemd-nspawn's merge_settings: a bundle is trusted.
func (c *Config) applyOCIBundle(b *OCIBundle) {
	s := &fileSettings{file: b.Dir, trusted: true}
	s.startMode = startPID1
	s.params, s.paramsSet = b.Args, true
	s.env = b.Env
	if b.Cwd != "" {
		s.chdir = &b.Cwd
	}
	if b.CapBounding != nil {
		s.capAdd = *b.CapBounding
		s.capDrop = AllCapabilities &^ *b.CapBounding
	}
	s.ambient = b.CapAmbient
	if b.Hostname != "" {
		s.hostname = &b.Hostname
	}
	off := "off"
	s.resolvConf, s.timezone = &off, &off
	s.noNewPrivs = b.NoNewPrivileges
	s.readOnly = b.ReadOnly
	s.rlimits = b.Rlimits
	s.oomScore = b.OOMScoreAdjust
	if b.CPUAffinity != nil {
		s.cpuSet = &b.CPUAffinity
	}
	s.binds, s.tmpfs = b.Binds, b.Tmpfs
	if ns := b.Namespaces; ns != nil && ns.NetworkPath == "" {
		s.private = &ns.Network
	}
	mask := c.cmdline
	s.merge(c, mask)
	free := func(bit settingMask) bool { return mask&bit == 0 }

	if free(setDirectory) && b.Root != "" {
		c.Directory = b.Root
	}
	if free(setUser) && b.User != nil {
		c.OCIUser = b.User
	}
	if free(setConsole) && b.Pipe {
		c.Console = ConsolePipe
	}
	if free(setCustomMounts) && len(b.Masked) > 0 {
		c.MaskedPaths = b.Masked
	}
	if ns := b.Namespaces; ns != nil {
		if free(setNetwork) && ns.NetworkPath != "" {
			c.Network.NamespacePath = ns.NetworkPath // as --network-namespace-path=
		}
		// Namespaces the bundle leaves out are the host's, as in nspawn.
		c.ShareIPC, c.SharePID, c.ShareUTS = !ns.IPC, !ns.PID, !ns.UTS
		c.NoCgroupNS = !ns.Cgroup
		if c.storageSet&storageSetUserNS == 0 {
			switch {
			case !ns.User:
				c.PrivateUsers = PrivateUsers{}
			case b.UserNS != nil:
				c.PrivateUsers = *b.UserNS
			default:
				c.PrivateUsers = PrivateUsers{Mode: UserNSPick, Range: UIDRangeSize}
			}
		}
	}
	if b.Seccomp != nil {
		if free(setSyscallFilter) {
			c.SeccompProfile = b.Seccomp
		} else {
			// As nspawn: --system-call-filter= keeps the default filter.
			s.warnings = append(s.warnings, "OCI bundle "+b.Dir+": linux.seccomp: ignored, as --system-call-filter= is given: the default filter applies, edited by it")
		}
	}
	if c.Slice == "" {
		c.Slice = b.Slice
	}
	c.ExtraDevices = b.Devices
	c.DeviceAllow = b.DeviceAllow
	// The bundle's first, so that --property= for the same name wins (nspawn
	// hands systemd the bundle's before the command line's).
	c.Properties = append(append([]string(nil), b.Properties...), c.Properties...)
	for _, w := range s.warnings {
		c.Warnings = append(c.Warnings, w)
		slog.Warn(w)
	}
	for _, w := range b.Warnings {
		w = "OCI bundle " + b.Dir + ": " + w
		c.Warnings = append(c.Warnings, w)
		slog.Warn(w)
	}
}
