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
	byID    map[string]*entry // target ID → target
	next    int               // round-robin position
}

type entry struct {
	t         Target
	key       string
	setCookie [2]string    // the affinity cookie's Set-Cookie value, without and with Secure
	inflight  atomic.Int64 // shared with release funcs, which outlive Set
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
		byID:        map[string]*entry{},
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
	byID := make(map[string]*entry, len(targets))
	list := make([]*entry, 0, len(targets))
	for _, t := range targets {
		key := hash(t.ID)[:16]
		e, ok := b.byKey[key]
		if !ok || *e.t.URL != *t.URL {
			// Entries are never changed once made: requests read e.t
			// after the lock is released. A target whose URL changed
			// gets a new entry (its in-flight count starts over).
			e = &entry{key: key, t: t}
			for i, secure := range []bool{false, true} {
				e.setCookie[i] = b.cookieFor(key, secure).String()
			}
		}
		byKey[key] = e
		byID[t.ID] = e
		list = append(list, e)
	}
	b.targets, b.byKey, b.byID = list, byKey, byID
	return nil
}

// Pick implements Balancer.
func (b *StickyBalancer) Pick(r *http.Request) (Target, func(), error) {
	val, has := cookieValue(r.Header, b.cookie)
	e, _, err := b.pick(val, has)
	if err != nil {
		return Target{}, nil, err
	}
	var done atomic.Bool
	return e.t, func() {
		if done.CompareAndSwap(false, true) {
			e.inflight.Add(-1)
		}
	}, nil
}

// pick is Pick for the Proxy, which needs no closure: it decrements the
// entry's in-flight count itself. carried reports that r already holds the
// cookie naming the picked entry, so no Set-Cookie is needed.
func (b *StickyBalancer) pick(val string, has bool) (e *entry, carried bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(b.targets)
	if n == 0 {
		return nil, false, ErrNoTarget
	}
	if has {
		e = b.byKey[val]
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
	return e, has && val == e.key, nil
}

// AffinityCookie implements Sticky: a session cookie, scoped to the prefix,
// that names the target by a hash (target IDs and ports stay private).
func (b *StickyBalancer) AffinityCookie(r *http.Request, t Target) *http.Cookie {
	b.mu.Lock()
	e := b.byID[t.ID]
	b.mu.Unlock()
	var key string
	if e != nil {
		key = e.key // hashed once, in Set
	} else {
		key = hash(t.ID)[:16] // a target removed since it was picked
	}
	if v, ok := cookieValue(r.Header, b.cookie); ok && v == key {
		return nil
	}
	return b.cookieFor(key, r.TLS != nil)
}

func (b *StickyBalancer) cookieFor(key string, secure bool) *http.Cookie {
	return &http.Cookie{
		Name:     b.cookie,
		Value:    key,
		Path:     b.path,
		HttpOnly: true,
		Secure:   secure,
		SameSite: http.SameSiteLaxMode,
	}
}

// cookieValue is r.Cookie(name).Value without parsing (and allocating)
// every cookie of the request: the first cookie called name, its value
// unquoted. The value is not validated; callers compare it with values
// they made.
func cookieValue(h http.Header, name string) (string, bool) {
	for _, line := range h["Cookie"] {
		for len(line) > 0 {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimLeft(part, " \t")
			k, v, ok := strings.Cut(part, "=")
			if !ok || k != name {
				continue
			}
			v = strings.TrimRight(v, " \t")
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v, true
		}
	}
	return "", false
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
