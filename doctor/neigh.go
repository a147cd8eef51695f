package doctor

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// The kernel's neighbour tables (ARP for IPv4, NDISC for IPv6) hold at
// most gc_thresh3 entries, counted over every network namespace of the
// machine, not per namespace. Each container needs two or more (its
// gateway in its namespace, itself in the host's, its peers'). When a
// table is full and nothing can be collected, a send to an unresolved
// neighbour fails with ENOBUFS: glibc reports a lookup as a temporary
// failure ("bad address" from busybox's ping) in a container's first
// milliseconds, and the kernel logs "neighbor table overflow".

// neighStat is what /proc/net/stat/{arp,ndisc}_cache says: the table's
// entries now and how often it was found full since boot.
type neighStat struct {
	entries, fulls uint64
}

// parseNeighStat reads a /proc/net/stat/*_cache file: a header line, then
// one line per CPU of hexadecimal counters; "entries" is the table's
// (the same on every line), "table_fulls" is per CPU and summed. Pure.
func parseNeighStat(text string) (neighStat, error) {
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if len(lines) < 2 {
		return neighStat{}, fmt.Errorf("no counters")
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
		return neighStat{}, fmt.Errorf("no entries or table_fulls column in %q", lines[0])
	}
	var st neighStat
	for n, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != len(head) {
			return neighStat{}, fmt.Errorf("line %d: %d fields for %d columns", n+2, len(f), len(head))
		}
		e, err1 := strconv.ParseUint(f[ei], 16, 64)
		t, err2 := strconv.ParseUint(f[fi], 16, 64)
		if err1 != nil || err2 != nil {
			return neighStat{}, fmt.Errorf("line %d: not hexadecimal counters", n+2)
		}
		st.entries = e
		st.fulls += t
	}
	return st, nil
}

// neighCheck judges one table against its limit. Pure.
func neighCheck(name, sysctl string, limit int, st neighStat) Check {
	fix := fmt.Sprintf("sysctl -w %[1]s.gc_thresh3=%[2]d %[1]s.gc_thresh2=%[3]d (the limit counts the entries of every network namespace; a container needs two or more)",
		sysctl, max(4*limit, 8192), max(2*limit, 4096))
	detail := fmt.Sprintf("%d of %d entries (%s.gc_thresh3)", st.entries, limit, sysctl)
	switch {
	case st.fulls > 0:
		return Check{name, "WARN", fmt.Sprintf("%s; found full %d times since boot: sends to new neighbours failed (ENOBUFS), e.g. a container's first DNS lookup", detail, st.fulls), fix}
	case limit > 0 && st.entries*4 >= uint64(limit)*3:
		return Check{name, "WARN", detail + ": three quarters full", fix}
	}
	return Check{name, "OK", detail, ""}
}

// checkNeigh checks the ARP and NDISC tables.
func checkNeigh(p Paths) []Check {
	var out []Check
	for _, t := range []struct{ name, stat, sysctl, path string }{
		{"ARP table", "net/stat/arp_cache", "net.ipv4.neigh.default", "sys/net/ipv4/neigh/default/gc_thresh3"},
		{"NDISC table", "net/stat/ndisc_cache", "net.ipv6.neigh.default", "sys/net/ipv6/neigh/default/gc_thresh3"},
	} {
		v, err := readTrim(filepath.Join(p.Proc, t.path))
		limit, perr := strconv.Atoi(v)
		if err != nil || perr != nil {
			out = append(out, Check{t.name, "WARN", "cannot read " + t.sysctl + ".gc_thresh3", ""})
			continue
		}
		text, err := readTrim(filepath.Join(p.Proc, t.stat))
		if err != nil {
			out = append(out, Check{t.name, "WARN", "cannot read /proc/" + t.stat + ": " + err.Error(), ""})
			continue
		}
		st, err := parseNeighStat(text)
		if err != nil {
			out = append(out, Check{t.name, "WARN", "/proc/" + t.stat + ": " + err.Error(), ""})
			continue
		}
		out = append(out, neighCheck(t.name, t.sysctl, limit, st))
	}
	return out
}
