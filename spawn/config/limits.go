package config

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// This file holds the payload's execution properties: resource limits
// (--rlimit=, [Exec] Limit*=), --oom-score-adjust=, --cpu-affinity=,
// --personality=, --ambient-capability= and --background=, parsed as
// systemd-nspawn 252 parses them.

// NumRlimits is the number of resource limits nspawn knows (RLIMIT_NLIMITS).
const NumRlimits = 16

// RlimInfinity is RLIM_INFINITY.
const RlimInfinity = math.MaxUint64

// Rlimit is one soft:hard resource limit.
type Rlimit struct {
	Cur uint64 `json:"cur"`
	Max uint64 `json:"max"`
}

type rlimitKind int

const (
	rlU64  rlimitKind = iota // a count
	rlSize                   // bytes, with K, M, G... (base 1024)
	rlSec                    // seconds, or a time span (5min)
	rlUsec                   // microseconds, or a time span
	rlNice                   // 0..40 raw, or +N / -N nice levels
)

// RlimitNames are nspawn's names of the resource limits, indexed by
// RLIMIT_* number.
var RlimitNames = [NumRlimits]string{
	unix.RLIMIT_CPU: "CPU", unix.RLIMIT_FSIZE: "FSIZE", unix.RLIMIT_DATA: "DATA",
	unix.RLIMIT_STACK: "STACK", unix.RLIMIT_CORE: "CORE", unix.RLIMIT_RSS: "RSS",
	unix.RLIMIT_NPROC: "NPROC", unix.RLIMIT_NOFILE: "NOFILE", unix.RLIMIT_MEMLOCK: "MEMLOCK",
	unix.RLIMIT_AS: "AS", unix.RLIMIT_LOCKS: "LOCKS", unix.RLIMIT_SIGPENDING: "SIGPENDING",
	unix.RLIMIT_MSGQUEUE: "MSGQUEUE", unix.RLIMIT_NICE: "NICE", unix.RLIMIT_RTPRIO: "RTPRIO",
	unix.RLIMIT_RTTIME: "RTTIME",
}

var rlimitKinds = [NumRlimits]rlimitKind{
	unix.RLIMIT_CPU: rlSec, unix.RLIMIT_FSIZE: rlSize, unix.RLIMIT_DATA: rlSize,
	unix.RLIMIT_STACK: rlSize, unix.RLIMIT_CORE: rlSize, unix.RLIMIT_RSS: rlSize,
	unix.RLIMIT_NPROC: rlU64, unix.RLIMIT_NOFILE: rlU64, unix.RLIMIT_MEMLOCK: rlSize,
	unix.RLIMIT_AS: rlSize, unix.RLIMIT_LOCKS: rlU64, unix.RLIMIT_SIGPENDING: rlU64,
	unix.RLIMIT_MSGQUEUE: rlSize, unix.RLIMIT_NICE: rlNice, unix.RLIMIT_RTPRIO: rlU64,
	unix.RLIMIT_RTTIME: rlUsec,
}

// RlimitFromName finds a resource limit by nspawn's name: NOFILE,
// RLIMIT_NOFILE or LimitNOFILE (nspawn's rlimit_from_string_harder).
func RlimitFromName(name string) (int, bool) {
	for _, p := range []string{"RLIMIT_", "Limit"} {
		if s, ok := strings.CutPrefix(name, p); ok {
			name = s
			break
		}
	}
	for i, n := range RlimitNames {
		if n == name {
			return i, true
		}
	}
	return 0, false
}

// rlimitForms describes the accepted values, for error messages.
const rlimitForms = "SOFT[:HARD], each a number or \"infinity\" (sizes may end in K, M, G, T; CPU and RTTIME take time spans such as 5min; NICE takes 0..40, +N or -N)"

// ParseRlimitValue parses SOFT[:HARD] for resource (nspawn's rlimit_parse):
// one value sets both; the soft limit may not exceed the hard one.
func ParseRlimitValue(resource int, v string) (Rlimit, error) {
	if resource < 0 || resource >= NumRlimits {
		return Rlimit{}, fmt.Errorf("unknown resource limit %d", resource)
	}
	soft, hard, two := strings.Cut(v, ":")
	if strings.Contains(hard, ":") {
		return Rlimit{}, fmt.Errorf("invalid limit %q: use %s", v, rlimitForms)
	}
	sl, err := parseRlimitOne(resource, soft)
	if err != nil {
		return Rlimit{}, fmt.Errorf("invalid limit %q: %v; use %s", v, err, rlimitForms)
	}
	hl := sl
	if two {
		if hl, err = parseRlimitOne(resource, hard); err != nil {
			return Rlimit{}, fmt.Errorf("invalid limit %q: %v; use %s", v, err, rlimitForms)
		}
		if sl > hl {
			return Rlimit{}, fmt.Errorf("invalid limit %q: the soft limit is above the hard limit", v)
		}
	}
	return Rlimit{Cur: sl, Max: hl}, nil
}

