// Package neightable reads how full the kernel's neighbour tables (ARP for
// IPv4, NDISC for IPv6) are. A kernel keeps at most gc_thresh3 entries in
// each, counted over every network namespace of the machine, not per
// namespace; each container needs two or more (its gateway in its
// namespace, itself in the host's, its peers). When a table is full and
// nothing can be collected, a send to a neighbour not yet resolved fails
// with ENOBUFS (a container's first DNS lookup fails: glibc's EAI_AGAIN)
// and the kernel logs "neighbor table overflow".
package neightable

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Table names one neighbour table.
type Table struct {
	Name   string // "ARP" or "NDISC"
	Sysctl string // the sysctl prefix of its limits
	stat   string // under /proc
	limit  string // under /proc
}

// Tables are the ARP and NDISC tables.
var Tables = []Table{
	{"ARP", "net.ipv4.neigh.default", "net/stat/arp_cache", "sys/net/ipv4/neigh/default/gc_thresh3"},
	{"NDISC", "net.ipv6.neigh.default", "net/stat/ndisc_cache", "sys/net/ipv6/neigh/default/gc_thresh3"},
}

// Stat is a table's state: its entries now, how often it was found full
// since boot, and its limit (gc_thresh3).
type Stat struct {
	Entries, Fulls uint64
	Limit          int
}

// Fix is the command that raises t's limits.
func (t Table) Fix(limit int) string {
	return fmt.Sprintf("sysctl -w %[1]s.gc_thresh3=%[2]d %[1]s.gc_thresh2=%[3]d (the limit counts the entries of every network namespace; a container needs two or more)",
		t.Sysctl, max(4*limit, 8192), max(2*limit, 4096))
}

// Read reads t under the procfs mount proc.
func Read(proc string, t Table) (Stat, error) {
	v, err := os.ReadFile(filepath.Join(proc, t.limit))
	if err != nil {
		return Stat{}, fmt.Errorf("%s.gc_thresh3: %w", t.Sysctl, err)
	}
	limit, err := strconv.Atoi(strings.TrimSpace(string(v)))
	if err != nil {
		return Stat{}, fmt.Errorf("%s.gc_thresh3: %w", t.Sysctl, err)
	}
	text, err := os.ReadFile(filepath.Join(proc, t.stat))
	if err != nil {
		return Stat{}, err
	}
	st, err := Parse(string(text))
	if err != nil {
		return Stat{}, fmt.Errorf("/proc/%s: %w", t.stat, err)
	}
	st.Limit = limit
	return st, nil
}

// Parse reads a /proc/net/stat/*_cache file: a header line, then one line
// per CPU of hexadecimal counters; "entries" is the table's (the same on
// every line), "table_fulls" is per CPU and summed. Pure.
func Parse(text string) (Stat, error) {
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if len(lines) < 2 {
		return Stat{}, fmt.Errorf("no counters")
	}
	head := strings.Fields(lines[0])
	col := func(name string) int {
		for i, h := range head {
			if h == name {
				return i
			}
		}
		return -1
	}
	ei, fi := col("entries"), col("table_fulls")
	if ei < 0 || fi < 0 {
		return Stat{}, fmt.Errorf("no entries or table_fulls column in %q", lines[0])
	}
	var st Stat
	for n, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != len(head) {
			return Stat{}, fmt.Errorf("line %d: %d fields for %d columns", n+2, len(f), len(head))
		}
		e, err1 := strconv.ParseUint(f[ei], 16, 64)
		t, err2 := strconv.ParseUint(f[fi], 16, 64)
		if err1 != nil || err2 != nil {
			return Stat{}, fmt.Errorf("line %d: not hexadecimal counters", n+2)
		}
		st.Entries = e
		st.Fulls += t
	}
	return st, nil
}

// Watch tells a running daemon when a table overflows: Note takes each
// reading and says whether to warn now (the table was found full since
// the last reading, at most once per Quiet). Pure; not safe for
// concurrent use.
type Watch struct {
	Quiet  time.Duration
	last   map[string]uint64
	warned map[string]time.Time
}

// Note records st of t read at now; it returns how many times the table
// was found full since the last reading when a warning is due, else 0.
func (w *Watch) Note(t Table, st Stat, now time.Time) uint64 {
	if w.last == nil {
		w.last, w.warned = map[string]uint64{}, map[string]time.Time{}
	}
	prev, seen := w.last[t.Name]
	w.last[t.Name] = st.Fulls
	if !seen || st.Fulls <= prev {
		return 0
	}
	if at, ok := w.warned[t.Name]; ok && now.Sub(at) < w.Quiet {
		w.last[t.Name] = prev // counted in the next warning
		return 0
	}
	w.warned[t.Name] = now
	return st.Fulls - prev
}
