package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
)

// StickyConfig configures a StickyBalancer.
type StickyConfig struct {
	// Prefix is the proxy's prefix. The affinity cookie is named after it
	// and scoped to it, so two apps on one host keep separate affinities.
	Prefix string
	// LeastLoaded sends a client without affinity to the target with the
	// fewest requests in flight (open websockets count) instead of the next
	// one in turn.
	LeastLoaded bool
}

// StickyBalancer spreads clients over a changing set of targets and keeps
// each client on the target it first got, through a cookie: an interactive
// app (Shiny, Streamlit, a notebook) holds its state in one process, and its
// websocket and its follow-up requests must reach that process. A client
// whose target went away is moved to another one.
type StickyBalancer struct {
	cookie      string
	path        string
	leastLoaded bool

	mu      sync.Mutex
	targets []*entry
	byKey   map[string]*entry // cookie value → target
	next    int               // round-robin position
}

type entry struct {
	t        Target
	key      string
	inflight atomic.Int64 // shared with release funcs, which outlive Set
}

var (
	_ Balancer = (*StickyBalancer)(nil)
	_ Sticky   = (*StickyBalancer)(nil)
)

// NewSticky validates cfg and returns a balancer with no targets (Pick
// returns ErrNoTarget until Set is called).
func NewSticky(cfg StickyConfig) (*StickyBalancer, error) {
	if !strings.HasPrefix(cfg.Prefix, "/") {
		return nil, fmt.Errorf("proxy: sticky prefix %q must start with /", cfg.Prefix)
	}
	path := cfg.Prefix
	if !strings.HasSuffix(path, "/") {
		path += "/"
	}
	return &StickyBalancer{
		cookie:      "atrium_sticky_" + hash(path)[:12],
		path:        path,
		leastLoaded: cfg.LeastLoaded,
		byKey:       map[string]*entry{},
	}, nil
}

// CookieName is the affinity cookie's name, atrium_sticky_<hash of prefix>.
// The proxy never forwards it (nor any other atrium_ cookie) to the target.
func (b *StickyBalancer) CookieName() string { return b.cookie }

// Set replaces the targets. A target whose ID was already present keeps its
// in-flight count and its clients; clients of removed targets move on their
// next request. Requests in flight to a removed target are not interrupted.
func (b *StickyBalancer) Set(targets []Target) error {
	seen := map[string]bool{}
	for _, t := range targets {
		switch {
		case t.ID == "":
			return errors.New("proxy: target without ID")
		case t.URL == nil:
			return fmt.Errorf("proxy: target %q without URL", t.ID)
		case seen[t.ID]:
			return fmt.Errorf("proxy: duplicate target %q", t.ID)
		}
		seen[t.ID] = true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	byKey := make(map[string]*entry, len(targets))
	list := make([]*entry, 0, len(targets))
	for _, t := range targets {
		key := hash(t.ID)[:16]
		e, ok := b.byKey[key]
		if !ok {
			e = &entry{key: key}
		}
		e.t = t // the URL may have changed
		byKey[key] = e
		list = append(list, e)
	}
	b.targets, b.byKey = list, byKey
	return nil
}

// Pick implements Balancer.
func (b *StickyBalancer) Pick(r *http.Request) (Target, func(), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(b.targets)
	if n == 0 {
		return Target{}, nil, ErrNoTarget
	}
	var e *entry
	if c, err := r.Cookie(b.cookie); err == nil {
		e = b.byKey[c.Value]
	}
	if e == nil {
		start := b.next % n
		b.next = start + 1
		e = b.targets[start]
		if b.leastLoaded {
			// Scanning from the round-robin position spreads ties.
			for i := 1; i < n; i++ {
				c := b.targets[(start+i)%n]
				if c.inflight.Load() < e.inflight.Load() {
					e = c
				}
			}
		}
	}
	e.inflight.Add(1)
	return e.t, sync.OnceFunc(func() { e.inflight.Add(-1) }), nil
}

// AffinityCookie implements Sticky: a session cookie, scoped to the prefix,
// that names the target by a hash (target IDs and ports stay private).
func (b *StickyBalancer) AffinityCookie(r *http.Request, t Target) *http.Cookie {
	key := hash(t.ID)[:16]
	if c, err := r.Cookie(b.cookie); err == nil && c.Value == key {
		return nil
	}
	return &http.Cookie{
		Name:     b.cookie,
		Value:    key,
		Path:     b.path,
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteLaxMode,
	}
}

// InFlight returns the requests in flight per target ID, for a scheduler
// deciding whether to start another process.
func (b *StickyBalancer) InFlight() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := make(map[string]int, len(b.targets))
	for _, e := range b.targets {
		m[e.t.ID] = int(e.inflight.Load())
	}
	return m
}

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
