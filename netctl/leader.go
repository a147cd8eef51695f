package netctl

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// Leader identifies a process across PID reuse: its PID and its start time
// (field 22 of /proc/PID/stat, in clock ticks since boot).
type Leader struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// parseStatStart extracts the start time from the content of /proc/PID/stat.
func parseStatStart(stat []byte) (uint64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	fields := bytes.Fields(stat[i+1:])
	// fields[0] is field 3 (state); start time is field 22.
	if len(fields) < 20 {
		return 0, errors.New("malformed stat: too few fields")
	}
	return strconv.ParseUint(string(fields[19]), 10, 64)
}

// ReadLeader returns the identity of a live process.
func ReadLeader(pid int) (Leader, error) {
	if pid <= 0 {
		return Leader{}, fmt.Errorf("invalid leader PID %d", pid)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Leader{}, fmt.Errorf("leader %d: %w", pid, err)
	}
	st, err := parseStatStart(b)
	if err != nil {
		return Leader{}, fmt.Errorf("leader %d: %w", pid, err)
	}
	return Leader{PID: pid, Start: st}, nil
}

// Open returns a pidfd for the leader, or an error when the process is gone
// or the PID now belongs to another process.
func (l Leader) Open() (int, error) {
	fd, err := unix.PidfdOpen(l.PID, unix.PIDFD_NONBLOCK)
	if err != nil {
		return -1, fmt.Errorf("pidfd of leader %d: %w", l.PID, err)
	}
	now, err := ReadLeader(l.PID)
	if err != nil || now.Start != l.Start {
		unix.Close(fd)
		return -1, fmt.Errorf("leader %d is gone", l.PID)
	}
	return fd, nil
}

// watcher reports when watched pidfds become readable (their process exited)
// with one epoll loop on its own goroutine.
//
// It never closes a pidfd: the machine record owns it (machine.pidfd) and
// closes it, under the controller's lock, when the machine goes. A report
// names the machine, not the descriptor: by the time it is handled the
// machine may have been unregistered and its descriptor closed, and the
// number reused (by the next machine's pidfd, or any file the controller
// opens).
//
// Each registration is tagged with a generation in the epoll data, so an
// event that was already on its way when its descriptor was removed (and
// its number reused for another registration) is recognised as stale.
type watcher struct {
	epfd   int
	wake   int // eventfd to stop the loop
	mu     sync.Mutex
	keys   map[int]watchEntry
	gen    uint32
	onExit func(m *machine)
	done   chan struct{}
}

type watchEntry struct {
	m   *machine
	gen uint32
}

func newWatcher(onExit func(m *machine)) (*watcher, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	ev, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(ep)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, ev, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(ev)}); err != nil {
		unix.Close(ep)
		unix.Close(ev)
		return nil, fmt.Errorf("epoll add: %w", err)
	}
	w := &watcher{epfd: ep, wake: ev, keys: map[int]watchEntry{}, onExit: onExit, done: make(chan struct{})}
	go w.loop()
	return w, nil
}

// add watches m's pidfd fd.
func (w *watcher) add(fd int, m *machine) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.gen++
	if w.gen == 0 { // 0 tags the eventfd
		w.gen++
	}
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd), Pad: int32(w.gen)}); err != nil {
		return fmt.Errorf("watch pidfd: %w", err)
	}
	w.keys[fd] = watchEntry{m: m, gen: w.gen}
	return nil
}

// remove stops watching fd (the caller closes it afterwards). A report
// already under way for it may still arrive: onExit checks the machine.
func (w *watcher) remove(fd int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.keys, fd)
	_ = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, fd, nil)
}

func (w *watcher) loop() {
	defer close(w.done)
	evs := make([]unix.EpollEvent, 64)
	for {
		n, err := unix.EpollWait(w.epfd, evs, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		for _, ev := range evs[:n] {
			fd := int(ev.Fd)
			if fd == w.wake {
				return
			}
			w.mu.Lock()
			e, ok := w.keys[fd]
			if ok && e.gen == uint32(ev.Pad) {
				// Under the lock: fd is still this registration's.
				delete(w.keys, fd)
				_ = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, fd, nil)
			} else {
				ok = false // removed, maybe reused since: stale
			}
			w.mu.Unlock()
			if ok {
				go w.onExit(e.m)
			}
		}
	}
}

func (w *watcher) close() {
	var one [8]byte
	one[0] = 1
	_, _ = unix.Write(w.wake, one[:])
	<-w.done
	unix.Close(w.epfd)
	unix.Close(w.wake)
}