var errRange = errors.New("value out of range")

func parseRlimitOne(resource int, v string) (uint64, error) {
	if v == "" {
		return 0, errors.New("empty value")
	}
	kind := rlimitKinds[resource]
	if v == "infinity" && kind != rlNice {
		return RlimInfinity, nil
	}
	switch kind {
	case rlU64:
		u, err := strconv.ParseUint(v, 10, 64)
		if err != nil || u == RlimInfinity {
			return 0, fmt.Errorf("%q is not a number", v)
		}
		return u, nil
	case rlSize:
		return parseSize1024(v)
	case rlSec:
		usec, err := parseTimespan(v, 1000000)
		if err != nil {
			return 0, err
		}
		if usec == RlimInfinity {
			return RlimInfinity, nil
		}
		return (usec + 999999) / 1000000, nil
	case rlUsec:
		return parseTimespan(v, 1)
	case rlNice:
		switch v[0] {
		case '+':
			n, err := strconv.ParseUint(v[1:], 10, 64)
			if err != nil || n >= 20 {
				return 0, fmt.Errorf("%q is not a nice level +0..+19", v)
			}
			return 20 - n, nil
		case '-':
			n, err := strconv.ParseUint(v[1:], 10, 64)
			if err != nil || n > 20 {
				return 0, fmt.Errorf("%q is not a nice level -20..-0", v)
			}
			return 20 + n, nil
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n > 40 {
			return 0, fmt.Errorf("%q is not a limit 0..40", v)
		}
		return n, nil
	}
	return 0, errRange
}

// parseSize1024 parses a size as systemd's parse_size(…, 1024): a number
// (fractions allowed) with an optional B, K, M, G, T, P or E suffix, parts
// added up ("1G 512M").
func parseSize1024(v string) (uint64, error) {
	const suffixes = "BKMGTPE"
	total := new(big.Rat)
	s := strings.TrimSpace(v)
	if s == "" || s[0] == '-' {
		return 0, fmt.Errorf("%q is not a size", v)
	}
	for s != "" {
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
			i++
		}
		num, ok := new(big.Rat).SetString(s[:i])
		if i == 0 || !ok {
			return 0, fmt.Errorf("%q is not a size", v)
		}
		s = strings.TrimLeft(s[i:], " ")
		mult := int64(1)
		if s != "" {
			if k := strings.IndexByte(suffixes, s[0]); k >= 0 {
				mult = 1 << (10 * k)
				s = strings.TrimLeft(s[1:], " ")
			}
		}
		total.Add(total, num.Mul(num, new(big.Rat).SetInt64(mult)))
	}
	n := new(big.Int).Quo(total.Num(), total.Denom())
	if !n.IsUint64() || n.Uint64() == RlimInfinity {
		return 0, fmt.Errorf("%q: %w", v, errRange)
	}
	return n.Uint64(), nil
}

// timeUnits are systemd's time span units, in microseconds.
var timeUnits = []struct {
	name string
	usec uint64
}{
	{"seconds", 1e6}, {"second", 1e6}, {"sec", 1e6}, {"s", 1e6},
	{"minutes", 60e6}, {"minute", 60e6}, {"min", 60e6}, {"months", 2629800e6}, {"month", 2629800e6},
	{"msec", 1e3}, {"ms", 1e3}, {"m", 60e6},
	{"hours", 3600e6}, {"hour", 3600e6}, {"hr", 3600e6}, {"h", 3600e6},
	{"days", 86400e6}, {"day", 86400e6}, {"d", 86400e6},
	{"weeks", 604800e6}, {"week", 604800e6}, {"w", 604800e6},
	{"years", 31557600e6}, {"year", 31557600e6}, {"y", 31557600e6},
	{"usec", 1}, {"us", 1}, {"µs", 1}, {"μs", 1},
}

