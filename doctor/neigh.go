package doctor

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/netspawn/netspawn/internal/neightable"
)

// neighCheck judges one neighbour table against its limit (see package
// neightable for why it matters to containers). Pure.
func neighCheck(t neightable.Table, st neightable.Stat) Check {
	name := t.Name + " table"
	detail := fmt.Sprintf("%d of %d entries (%s.gc_thresh3)", st.Entries, st.Limit, t.Sysctl)
	switch {
	case st.Fulls > 0:
		return Check{name, "WARN", fmt.Sprintf("%s; found full %d times since boot: sends to new neighbours failed (ENOBUFS), e.g. a container's first DNS lookup", detail, st.Fulls), t.Fix(st.Limit)}
	case st.Limit > 0 && st.Entries*4 >= uint64(st.Limit)*3:
		return Check{name, "WARN", detail + ": three quarters full", t.Fix(st.Limit)}
	}
	return Check{name, "OK", detail, ""}
}

// checkNeigh checks the ARP and NDISC tables.
func checkNeigh(p Paths) []Check {
	var out []Check
	for _, t := range neightable.Tables {
		st, err := neightable.Read(p.Proc, t)
		if errors.Is(err, fs.ErrNotExist) {
			// Inside a container's network namespace: the kernel shows
			// the tables and their limit only in the host's.
			out = append(out, Check{t.Name + " table", "OK", "not visible from this network namespace (the limit is the host's: run netspawnctl doctor there)", ""})
			continue
		}
		if err != nil {
			out = append(out, Check{t.Name + " table", "WARN", "cannot read: " + err.Error(), ""})
			continue
		}
		out = append(out, neighCheck(t, st))
	}
	return out
}
