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
// created again: the link's hooks run and it is renamed out of the way
// (links.RenameAway), so a machine started again at once under the same
// name does not wait for the kernel's deletion of its old link. Its ifindex
// counts as ours (its addresses are not "in use by the host") until it is
// gone.
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
	before func()        // runs first (the link hooks' RemoveLink)
	freed  chan struct{} // closed once name may be used again
	done   chan struct{}
	once   sync.Once
}

func newDelJob(name string, index int, before func()) *delJob {
	return &delJob{name: name, index: index, before: before, freed: make(chan struct{}), done: make(chan struct{})}
}

func (j *delJob) markFreed() { j.once.Do(func() { close(j.freed) }) }

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

// free runs j's hooks and renames its link out of the way; it returns the
// name to delete the link by: the temporary one, or j.name where the
// kernel refused the rename (j's name is then freed by the deletion).
func (d *deleter) free(h *links.Handle, j *delJob) string {
	t0 := time.Now()
	if j.before != nil {
		j.before()
	}
	t1 := time.Now()
	name := j.name
	select {
	case <-j.freed:
		return name // already out of the way (the job of a temporary name)
	default:
	}
	if tmp, err := h.RenameAway(j.name); err == nil {
		name = tmp
		j.markFreed()
	} else {
		d.log.Debug("link not renamed before deletion", "link", j.name, "err", err)
	}
	d.log.Debug("freed link name", "link", j.name, "as", name, "hooks_ms", msSince(t0, t1), "rename_ms", msSince(t1, time.Now()))
	return name
}

// remove deletes the link now named name, once freed (j's bookkeeping).
func (d *deleter) remove(h *links.Handle, j *delJob, name string) error {
	t0 := time.Now()
	err := h.Delete(name)
	d.log.Debug("deleted link", "link", j.name, "as", name, "delete_ms", msSince(t0, time.Now()))
	j.markFreed()
	if d.pfx != nil && j.index > 0 {
		d.pfx.Forget(j.index)
	}
	d.mu.Lock()
	delete(d.indexes, j.index)
	d.mu.Unlock()
	return err
}

func (d *deleter) perform(h *links.Handle, j *delJob) error {
	return d.remove(h, j, d.free(h, j))
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
	d.enqueue(newDelJob(name, index, before))
}

func (d *deleter) enqueue(j *delJob) {
	d.mu.Lock()
	d.pending[j.name] = j
	if j.index > 0 {
		d.indexes[j.index] = true
	}
	d.mu.Unlock()
	select {
	case d.jobs <- j:
	default:
		d.run(j) // queue full: do it now
	}
}

// wait makes sure a pending deletion of name has freed the name before it
// is used again: it runs the link's hooks and renames it now with h (the
// caller's handle) rather than waiting for its turn in the queue, and
// leaves the deletion itself to the worker. Where the kernel refuses the
// rename, it deletes the link now.
func (d *deleter) wait(h *links.Handle, name string) error {
	d.mu.Lock()
	j, r := d.pending[name], d.running[name]
	d.mu.Unlock()
	if r != nil {
		<-r.freed // the worker is on it
	}
	if j == nil || !d.claim(j) {
		return nil
	}
	tmp := d.free(h, j)
	if tmp == j.name {
		return d.remove(h, j, tmp)
	}
	// The deletion as a job of the temporary name (j itself is closed by
	// the worker when it meets it in the queue: done by wait).
	t := newDelJob(tmp, j.index, nil)
	t.markFreed()
	d.enqueue(t)
	return nil
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
