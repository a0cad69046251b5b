package identity

import (
	"sync"
	"time"
)

// Login attempts allowed per key (a username, a client IP) in a window.
const (
	maxFailures   = 5
	failureWindow = 5 * time.Minute
	// maxLimiterKeys bounds memory. Reaching it needs that many failed
	// sign-ins (each costing a bcrypt comparison) within failureWindow,
	// far beyond what one server can process; if it ever happens the
	// limiter starts afresh rather than grow without bound.
	maxLimiterKeys = 100_000
)

// limiter counts failed sign-ins in memory. Each identity server limits on
// its own: with several behind a load balancer an attacker gets up to
// maxFailures per server, which still bounds guessing to a handful of
// passwords per minute per account.
type limiter struct {
	now func() time.Time

	mu    sync.Mutex
	fails map[string][]time.Time // failure times within the window, oldest first
}

func newLimiter(now func() time.Time) *limiter {
	return &limiter{now: now, fails: map[string][]time.Time{}}
}

// prune drops failures older than the window. Callers hold l.mu.
func (l *limiter) prune(key string, now time.Time) []time.Time {
	f := l.fails[key]
	i := 0
	for i < len(f) && !now.Before(f[i].Add(failureWindow)) {
		i++
	}
	f = f[i:]
	if len(f) == 0 {
		delete(l.fails, key)
		return nil
	}
	l.fails[key] = f
	return f
}

// blocked reports whether any key has used up its attempts, and how long
// until the oldest of its failures leaves the window.
func (l *limiter) blocked(keys ...string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	for _, k := range keys {
		f := l.prune(k, now)
		if len(f) >= maxFailures {
			wait = max(wait, f[len(f)-maxFailures].Add(failureWindow).Sub(now))
		}
	}
	return wait, wait > 0
}

// fail records a failed attempt against every key.
func (l *limiter) fail(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.fails) >= maxLimiterKeys {
		for k := range l.fails {
			l.prune(k, now)
		}
		if len(l.fails) >= maxLimiterKeys {
			l.fails = map[string][]time.Time{}
		}
	}
	for _, k := range keys {
		f := append(l.prune(k, now), now)
		if len(f) > maxFailures { // older ones no longer decide anything
			f = f[len(f)-maxFailures:]
		}
		l.fails[k] = f
	}
}

// reset forgets a key's failures (after a successful sign-in).
func (l *limiter) reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, key)
}
