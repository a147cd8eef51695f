package spawn

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/netspawn/netspawn/spawn/config"

	"golang.org/x/sys/unix"
)

// Limits are the resource settings netspawn applies to a machine's cgroup,
// from systemd-style properties (--property=, netspawnctl set-property).
// A nil field is not set; math.MaxUint64 means "infinity".
type Limits struct {
	MemoryMax  *uint64 // bytes
	MemoryHigh *uint64 // bytes
	CPUQuota   *uint64 // percent of one CPU (200 = two CPUs)
	TasksMax   *uint64
	CPUWeight  *uint64 // 1..10000, default 100
}

// Unlimited is the value of an "infinity" limit.
const Unlimited = math.MaxUint64

// SupportedProperties lists the property names ParseProperties knows.
var SupportedProperties = []string{"CPUQuota", "CPUWeight", "MemoryHigh", "MemoryMax", "TasksMax"}

// ParseProperties parses NAME=VALUE assignments as systemctl set-property
// takes them. Later assignments win.
func ParseProperties(props []string) (Limits, error) {
	var l Limits
	for _, p := range props {
		name, value, ok := strings.Cut(p, "=")
		if !ok {
			return l, fmt.Errorf("property %q: expected NAME=VALUE", p)
		}
		value = strings.TrimSpace(value)
		var err error
		switch name {
		case "MemoryMax", "MemoryLimit":
			l.MemoryMax, err = parseBytesLimit(value)
		case "MemoryHigh":
			l.MemoryHigh, err = parseBytesLimit(value)
		case "CPUQuota":
			l.CPUQuota, err = parsePercentQuota(value)
		case "TasksMax":
			l.TasksMax, err = parseTasks(value)
		case "CPUWeight":
			var n uint64
			n, err = strconv.ParseUint(value, 10, 64)
			if err == nil && (n < 1 || n > 10000) {
				err = errors.New("must be between 1 and 10000")
			}
			l.CPUWeight = &n
		default:
			return l, fmt.Errorf("property %s= is not supported (supported: %s)", name, strings.Join(SupportedProperties, ", "))
		}
		if err != nil {
			return l, fmt.Errorf("property %s=%s: %w", name, value, err)
		}
	}
	return l, nil
}

func ptr(v uint64) *uint64 { return &v }

// parseBytesLimit takes "infinity", a size with an optional K/M/G/T/P/E
// suffix (base 1024, as systemd), or a percentage of physical memory.
func parseBytesLimit(v string) (*uint64, error) {
	if v == "infinity" || v == "" {
		return ptr(Unlimited), nil
	}
	if pct, ok := strings.CutSuffix(v, "%"); ok {
		f, err := strconv.ParseFloat(pct, 64)
		if err != nil || f < 0 || f > 100 {
			return nil, errors.New("percentage must be between 0% and 100%")
		}
		var si unix.Sysinfo_t
		if err := unix.Sysinfo(&si); err != nil {
			return nil, fmt.Errorf("reading memory size: %w", err)
		}
		return ptr(uint64(float64(si.Totalram) * float64(si.Unit) * f / 100)), nil
	}
	mult := uint64(1)
	units := "KMGTPE"
	if n := len(v); n > 0 {
		if i := strings.IndexByte(units, v[n-1]); i >= 0 {
			for j := 0; j <= i; j++ {
				mult *= 1024
			}
			v = v[:n-1]
		}
	}
	n, err := strconv.ParseFloat(v, 64)
	if err != nil || n < 0 {
		return nil, errors.New("expected a size such as 512M, 2G, a percentage, or infinity")
	}
	return ptr(uint64(n * float64(mult))), nil
}

func parsePercentQuota(v string) (*uint64, error) {
	if v == "" || v == "infinity" {
		return ptr(Unlimited), nil
	}
	p, ok := strings.CutSuffix(v, "%")
	n, err := strconv.ParseUint(p, 10, 64)
	if !ok || err != nil || n == 0 {
		return nil, errors.New("expected a percentage such as 50% or 200%")
	}
	return &n, nil
}

