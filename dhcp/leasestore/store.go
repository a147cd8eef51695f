// Package leasestore keeps DHCP leases crash-safe: every change is appended
// to a log file with one write(2) before the caller answers the client (so a
// kill -9 of the process loses nothing the kernel has), fsync is batched
// (group commit every few milliseconds), and the log is rewritten as a
// snapshot (write, fsync, rename) when it has grown well past the live set.
package leasestore

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/netspawn/netspawn/dhcp/lease"
)

// FileName is the log's name inside the store directory.
const FileName = "leases.log"

// Options tune a store; zero values pick defaults.
type Options struct {
	SyncInterval time.Duration // group-commit period (default 5ms); <0: fsync after every write
	CompactMin   int64         // never compact a log smaller than this (default 1 MiB)
}

// Store is the persistent lease set of all links.
type Store struct {
	dir  string
	opts Options

	mu        sync.Mutex
	f         *os.File
	size      int64
	live      map[string]*linkSet // by link name
	seed      maphash.Seed
	n         int
	dirty     bool
	buf       []byte
	err       error // sticky: the log can no longer be trusted
	Corrupt   int   // lines skipped at replay
	stats     Stats
	syncCh    chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// Open replays the log in dir (created if missing), rewrites it as a fresh
// snapshot and starts the group-commit loop.
func Open(dir string, opts Options) (*Store, error) {
	if opts.SyncInterval == 0 {
		opts.SyncInterval = 5 * time.Millisecond
	}
	if opts.CompactMin <= 0 {
		opts.CompactMin = 1 << 20
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("lease store: %w", err)
	}
	s := &Store{dir: dir, opts: opts, live: map[string]*linkSet{}, seed: maphash.MakeSeed(), syncCh: make(chan struct{}, 1), done: make(chan struct{})}
	if err := s.replay(); err != nil {
		return nil, err
	}
	if err := s.compactLocked(); err != nil {
		return nil, err
	}
	if opts.SyncInterval > 0 {
		go s.syncLoop()
	} else {
		close(s.done)
	}
	return s, nil
}

func (s *Store) path() string { return filepath.Join(s.dir, FileName) }

func (s *Store) replay() error {
	f, err := os.Open(s.path())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("lease store: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<16)
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			s.Corrupt++
			for err == bufio.ErrBufferFull { // skip an over-long line
				_, err = r.ReadSlice('\n')
			}
			continue
		}
		if err == io.EOF {
			if len(line) > 0 {
				s.Corrupt++ // torn last record: never acknowledged
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("lease store: reading %s: %w", s.path(), err)
		}
		if !s.applyLine(line[:len(line)-1]) {
			s.Corrupt++
		}
	}
}

func (s *Store) applyLine(line []byte) bool {
	if f := bytes.SplitN(line, []byte{' '}, 3); len(f) == 3 && string(f[0]) == "D" {
		s.del(string(f[1]), string(f[2]), 0, 0)
		return true
	}
	l, ok := parseRecord(line)
	if !ok {
		return false
	}
	s.buf = appendRecord(s.buf[:0], l) // canonical form; put copies it
	s.put(l, s.buf, 0, 0)
	return true
}

// parseRecord reads a "P" record (without its newline).
func parseRecord(line []byte) (lease.Lease, bool) {
	f := bytes.SplitN(line, []byte{' '}, 9) // the quoted host name comes last and may hold spaces
	var l lease.Lease
	if len(f) != 9 || string(f[0]) != "P" {
		return l, false
	}
	var err error
	l.Link = string(f[1])
	key := string(f[2])
	if l.IP, err = netip.ParseAddr(string(f[3])); err != nil {
		return l, false
	}
	if l.MAC, err = unhex(f[4]); err != nil {
		return l, false
	}
	if l.ClientID, err = unhex(f[5]); err != nil {
		return l, false
	}
	ns, err := strconv.ParseInt(string(f[6]), 10, 64)
	if err != nil {
		return l, false
	}
	l.Expiry = time.Unix(0, ns)
	if l.State, err = lease.ParseState(string(f[7])); err != nil {
		return l, false
	}
	if l.Hostname, err = strconv.Unquote(string(f[8])); err != nil {
		return l, false
	}
	if l.Key() != key {
		return l, false
	}
	return l, true
}

func unhex(b []byte) ([]byte, error) {
	if string(b) == "-" {
		return nil, nil
	}
	return hex.DecodeString(string(b))
}

// put makes rec, the record of l, the live one for l's key; entry is l's
// entry number in table numbering n (0: unknown).
func (s *Store) put(l lease.Lease, rec []byte, entry uint32, n uint64) {
	ls := s.live[l.Link]
	if ls == nil {
		ls = newLinkSet(l.Link)
		s.live[l.Link] = ls
	}
	if ls.put(s.seed, l.Key(), rec, entry, n) {
		s.n++
	}
}

func (s *Store) del(link, key string, entry uint32, n uint64) {
	if ls := s.live[link]; ls != nil && ls.del(s.seed, key, entry, n) {
		s.n--
		if ls.len() == 0 {
			delete(s.live, link)
		}
	}
}

func appendRecord(b []byte, l lease.Lease) []byte {
	b = append(b, "P "...)
	b = append(b, l.Link...)
	b = append(b, ' ')
	b = append(b, l.Key()...)
	b = append(b, ' ')
	b = l.IP.AppendTo(b)
	b = append(b, ' ')
	b = appendHex(b, l.MAC)
	b = append(b, ' ')
	b = appendHex(b, l.ClientID)
	b = append(b, ' ')
	b = strconv.AppendInt(b, l.Expiry.UnixNano(), 10)
	b = append(b, ' ')
	b = append(b, l.State.String()...)
	b = append(b, ' ')
	b = strconv.AppendQuoteToASCII(b, l.Hostname)
	return append(b, '\n')
}

func appendHex(b, v []byte) []byte {
	if len(v) == 0 {
		return append(b, '-')
	}
	return hex.AppendEncode(b, v)
}

func validLink(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if name[i] <= ' ' || name[i] >= 0x7f {
			return false
		}
	}
	return true
}

