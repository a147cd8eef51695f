package images

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// FormatBytes renders a size in binary units as machinectl does ("1.5M").
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	f := float64(n)
	for _, u := range []string{"K", "M", "G", "T", "P"} {
		f /= unit
		if f < unit || u == "P" {
			if f < 10 {
				return fmt.Sprintf("%.1f%s", f, u)
			}
			return fmt.Sprintf("%.0f%s", f, u)
		}
	}
	return ""
}

// FormatProgress renders one progress line of at most width columns:
// "label [#####.....]  45% 1.2G/2.6G 85M/s". With total <= 0 (unknown size)
// the bar and percentage are left out.
func FormatProgress(label string, done, total int64, rate float64, width int) string {
	tail := FormatBytes(done)
	if total > 0 {
		tail += "/" + FormatBytes(total)
	}
	if rate > 0 {
		tail += " " + FormatBytes(int64(rate)) + "/s"
	}
	if total <= 0 {
		return fit(label+" "+tail, width)
	}
	if done > total {
		done = total
	}
	pct := int(done * 100 / total)
	head := fmt.Sprintf("%s %3d%% ", label, pct)
	barw := width - len(head) - len(tail) - 3
	if barw < 5 {
		return fit(head+tail, width)
	}
	fill := int(int64(barw) * done / total)
	return head + "[" + strings.Repeat("#", fill) + strings.Repeat(".", barw-fill) + "] " + tail
}

func fit(s string, width int) string {
	if width > 0 && len(s) > width {
		return s[:width]
	}
	return s
}

// Progress reports bytes done on a terminal. A nil *Progress does nothing,
// which is what NewProgress returns when stderr is not a terminal.
type Progress struct {
	mu    sync.Mutex
	w     io.Writer
	width int
	label string
	total int64
	done  int64
	start time.Time
	last  time.Time
}

// NewProgress returns a progress bar on f when f is a terminal, else nil.
func NewProgress(f *os.File, label string, total int64) *Progress {
	if f == nil || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	w, _, err := term.GetSize(int(f.Fd()))
	if err != nil || w <= 0 {
		w = 80
	}
	now := time.Now()
	return &Progress{w: f, width: w - 1, label: label, total: total, start: now}
}

// Enabled reports whether anything is drawn (callers skip the work of
// measuring a total otherwise).
func (p *Progress) Enabled() bool { return p != nil }

// SetTotal sets the expected number of bytes.
func (p *Progress) SetTotal(n int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.total = n
	p.mu.Unlock()
}

// Add counts n more bytes and redraws at most ten times a second.
func (p *Progress) Add(n int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	now := time.Now()
	if now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last = now
	p.draw(now)
}

func (p *Progress) draw(now time.Time) {
	rate := 0.0
	if s := now.Sub(p.start).Seconds(); s > 0 {
		rate = float64(p.done) / s
	}
	fmt.Fprintf(p.w, "\r%s\x1b[K", FormatProgress(p.label, p.done, p.total, rate, p.width))
}

// Done draws the final state and ends the line.
func (p *Progress) Done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.draw(time.Now())
	fmt.Fprintln(p.w)
}

// Writer counts what passes through w.
func (p *Progress) Writer(w io.Writer) io.Writer {
	if p == nil {
		return w
	}
	return progressWriter{w, p}
}

// Reader counts what is read from r.
func (p *Progress) Reader(r io.Reader) io.Reader {
	if p == nil {
		return r
	}
	return progressReader{r, p}
}

type progressWriter struct {
	w io.Writer
	p *Progress
}

func (pw progressWriter) Write(b []byte) (int, error) {
	n, err := pw.w.Write(b)
	pw.p.Add(int64(n))
	return n, err
}

type progressReader struct {
	r io.Reader
	p *Progress
}

func (pr progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	pr.p.Add(int64(n))
	return n, err
}