func parseTasks(v string) (*uint64, error) {
	if v == "infinity" || v == "" {
		return ptr(Unlimited), nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 {
		return nil, errors.New("expected a positive number or infinity")
	}
	return &n, nil
}

const cpuPeriod = 100000 // µs, as systemd

// V2Files maps cgroup v2 interface files to the values the limits set.
func (l Limits) V2Files() map[string]string {
	m := map[string]string{}
	v2 := func(n uint64) string {
		if n == Unlimited {
			return "max"
		}
		return strconv.FormatUint(n, 10)
	}
	if l.MemoryMax != nil {
		m["memory.max"] = v2(*l.MemoryMax)
	}
	if l.MemoryHigh != nil {
		m["memory.high"] = v2(*l.MemoryHigh)
	}
	if l.CPUQuota != nil {
		if *l.CPUQuota == Unlimited {
			m["cpu.max"] = fmt.Sprintf("max %d", cpuPeriod)
		} else {
			m["cpu.max"] = fmt.Sprintf("%d %d", *l.CPUQuota*cpuPeriod/100, cpuPeriod)
		}
	}
	if l.TasksMax != nil {
		m["pids.max"] = v2(*l.TasksMax)
	}
	if l.CPUWeight != nil {
		m["cpu.weight"] = strconv.FormatUint(*l.CPUWeight, 10)
	}
	return m
}

// V1Files maps cgroup v1 controllers to their files and values. v1 has no
// memory.high: MemoryHigh becomes the soft limit, which the kernel enforces
// only under memory pressure.
func (l Limits) V1Files() map[string]map[string]string {
	m := map[string]map[string]string{}
	set := func(ctrl, file, val string) {
		if m[ctrl] == nil {
			m[ctrl] = map[string]string{}
		}
		m[ctrl][file] = val
	}
	v1 := func(n uint64) string {
		if n == Unlimited {
			return "-1"
		}
		return strconv.FormatUint(n, 10)
	}
	if l.MemoryMax != nil {
		set("memory", "memory.limit_in_bytes", v1(*l.MemoryMax))
	}
	if l.MemoryHigh != nil {
		set("memory", "memory.soft_limit_in_bytes", v1(*l.MemoryHigh))
	}
	if l.CPUQuota != nil {
		set("cpu", "cpu.cfs_period_us", strconv.Itoa(cpuPeriod))
		if *l.CPUQuota == Unlimited {
			set("cpu", "cpu.cfs_quota_us", "-1")
		} else {
			set("cpu", "cpu.cfs_quota_us", strconv.FormatUint(*l.CPUQuota*cpuPeriod/100, 10))
		}
	}
	if l.TasksMax != nil {
		if *l.TasksMax == Unlimited {
			set("pids", "pids.max", "max")
		} else {
			set("pids", "pids.max", strconv.FormatUint(*l.TasksMax, 10))
		}
	}
	if l.CPUWeight != nil {
		set("cpu", "cpu.shares", strconv.FormatUint(*l.CPUWeight*1024/100, 10))
	}
	return m
}

// v1Controllers are the cgroup v1 controllers netspawn gives each machine a
// cgroup in (where the host mounts them), so limits can be set at any time.
var v1Controllers = []string{"memory", "cpu", "pids"}

// parseV1Mounts reads /proc/self/mountinfo: controller -> mount point of
// every cgroup v1 hierarchy.
func parseV1Mounts(r io.Reader) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 || qf[0] != "cgroup" {
			continue
		}
		for _, opt := range strings.Split(qf[2], ",") {
			m[opt] = pf[4]
		}
	}
	return m
}

// parseProcCgroup reads /proc/PID/cgroup: controller -> path ("" key for v2).
func parseProcCgroup(r io.Reader) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[1] == "" {
			m[""] = f[2]
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			m[c] = f[2]
		}
	}
	return m
}

// v1MachineDirs returns, for each v1 controller the host mounts, the
// directory of the machine's cgroup: below the cgroup netspawn itself runs
// in, so the container stays within the limits its caller has.
func v1MachineDirs(machine string) map[string]string {
	own, mounts, err := v1Cgroups("self")
	if err != nil {
		return nil
	}
	dirs := map[string]string{}
	for _, ctrl := range v1Controllers {
		if mp, ok := mounts[ctrl]; ok {
			dirs[ctrl] = filepath.Join(mp, own[ctrl], MachineCgroupPath(machine))
		}
	}
	return dirs
}

// v1Cgroups reads the cgroups of process pid ("self" for this one) and the
// host's cgroup v1 mounts: controller -> path, controller -> mount point.
func v1Cgroups(pid string) (paths, mounts map[string]string, err error) {
	pc, err := os.Open("/proc/" + pid + "/cgroup")
	if err != nil {
		return nil, nil, err
	}
	paths = parseProcCgroup(pc)
	pc.Close()
	mi, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, nil, err
	}
	mounts = parseV1Mounts(mi)
	mi.Close()
	return paths, mounts, nil
}

