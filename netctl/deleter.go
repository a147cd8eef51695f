package netctl

import (
	"log/slog"
	"sync"

	"github.com/netspawn/netspawn/netctl/links"
)

// deleter removes host links in the background. Deleting a veth waits for
// the kernel's RCU grace periods (tens of milliseconds), which a caller
// unregistering a machine need not wait for. A name being deleted is
// waited for before it is created again, and its ifindex counts as ours
// (its addresses are not "in use by the host") until it is gone.
type deleter struct {
	h       *links.Handle
	pfx     *links.Prefixes
	log     *slog.Logger
	jobs    chan delJob
	mu      sync.Mutex
	pending map[string]chan struct{}
	indexes map[int]bool
	done    chan struct{}
}

type delJob struct {
	name  string
	index int
	done  chan struct{}
}

func newDeleter(pfx *links.Prefixes, log *slog.Logger) (*deleter, error) {
	h, err := links.New()
	if err != nil {
		return nil, err
	}
	d := &deleter{h: h, pfx: pfx, log: log, jobs: make(chan delJob, 4096), pending: map[string]chan struct{}{},
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

func (d *deleter) run(j delJob) {
	d.mu.Lock()
	current := d.pending[j.name] == j.done
	d.mu.Unlock()
	if current { // else wait took it over
		if err := d.h.Delete(j.name); err != nil {
			d.log.Warn("delete link", "link", j.name, "err", err)
		}
	}
	if d.pfx != nil && j.index > 0 {
		d.pfx.Forget(j.index)
	}
	d.mu.Lock()
	delete(d.indexes, j.index)
	if d.pending[j.name] == j.done {
		delete(d.pending, j.name)
	}
	d.mu.Unlock()
	close(j.done)
}

// delete schedules the removal of a link.
func (d *deleter) delete(name string, index int) {
	j := delJob{name: name, index: index, done: make(chan struct{})}
	d.mu.Lock()
	d.pending[name] = j.done
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
// used again: it deletes the link now with h (the caller's handle) rather
// than waiting for its turn in the queue.
func (d *deleter) wait(h *links.Handle, name string) error {
	d.mu.Lock()
	_, ok := d.pending[name]
	delete(d.pending, name)
	d.mu.Unlock()
	if !ok {
		return nil
	}
	return h.Delete(name)
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