// Apply appends changes to the log with a single write(2) and updates the
// in-memory set. When it returns nil the changes are in the kernel and will
// survive the death of the process; fsync follows within SyncInterval.
// Changes of offered leases are not persisted.
func (s *Store) Apply(changes []lease.Change) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	b := s.buf[:0]
	for _, c := range changes {
		l := c.Lease
		if !validLink(l.Link) {
			continue
		}
		if c.Deleted {
			b = append(b, "D "...)
			b = append(b, l.Link...)
			b = append(b, ' ')
			b = append(b, l.Key()...)
			b = append(b, '\n')
			s.del(l.Link, l.Key(), c.Entry, c.Numbering)
			continue
		}
		if l.State == lease.Offered {
			continue
		}
		n := len(b)
		b = appendRecord(b, l)
		s.put(l, b[n:], c.Entry, c.Numbering)
	}
	s.buf = b
	if len(b) == 0 {
		return nil
	}
	t0 := time.Now()
	if _, err := s.f.Write(b); err != nil {
		s.err = fmt.Errorf("lease store: appending to %s: %w", s.path(), err)
		return s.err
	}
	s.stats.Writes++
	s.stats.WriteMax = max(s.stats.WriteMax, time.Since(t0))
	s.size += int64(len(b))
	if s.opts.SyncInterval < 0 {
		if err := s.f.Sync(); err != nil {
			s.err = fmt.Errorf("lease store: fsync %s: %w", s.path(), err)
			return s.err
		}
	} else if !s.dirty {
		s.dirty = true
		select {
		case s.syncCh <- struct{}{}:
		default:
		}
	}
	if s.size > s.opts.CompactMin && s.size > int64(s.n+1)*400 {
		t0 := time.Now()
		if err := s.compactLocked(); err != nil {
			return err
		}
		s.stats.Compactions++
		s.stats.CompactMax = max(s.stats.CompactMax, time.Since(t0))
	}
	return nil
}