// applyLimits writes the limits into a machine's cgroups (v2 directory, v1
// controller directories). Settings a host lacks the controller for are
// reported in the error, after the others were applied.
func applyLimits(l Limits, v2dir string, v1dirs map[string]string) error {
	var missing []string
	if v2dir != "" {
		files := l.V2Files()
		for _, f := range sortedKeys(files) {
			if err := writeCgroupFile(filepath.Join(v2dir, f), files[f]); err != nil {
				if errors.Is(err, os.ErrNotExist) {
					// The controller is not enabled in v2 here: maybe in v1.
					continue
				}
				return fmt.Errorf("setting %s=%s: %w", f, files[f], err)
			}
			delete(files, f)
		}
	}
	for ctrl, files := range l.V1Files() {
		dir, ok := v1dirs[ctrl]
		v2 := v2dir != "" && v2HasController(v2dir, ctrl)
		if !ok {
			if !v2 {
				missing = append(missing, ctrl)
			}
			continue
		}
		for _, f := range sortedKeys(files) {
			if err := writeCgroupFile(filepath.Join(dir, f), files[f]); err != nil {
				return fmt.Errorf("setting %s=%s in %s: %w", f, files[f], dir, err)
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("this host has no %s controller for the machine's cgroup: those limits are not applied", strings.Join(missing, ", "))
	}
	return nil
}

// writeCgroupFile writes an existing cgroup interface file (never creating
// one: cgroupfs answers EACCES to that, hiding a missing controller).
func writeCgroupFile(p, value string) error {
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func v2HasController(dir, ctrl string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	return err == nil && strings.Contains(" "+string(b)+" ", " "+strings.TrimSpace(ctrl)+" ")
}

func sortedKeys(m map[string]string) []string {
	k := make([]string, 0, len(m))
	for f := range m {
		k = append(k, f)
	}
	sort.Strings(k)
	return k
}

// PropertiesFile is where a machine's persistent properties are kept.
func PropertiesFile(stateDir, machine string) string {
	return filepath.Join(stateDir, "properties", machine+".json")
}

// StateDir is netspawn's persistent state directory.
func StateDir() string { return config.StateDir() }

// LoadProperties returns the persisted properties of a machine.
func LoadProperties(stateDir, machine string) ([]string, error) {
	b, err := os.ReadFile(PropertiesFile(stateDir, machine))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var props []string
	if err := json.Unmarshal(b, &props); err != nil {
		return nil, fmt.Errorf("%s: %w", PropertiesFile(stateDir, machine), err)
	}
	return props, nil
}

// SaveProperties merges props into the machine's persisted properties
// (later ones replace earlier ones of the same name), crash-safely.
func SaveProperties(stateDir, machine string, props []string) error {
	old, err := LoadProperties(stateDir, machine)
	if err != nil {
		return err
	}
	merged := map[string]string{}
	for _, p := range append(old, props...) {
		n, _, _ := strings.Cut(p, "=")
		merged[n] = p
	}
	out := make([]string, 0, len(merged))
	for _, n := range sortedKeys(merged) {
		out = append(out, merged[n])
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	p := PropertiesFile(stateDir, machine)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp := p + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	f.Close()
	return os.Rename(tmp, p)
}

// SetMachineLimits applies properties to a running machine's cgroups: its
// v2 machine cgroup and, on hybrid hosts, v1 cgroups of its own, made (and
// the machine's processes moved in) the first time a v1 limit is set.
func SetMachineLimits(machine string, leader int, props []string) error {
	l, err := ParseProperties(props)
	if err != nil {
		return err
	}
	v2dir := ""
	if root := cgroup2Mount(); root != "" {
		v2dir = filepath.Join(root, MachineCgroupPath(machine))
		if _, err := os.Stat(v2dir); err != nil {
			v2dir = ""
		}
	}
	v1 := map[string]string{}
	paths, mounts, err := v1Cgroups(strconv.Itoa(leader))
	if err != nil {
		return fmt.Errorf("machine %s: %w", machine, err)
	}
	scope := MachineCgroupPath(machine)
	for ctrl := range l.V1Files() {
		mp, ok := mounts[ctrl]
		if !ok || (v2dir != "" && v2HasController(v2dir, ctrl)) {
			continue
		}
		cur := paths[ctrl]
		if strings.HasSuffix(cur, "/"+scope) {
			v1[ctrl] = filepath.Join(mp, cur)
			continue
		}
		// Not in a v1 cgroup of its own yet: make one below the one it is in
		// (its netspawn's) and move every process of the machine there.
		dir := filepath.Join(mp, cur, scope)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("creating %s cgroup %s: %w", ctrl, dir, err)
		}
		for pass := 0; pass < 2; pass++ { // twice: catch what forked meanwhile
			for _, pid := range MachinePIDs(machine, leader) {
				_ = writeCgroupFile(filepath.Join(dir, "cgroup.procs"), strconv.Itoa(pid))
			}
		}
		v1[ctrl] = dir
	}
	return applyLimits(l, v2dir, v1)
}