// parseTimespan parses a systemd time span ("90", "5min 30s", "1.5h") into
// microseconds; a bare number is in units of def microseconds.
func parseTimespan(v string, def uint64) (uint64, error) {
	s := strings.TrimSpace(v)
	if s == "infinity" {
		return RlimInfinity, nil
	}
	if s == "" {
		return 0, fmt.Errorf("%q is not a time span", v)
	}
	total := new(big.Rat)
	for s != "" {
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
			i++
		}
		num, ok := new(big.Rat).SetString(s[:i])
		if i == 0 || !ok {
			return 0, fmt.Errorf("%q is not a time span (use e.g. 30, 5min, 1h 30min)", v)
		}
		s = strings.TrimLeft(s[i:], " ")
		mult := def
		for _, u := range timeUnits {
			if rest, ok := strings.CutPrefix(s, u.name); ok && (rest == "" || rest[0] == ' ' || rest[0] >= '0' && rest[0] <= '9') {
				mult, s = u.usec, strings.TrimLeft(rest, " ")
				break
			}
		}
		total.Add(total, num.Mul(num, new(big.Rat).SetInt(new(big.Int).SetUint64(mult))))
	}
	n := new(big.Int).Quo(total.Num(), total.Denom())
	if !n.IsUint64() {
		return 0, fmt.Errorf("%q: %w", v, errRange)
	}
	return n.Uint64(), nil
}

// ParseRlimitAssignment parses --rlimit=NAME=SOFT[:HARD].
func ParseRlimitAssignment(v string) (int, Rlimit, error) {
	name, val, ok := strings.Cut(v, "=")
	if !ok {
		return 0, Rlimit{}, fmt.Errorf("--rlimit= expects an assignment NAME=SOFT[:HARD], got %q", v)
	}
	r, ok := RlimitFromName(name)
	if !ok {
		return 0, Rlimit{}, fmt.Errorf("--rlimit=%s: unknown resource limit %q: use one of %s", v, name, strings.Join(RlimitNames[:], ", "))
	}
	l, err := ParseRlimitValue(r, val)
	if err != nil {
		return 0, Rlimit{}, fmt.Errorf("--rlimit=%s: %w", v, err)
	}
	return r, l, nil
}

// Kernel defaults nspawn gives a container for the limits not configured
// (nspawn's initialize_rlimits, "as per kernel 5.16"). NPROC and
// SIGPENDING come from the host's PID 1, NOFILE's hard limit from
// fs.nr_open (at most HighRlimitNOFILE); see EffectiveRlimits.
var kernelRlimits = [NumRlimits]Rlimit{
	unix.RLIMIT_AS:       {RlimInfinity, RlimInfinity},
	unix.RLIMIT_CORE:     {0, RlimInfinity},
	unix.RLIMIT_CPU:      {RlimInfinity, RlimInfinity},
	unix.RLIMIT_DATA:     {RlimInfinity, RlimInfinity},
	unix.RLIMIT_FSIZE:    {RlimInfinity, RlimInfinity},
	unix.RLIMIT_LOCKS:    {RlimInfinity, RlimInfinity},
	unix.RLIMIT_MEMLOCK:  {8 << 20, 8 << 20},
	unix.RLIMIT_MSGQUEUE: {819200, 819200},
	unix.RLIMIT_NICE:     {0, 0},
	unix.RLIMIT_NOFILE:   {1024, 4096},
	unix.RLIMIT_RSS:      {RlimInfinity, RlimInfinity},
	unix.RLIMIT_RTPRIO:   {0, 0},
	unix.RLIMIT_RTTIME:   {RlimInfinity, RlimInfinity},
	unix.RLIMIT_STACK:    {8 << 20, RlimInfinity},
}

// HighRlimitNOFILE is systemd's HIGH_RLIMIT_NOFILE.
const HighRlimitNOFILE = 512 * 1024

// EffectiveRlimits is every limit the payload gets: the configured ones,
// and nspawn's defaults for the rest. pid1 reads a limit of the host's PID
// 1 (for NPROC and SIGPENDING); nrOpen is fs.nr_open.
func (c *Config) EffectiveRlimits(pid1 func(resource int) (Rlimit, error), nrOpen uint64) ([NumRlimits]Rlimit, error) {
	var out [NumRlimits]Rlimit
	for r := 0; r < NumRlimits; r++ {
		switch {
		case c.Rlimits[r] != nil:
			out[r] = *c.Rlimits[r]
		case r == unix.RLIMIT_NPROC || r == unix.RLIMIT_SIGPENDING:
			l, err := pid1(r)
			if err != nil {
				return out, fmt.Errorf("reading resource limit RLIMIT_%s of PID 1: %w", RlimitNames[r], err)
			}
			out[r] = l
		case r == unix.RLIMIT_NOFILE:
			out[r] = Rlimit{Cur: kernelRlimits[r].Cur, Max: min(nrOpen, HighRlimitNOFILE)}
		default:
			out[r] = kernelRlimits[r]
		}
	}
	return out, nil
}

