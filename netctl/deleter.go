package netctl

import (
	"log/slog"
	"sync"
	"time"

	"github.com/netspawn/netspawn/netctl/links"
)

// deleter removes host links in the background. Deleting a veth waits for
// the kernel's RCU grace periods (tens of milliseconds), and so does closing
// a DHCP server's sockets on it: a caller unregistering a machine need not
// wait for either. A name being deleted is dealt with at once before it is
// created again, and its ifindex counts as ours (its addresses are not "in
// use by the host") until it is gone.
type deleter struct {
	h       *links.Handle
	pfx     *links.Prefixes
	log     *slog.Logger
	jobs    chan *delJob
	mu      sync.Mutex
	pending map[string]*delJob
	running map[string]*delJob // claimed by the worker, not finished
	indexes map[int]bool
	done    chan struct{}
}

type delJob struct {
	name   string
	index  int
	before func() // runs first (the link hooks' RemoveLink)
	done   chan struct{}
}

func newDeleter(pfx *links.Prefixes, log *slog.Logger) (*deleter, error) {
	h, err := links.New()
	if err != nil {
		return nil, err
	}
	d := &deleter{h: h, pfx: pfx, log: log, jobs: make(chan *delJob, 4096), pending: map[string]*delJob{}, running: map[string]*delJob{},
		indexes: map[int]bool{}, done: make(chan struct{})}
	go d.loop()
	return d, nil
}

func (d *deleter) loop() {
	defer close(d.done)
	for j := range d.jobs {
		d.run(j)
	}
}

// claim removes j from the pending set; only its claimer performs it.
func (d *deleter) claim(j *delJob) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pending[j.name] != j {
		return false
	}
	delete(d.pending, j.name)
	return true
}

func (d *deleter) perform(h *links.Handle, j *delJob) error {
	t0 := time.Now()
	if j.before != nil {
		j.before()
	}
	t1 := time.Now()
	err := h.Delete(j.name)
	d.log.Debug("deleted link", "link", j.name, "hooks_ms", msSince(t0, t1), "delete_ms", msSince(t1, time.Now()))
	if d.pfx != nil && j.index > 0 {
		d.pfx.Forget(j.index)
	}
	d.mu.Lock()
	delete(d.indexes, j.index)
	d.mu.Unlock()
	return err
}

func (d *deleter) run(j *delJob) {
	d.mu.Lock()
	if d.pending[j.name] != j {
		d.mu.Unlock()
		close(j.done)
		return // done by wait
	}
	delete(d.pending, j.name)
	d.running[j.name] = j
	d.mu.Unlock()
	if err := d.perform(d.h, j); err != nil {
		d.log.Warn("delete link", "link", j.name, "err", err)
	}
	d.mu.Lock()
	if d.running[j.name] == j {
		delete(d.running, j.name)
	}
	d.mu.Unlock()
	close(j.done)
}

// delete schedules the removal of a link, after before (may be nil).
func (d *deleter) delete(name string, index int, before func()) {
	j := &delJob{name: name, index: index, before: before, done: make(chan struct{})}
	d.mu.Lock()
	d.pending[name] = j
	if index > 0 {
		d.indexes[index] = true
	}
	d.mu.Unlock()
	select {
	case d.jobs <- j:
	default:
		d.run(j) // queue full: do it now
	}
}

// wait makes sure a pending deletion of name is done before the name is
// used again: it performs it now with h (the caller's handle) rather than
// waiting for its turn in the queue.
func (d *deleter) wait(h *links.Handle, name string) error {
	d.mu.Lock()
	j, r := d.pending[name], d.running[name]
	d.mu.Unlock()
	if r != nil {
		<-r.done // the worker is on it
	}
	if j == nil || !d.claim(j) {
		return nil
	}
	return d.perform(h, j)
}

// scheduled reports whether name waits to be deleted or is being deleted.
func (d *deleter) scheduled(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pending[name] != nil || d.running[name] != nil
}

func (d *deleter) deleting(index int) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.indexes[index]
}

// close finishes the queued deletions.
func (d *deleter) close() {
	close(d.jobs)
	<-d.done
	d.h.Close()
}

// msSince is t1-t0 in milliseconds, rounded to hundredths (for logs).
func msSince(t0, t1 time.Time) float64 {
	return float64(t1.Sub(t0).Microseconds()/10) / 100
}
