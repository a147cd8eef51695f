package journald

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// socketPath is journald's native socket; tests point it elsewhere.
var socketPath = "/run/systemd/journal/socket"

// UnderJournal reports whether stderr is connected to the journal:
// $JOURNAL_STREAM names the device and inode of the stream systemd
// connected, and stderr is that stream (not redirected since).
func UnderJournal() bool {
	var st unix.Stat_t
	if err := unix.Fstat(2, &st); err != nil {
		return false
	}
	return streamMatches(os.Getenv("JOURNAL_STREAM"), uint64(st.Dev), st.Ino)
}

// streamMatches reports whether $JOURNAL_STREAM ("DEV:INO", decimal)
// names the file with device dev and inode ino.
func streamMatches(env string, dev, ino uint64) bool {
	ds, is, ok := strings.Cut(env, ":")
	if !ok {
		return false
	}
	d, err1 := strconv.ParseUint(ds, 10, 64)
	i, err2 := strconv.ParseUint(is, 10, 64)
	return err1 == nil && err2 == nil && d == dev && i == ino
}

// Options configure a Handler.
type Options struct {
	// Identifier is SYSLOG_IDENTIFIER (the name journalctl -t selects).
	Identifier string
	// Level is the minimum level logged; slog.LevelInfo when nil.
	Level slog.Leveler
	// Fallback gets the records the journal could not take (a failed
	// send: journald gone, a record too large); nil drops them.
	Fallback slog.Handler
	// NoSource leaves out CODE_FILE, CODE_LINE and CODE_FUNC.
	NoSource bool
}

// Handler is a slog.Handler that sends records to the journal.
type Handler struct {
	s      *sender
	opts   Options
	pre    []byte // fields of WithAttrs, encoded
	prefix string // groups of WithGroup, each followed by '_'
	fb     slog.Handler
}

// sender is the socket, shared by a handler and its derivations.
type sender struct {
	fd   int
	addr unix.SockaddrUnix
}

// New opens a datagram socket towards the journal. It fails when the
// journal's socket is not there (the caller then logs as it would
// otherwise).
func New(opts Options) (*Handler, error) {
	if _, err := os.Stat(socketPath); err != nil {
		return nil, fmt.Errorf("journal socket: %w", err)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("journal socket: %w", err)
	}
	if opts.Level == nil {
		opts.Level = slog.LevelInfo
	}
	return &Handler{s: &sender{fd: fd, addr: unix.SockaddrUnix{Name: socketPath}}, opts: opts, fb: opts.Fallback}, nil
}

// Close closes the socket (of every handler derived from h).
func (h *Handler) Close() error { return unix.Close(h.s.fd) }

// Enabled implements slog.Handler.
func (h *Handler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.opts.Level.Level() }

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Encode is the datagram h sends for r.
func (h *Handler) Encode(dst []byte, r slog.Record) []byte {
	dst = AppendField(dst, "MESSAGE", r.Message)
	dst = AppendField(dst, "PRIORITY", strconv.Itoa(Priority(r.Level)))
	if h.opts.Identifier != "" {
		dst = AppendField(dst, "SYSLOG_IDENTIFIER", h.opts.Identifier)
	}
	if !h.opts.NoSource && r.PC != 0 {
		f, _ := runtime.CallersFrames([]uintptr{r.PC}).Next()
		if f.File != "" {
			dst = AppendField(dst, "CODE_FILE", f.File)
			dst = AppendField(dst, "CODE_LINE", strconv.Itoa(f.Line))
			dst = AppendField(dst, "CODE_FUNC", f.Function)
		}
	}
	dst = append(dst, h.pre...)
	r.Attrs(func(a slog.Attr) bool {
		dst = appendAttr(dst, h.prefix, a)
		return true
	})
	return dst
}

// Handle implements slog.Handler: one datagram per record; a record the
// journal refuses goes to the fallback handler.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	bp := bufPool.Get().(*[]byte)
	b := h.Encode((*bp)[:0], r)
	err := unix.Sendto(h.s.fd, b, 0, &h.s.addr)
	if cap(b) <= 64<<10 {
		*bp = b[:0]
		bufPool.Put(bp)
	}
	if err == nil {
		return nil
	}
	if h.fb == nil {
		return fmt.Errorf("journal: %w", err)
	}
	if errors.Is(err, unix.EMSGSIZE) || errors.Is(err, unix.ENOBUFS) {
		r = r.Clone()
		r.AddAttrs(slog.String("journal_error", err.Error()))
	}
	return h.fb.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	h2 := *h
	h2.pre = append([]byte(nil), h.pre...)
	for _, a := range as {
		h2.pre = appendAttr(h2.pre, h.prefix, a)
	}
	if h.fb != nil {
		h2.fb = h.fb.WithAttrs(as)
	}
	return &h2
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.prefix = h.prefix + name + "_"
	if h.fb != nil {
		h2.fb = h.fb.WithGroup(name)
	}
	return &h2
}
