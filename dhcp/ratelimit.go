package dhcp

import (
	"sync"
	"time"
)

// limiter is a token bucket for log lines: a flood of hostile packets costs
// at most rate lines a second, and the next line says how many were held back.
type limiter struct {
	mu         sync.Mutex
	rate, max  float64
	tokens     float64
	last       time.Time
	suppressed int
}

func newLimiter(rate, burst float64) *limiter {
	return &limiter{rate: rate, max: burst, tokens: burst}
}

// allow reports whether a line may be logged now, and how many were
// suppressed since the last one.
func (l *limiter) allow(now time.Time) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() {
		l.tokens += now.Sub(l.last).Seconds() * l.rate
		if l.tokens > l.max {
			l.tokens = l.max
		}
	}
	l.last = now
	if l.tokens < 1 {
		l.suppressed++
		return 0, false
	}
	l.tokens--
	n := l.suppressed
	l.suppressed = 0
	return n, true
}
