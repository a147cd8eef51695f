package ra

import (
	"errors"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// addrWatch wakes the links waiting for an IPv6 address: it listens to the
// kernel's address notifications once for the whole server, so a link
// without carrier (its peer down) costs nothing while it waits, where
// polling cost a dump of every link and address of the host per link and
// tick.
type addrWatch struct {
	fd      int
	mu      sync.Mutex
	waiters map[int]map[chan struct{}]bool // by ifindex
	stop    chan struct{}
	done    chan struct{}
}

// newAddrWatch subscribes to IPv6 address changes in the caller's network
// namespace.
func newAddrWatch() (*addrWatch, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: unix.RTMGRP_IPV6_IFADDR}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// The loop checks for the end this often.
	tv := unix.NsecToTimeval(int64(250 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, err
	}
	w := &addrWatch{fd: fd, waiters: map[int]map[chan struct{}]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	go w.loop()
	return w, nil
}

// wait returns a channel that receives when index gets an IPv6 address
// event (or when events may have been lost); cancel stops it.
func (w *addrWatch) wait(index int) (ch chan struct{}, cancel func()) {
	ch = make(chan struct{}, 1)
	w.mu.Lock()
	if w.waiters[index] == nil {
		w.waiters[index] = map[chan struct{}]bool{}
	}
	w.waiters[index][ch] = true
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		delete(w.waiters[index], ch)
		if len(w.waiters[index]) == 0 {
			delete(w.waiters, index)
		}
		w.mu.Unlock()
	}
}

// wake signals index's waiters, or everyone's with all.
func (w *addrWatch) wake(index int, all bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, set := range w.waiters {
		if !all && i != index {
			continue
		}
		for ch := range set {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

func (w *addrWatch) loop() {
	defer close(w.done)
	buf := make([]byte, 1<<16)
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		n, _, err := unix.Recvfrom(w.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			// ENOBUFS: notifications were lost; everyone looks again.
			w.wake(0, true)
			if !errors.Is(err, unix.ENOBUFS) {
				time.Sleep(50 * time.Millisecond)
			}
			continue
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			continue
		}
		for _, m := range msgs {
			if m.Header.Type != unix.RTM_NEWADDR || len(m.Data) < unix.SizeofIfAddrmsg {
				continue
			}
			ifa := (*unix.IfAddrmsg)(unsafe.Pointer(&m.Data[0]))
			w.wake(int(ifa.Index), false)
		}
	}
}

func (w *addrWatch) close() {
	close(w.stop)
	<-w.done
	unix.Close(w.fd)
	w.wake(0, true)
}