// syncLoop is the group commit: after the first unsynced write it waits one
// interval, so that the writes of that window share one fdatasync.
func (s *Store) syncLoop() {
	defer close(s.done)
	for range s.syncCh {
		time.Sleep(s.opts.SyncInterval)
		s.mu.Lock()
		f := s.f
		dirty := s.dirty
		s.dirty = false
		s.mu.Unlock()
		if dirty && f != nil {
			t0 := time.Now()
			err := f.Sync()
			took := time.Since(t0)
			s.mu.Lock()
			s.stats.Syncs++
			s.stats.SyncMax = max(s.stats.SyncMax, took)
			if err != nil && !errors.Is(err, os.ErrClosed) && s.err == nil {
				s.err = fmt.Errorf("lease store: fsync %s: %w", s.path(), err)
			}
			s.mu.Unlock()
		}
	}
}

// compactLocked writes the live set to a new file, fsyncs it, renames it over
// the log and fsyncs the directory.
func (s *Store) compactLocked() error {
	tmp := s.path() + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("lease store: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<16)
	var size int64
	for _, ls := range s.live {
		ls.each(func(rec []byte) {
			size += int64(len(rec))
			w.Write(rec)
		})
	}
	err = w.Flush()
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = os.Rename(tmp, s.path())
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("lease store: compacting: %w", err)
	}
	if d, err := os.Open(s.dir); err == nil {
		d.Sync()
		d.Close()
	}
	if s.f != nil {
		s.f.Close()
	}
	f.Close()
	s.f, err = os.OpenFile(s.path(), os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.err = fmt.Errorf("lease store: reopening %s: %w", s.path(), err)
		return s.err
	}
	s.size = size
	s.dirty = false
	return nil
}

// Bind tells the store the entry numbers (lease.Change.Entry) that a
// link's new lease table, numbering n, gave the leases it restored from
// the store (entryOf maps a lease key to its entry, 0 for none). The
// table's changes then find their records by number rather than by a hash
// of their key (see linkSet). Without it they still do, once each record
// has changed once.
func (s *Store) Bind(link string, n uint64, entryOf func(key string) uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ls := s.live[link]; ls != nil {
		ls.bindAll(s.seed, n, entryOf)
	}
}

// Leases returns the persisted leases of a link.
func (s *Store) Leases(link string) []lease.Lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	ls := s.live[link]
	if ls == nil {
		return nil
	}
	out := make([]lease.Lease, 0, ls.len())
	ls.each(func(rec []byte) {
		if l, ok := parseRecord(rec[:len(rec)-1]); ok {
			out = append(out, l)
		}
	})
	return out
}

// Links lists the links that have persisted leases, sorted.
func (s *Store) Links() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.live))
	for l := range s.live {
		out = append(out, l)
	}
	sort.Strings(out)
	return out
}

// Stats are a store's counters since Open: appends to the log (one per
// Apply that wrote something) and the longest of them, group-commit fsyncs
// and the longest, compactions past the first and the longest.
type Stats struct {
	Writes, Syncs, Compactions    uint64
	WriteMax, SyncMax, CompactMax time.Duration
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Len is the number of persisted leases.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// Sync forces an fsync now.
func (s *Store) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.dirty = false
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("lease store: fsync %s: %w", s.path(), err)
	}
	return nil
}

// Close syncs and closes the log.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		if s.opts.SyncInterval > 0 {
			close(s.syncCh)
			<-s.done
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.f == nil {
			return
		}
		if e := s.f.Sync(); e != nil {
			err = fmt.Errorf("lease store: fsync %s: %w", s.path(), e)
		}
		s.f.Close()
		s.f = nil
		if s.err == nil {
			s.err = errors.New("lease store: closed")
		}
	})
	return err
}
