package nft

import (
	"bytes"
	"fmt"
	"os"
	"sort"

	"github.com/google/nftables"
)

// ChunkSize bounds the number of element operations per netlink
// transaction: google/nftables v0.3.0 fails on very large batches.
const ChunkSize = 64

// Firewall is our table in one network namespace (the caller's, or the one
// of NetNSFd). Calls are not concurrent-safe; the controller serialises.
type Firewall struct {
	opts    RuleOptions
	conn    *nftables.Conn
	table   *nftables.Table
	sets    map[string]*nftables.Set
	observe func(op string, err error)
}

// Options configure Open.
type Options struct {
	NetNSFd int // 0: the current network namespace
	Rules   RuleOptions
	// Observe, when set, is told of every netlink transaction that
	// changes the table (op "ensure", "add", "delete" or "remove") and
	// its error, for metrics.
	Observe func(op string, err error)
}

// observed reports a transaction to Options.Observe and returns err.
func (f *Firewall) observed(op string, err error) error {
	if f.observe != nil {
		f.observe(op, err)
	}
	return err
}

// Open connects to nf_tables. It changes nothing; call Ensure.
func Open(o Options) (*Firewall, error) {
	opts := []nftables.ConnOption{nftables.AsLasting()}
	if o.NetNSFd > 0 {
		opts = append(opts, nftables.WithNetNSFd(o.NetNSFd))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	t := Table()
	return &Firewall{opts: o.Rules, conn: c, table: t, sets: Sets(t), observe: o.Observe}, nil
}

// Close releases the netlink socket. The table stays.
func (f *Firewall) Close() error { return f.conn.CloseLasting() }

// Ensure creates the table with its sets, chains and rules when it is
// missing, and rebuilds it when its structure differs from this version's
// (elements are then restored by the caller's Reconcile). It reports
// whether the table was (re)created.
func (f *Firewall) Ensure() (bool, error) {
	ok, err := f.structureOK()
	if err != nil {
		return false, err
	}
	if ok {
		return false, nil
	}
	if exists, _ := f.tableExists(); exists {
		f.conn.DelTable(f.table)
		if err := f.observed("ensure", f.conn.Flush()); err != nil {
			return false, fmt.Errorf("delete outdated table inet %s: %w", TableName, err)
		}
	}
	f.conn.AddTable(f.table)
	names := make([]string, 0, len(f.sets))
	for n := range f.sets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := f.conn.AddSet(f.sets[n], nil); err != nil {
			return false, fmt.Errorf("add set %s: %w", n, err)
		}
	}
	chains := map[string]*nftables.Chain{}
	for _, c := range Chains(f.table) {
		chains[c.Name] = f.conn.AddChain(c)
	}
	for _, r := range rulesFor(f.opts) {
		f.conn.AddRule(&nftables.Rule{Table: f.table, Chain: chains[r.Chain], Exprs: r.Exprs, UserData: RuleTag(r.Tag)})
	}
	if err := f.observed("ensure", f.conn.Flush()); err != nil {
		return false, fmt.Errorf("create table inet %s: %w", TableName, err)
	}
	return true, nil
}

func (f *Firewall) tableExists() (bool, error) {
	ts, err := f.conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("list nftables tables: %w", err)
	}
	for _, t := range ts {
		if t.Name == TableName {
			return true, nil
		}
	}
	return false, nil
}

// structureOK checks that every set and chain exists and each chain holds
// exactly our tagged rules in order.
func (f *Firewall) structureOK() (bool, error) {
	if ok, err := f.tableExists(); !ok || err != nil {
		return false, err
	}
	sets, err := f.conn.GetSets(f.table)
	if err != nil {
		return false, fmt.Errorf("list sets: %w", err)
	}
	have := map[string]bool{}
	for _, s := range sets {
		have[s.Name] = true
	}
	for n := range f.sets {
		if !have[n] {
			return false, nil
		}
	}
	want := map[string][][]byte{}
	for _, r := range rulesFor(f.opts) {
		want[r.Chain] = append(want[r.Chain], RuleTag(r.Tag))
	}
	for _, c := range Chains(f.table) {
		rules, err := f.conn.GetRules(f.table, c)
		if err != nil {
			return false, nil // chain missing
		}
		if len(rules) != len(want[c.Name]) {
			return false, nil
		}
		for i, r := range rules {
			if !bytes.Equal(r.UserData, want[c.Name][i]) {
				return false, nil
			}
		}
	}
	return true, nil
}

// Add adds e in as few transactions as possible (one for a machine).
func (f *Firewall) Add(e Elements) error {
	els, err := e.toKernel()
	if err != nil {
		return err
	}
	return f.apply(els, true)
}

// Delete removes e. It is idempotent: elements already gone are skipped.
func (f *Firewall) Delete(e Elements) error {
	els, err := e.toKernel()
	if err != nil {
		return err
	}
	if len(els) == 0 {
		return nil
	}
	if err := f.apply(els, false); err == nil {
		return nil
	}
	// Some element is already gone (the whole batch failed): delete what
	// the kernel still has.
	have, err := f.Dump()
	if err != nil {
		return err
	}
	hk, err := have.toKernel()
	if err != nil {
		return err
	}
	present := map[string]bool{}
	for _, el := range hk {
		present[el.id()] = true
	}
	var left []element
	for _, el := range els {
		if present[el.id()] {
			left = append(left, el)
		}
	}
	return f.apply(left, false)
}

