package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/netspawn/netspawn/internal/atomicfile"

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
	return atomicfile.WriteFile(p, append(b, '\n'), 0o644)
}
