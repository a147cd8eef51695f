package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/netspawn/netspawn/internal/neightable"
)

// watchNeighTables warns when one of the kernel's neighbour tables was
// found full: every network namespace's entries count against one limit,
// and containers' sends then fail (see package neightable). It reads
// /proc every 10 s and warns at most once a minute per table.
func watchNeighTables(ctx context.Context, log *slog.Logger) error {
	w := neightable.Watch{Quiet: time.Minute}
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		for _, t := range neightable.Tables {
			st, err := neightable.Read("/proc", t)
			if err != nil {
				continue // no IPv6, or no procfs: nothing to watch
			}
			if n := w.Note(t, st, time.Now()); n > 0 {
				log.Warn("the kernel's neighbour table is full: sends from containers to new neighbours fail (a first DNS lookup fails at once); its limit counts the entries of every network namespace",
					"table", t.Name, "entries", st.Entries, "limit", st.Limit, "found_full", n, "fix", t.Fix(st.Limit))
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