func (f *Firewall) apply(els []element, add bool) error {
	op := "delete"
	if add {
		op = "add"
	}
	n := 0
	for _, el := range els {
		s := f.sets[el.set]
		se := []nftables.SetElement{{Key: el.key, Val: el.val}}
		var err error
		if add {
			err = f.conn.SetAddElements(s, se)
		} else {
			err = f.conn.SetDeleteElements(s, se)
		}
		if err != nil {
			return fmt.Errorf("set %s: %w", el.set, err)
		}
		n++
		if n%ChunkSize == 0 {
			if err := f.observed(op, f.conn.Flush()); err != nil {
				return fmt.Errorf("nftables transaction: %w", err)
			}
		}
	}
	if err := f.observed(op, f.conn.Flush()); err != nil {
		return fmt.Errorf("nftables transaction: %w", err)
	}
	return nil
}

// Dump reads every element of our sets and maps from the kernel.
func (f *Firewall) Dump() (Elements, error) {
	var e Elements
	for _, n := range []string{SetLinks, SetSub28, SetSub24, SetSub16, MapFwd4, SetSub64, MapFwd6, SetZonePairs} {
		els, err := f.conn.GetSetElements(f.sets[n])
		if err != nil {
			return e, fmt.Errorf("list elements of %s: %w", n, err)
		}
		e.addKernel(n, els)
	}
	return e.Sort(), nil
}

// Reconcile makes the kernel's elements exactly want: missing ones are
// added, foreign ones (owned by no live machine) deleted.
func (f *Firewall) Reconcile(want Elements) (added, deleted Elements, err error) {
	have, err := f.Dump()
	if err != nil {
		return added, deleted, err
	}
	added, deleted, err = Diff(want, have)
	if err != nil {
		return added, deleted, err
	}
	if err := f.Delete(deleted); err != nil {
		return added, deleted, err
	}
	if err := f.Add(added); err != nil {
		return added, deleted, err
	}
	return added, deleted, nil
}

// Remove deletes our table (used by tests and `netspawnd --cleanup`).
func (f *Firewall) Remove() error {
	if ok, err := f.tableExists(); !ok || err != nil {
		return err
	}
	f.conn.DelTable(f.table)
	if err := f.observed("remove", f.conn.Flush()); err != nil {
		return fmt.Errorf("delete table inet %s: %w", TableName, err)
	}
	return nil
}

// EnableIPv4Forwarding switches on net.ipv4.ip_forward in the current
// network namespace when it is off. It reports whether it changed it.
func EnableIPv4Forwarding() (bool, error) {
	const p = "/proc/sys/net/ipv4/ip_forward"
	b, err := os.ReadFile(p)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", p, err)
	}
	if len(b) > 0 && b[0] == '1' {
		return false, nil
	}
	if err := os.WriteFile(p, []byte("1\n"), 0o644); err != nil {
		return false, fmt.Errorf("enable IPv4 forwarding: %w", err)
	}
	return true, nil
}

// Watch reports when something else deletes our table or a chain, rule or
// set of it (nft flush ruleset, a firewall's reload): a value arrives on the
// returned channel, once for a burst of deletions (the receiver checks the
// table and restores it). stop ends the watch and closes the channel.
func (f *Firewall) Watch(netnsFd int) (events <-chan struct{}, stop func(), err error) {
	var opts []nftables.ConnOption
	if netnsFd > 0 {
		opts = append(opts, nftables.WithNetNSFd(netnsFd))
	}
	c, err := nftables.New(opts...) // not lasting: the monitor gets a socket of its own
	if err != nil {
		return nil, nil, fmt.Errorf("nftables: %w", err)
	}
	// All events, filtered here: v0.3.0 tests a monitor's flags as
	// (flags&1)<<type, so a narrower monitor (deletions only) sees nothing.
	mon := nftables.NewMonitor(nftables.WithMonitorEventBuffer(64))
	raw, err := c.AddMonitor(mon)
	if err != nil {
		return nil, nil, fmt.Errorf("watching nftables: %w", err)
	}
	out := make(chan struct{}, 1)
	go func() {
		defer close(out)
		for ev := range raw {
			deleted := ev.Type == nftables.MonitorEventTypeDelTable || ev.Type == nftables.MonitorEventTypeDelChain ||
				ev.Type == nftables.MonitorEventTypeDelRule || ev.Type == nftables.MonitorEventTypeDelSet
			if ev.Type == nftables.MonitorEventTypeOOB || deleted && ours(ev.Data, f.table.Name) {
				select {
				case out <- struct{}{}:
				default: // one pending report covers this one
				}
			}
		}
	}()
	return out, func() { _ = mon.Close() }, nil
}

// ours reports whether a monitor event's object belongs to table name.
func ours(data any, name string) bool {
	switch d := data.(type) {
	case *nftables.Table:
		return d.Name == name
	case *nftables.Chain:
		return d.Table != nil && d.Table.Name == name
	case *nftables.Rule:
		return d.Table != nil && d.Table.Name == name
	case *nftables.Set:
		return d.Table != nil && d.Table.Name == name
	}
	return false
}