// ParseOOMScoreAdjust parses --oom-score-adjust= (-1000..1000).
func ParseOOMScoreAdjust(v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < -1000 || n > 1000 {
		return 0, fmt.Errorf("invalid OOM score adjustment %q: use an integer from -1000 to 1000", v)
	}
	return n, nil
}

// maxCPUs bounds CPU numbers in an affinity list (nspawn's cpu_set_add
// refuses CPUs past 8192*8).
const maxCPUs = 8192 * 8

// ParseCPUSet parses a CPU list as nspawn's parse_cpu_set: numbers and
// ranges (2-5), separated by commas or spaces. The result is sorted and
// without duplicates; an empty list is nil. A range whose ends are in the
// wrong order adds nothing (nspawn ignores it with a warning).
func ParseCPUSet(v string) ([]int, error) {
	set := map[int]bool{}
	for _, w := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		lo, hi, isRange := strings.Cut(w, "-")
		a, err := strconv.ParseUint(strings.TrimSpace(lo), 10, 31)
		b := a
		if err == nil && isRange {
			b, err = strconv.ParseUint(strings.TrimSpace(hi), 10, 31)
		}
		if err != nil {
			return nil, fmt.Errorf("invalid CPU %q in %q: use CPU numbers and ranges such as 0,2-3", w, v)
		}
		if b >= maxCPUs {
			return nil, fmt.Errorf("CPU %d in %q: %w (at most %d)", b, v, errRange, maxCPUs-1)
		}
		for cpu := a; cpu <= b; cpu++ {
			set[int(cpu)] = true
		}
	}
	if len(set) == 0 {
		return nil, nil
	}
	out := make([]int, 0, len(set))
	for cpu := range set {
		out = append(out, cpu)
	}
	sort.Ints(out)
	return out, nil
}

// personality(2) values (linux/personality.h).
const (
	perLinux   = 0x0000
	perLinux32 = 0x0008
)

// Personalities are the --personality= names for this build's
// architecture, mapped to personality(2)'s values: the native one
// (PER_LINUX) and, where there is one, the secondary (PER_LINUX32).
var Personalities = map[string]map[string]uint32{
	"amd64":   {"x86-64": perLinux, "x86": perLinux32},
	"386":     {"x86": perLinux},
	"arm64":   {"arm64": perLinux, "arm": perLinux32},
	"arm":     {"arm": perLinux},
	"ppc64le": {"ppc64-le": perLinux},
	"s390x":   {"s390x": perLinux, "s390": perLinux32},
	"riscv64": {"riscv64": perLinux},
}[runtime.GOARCH]

// ParsePersonality checks a --personality= name (nspawn's
// personality_from_string: the native architecture or its secondary one).
func ParsePersonality(v string) (string, error) {
	if _, ok := Personalities[v]; ok {
		return v, nil
	}
	var names []string
	for n := range Personalities {
		names = append(names, n)
	}
	sort.Strings(names)
	return "", fmt.Errorf("unknown or unsupported personality %q: use one of %s", v, strings.Join(names, ", "))
}

// nativePersonality is the --personality= name of this build's own
// architecture.
var nativePersonality = func() string {
	for n, v := range Personalities {
		if v == perLinux {
			return n
		}
	}
	return ""
}()

// PersonalityValue is personality(2)'s argument for c.Personality, and
// false when none was asked for.
func (c *Config) PersonalityValue() (uint32, bool) {
	p, ok := Personalities[c.Personality]
	return p, ok && c.Personality != ""
}

// ParseBackground checks a --background= color: an ANSI SGR background
// parameter string such as 41, 48;5;17 or 48;2;0;0;64.
func ParseBackground(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	if strings.Trim(v, "0123456789;:") != "" || strings.HasPrefix(v, ";") {
		return "", fmt.Errorf("invalid background color %q: use an ANSI SGR background parameter such as 41, 44, 48;5;17 or 48;2;0;0;64", v)
	}
	return v, nil
}

// BackgroundEscape is what netspawn writes on a terminal for --background=:
// the color, and erase-to-end-of-line so the whole line takes it.
func BackgroundEscape(color string) string { return "\x1b[" + color + "m\x1b[K" }

// BackgroundReset restores the terminal's colors when the container ends.
const BackgroundReset = "\x1b[0m\x1b[K"
