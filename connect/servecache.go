package connect

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// serveTTL is how long a request to content may reuse what another read:
// the content's row and the viewer's group names. Writes on this server
// invalidate at once; a write on another server sharing the database is
// seen within serveTTL.
const serveTTL = time.Second

// serveCache keeps the rows every request to content reads, briefly: under
// load those lookups were a large share of the server's CPU per request,
// and the processes behind the proxy compete for the same cores.
type serveCache struct {
	gen     atomic.Int64 // bumped by every local write to what is cached
	mu      sync.Mutex
	content map[string]cachedValue[Content]
	groups  map[string]cachedValue[[]string]
}

type cachedValue[T any] struct {
	v   T
	gen int64
	at  time.Time
}

// maxServeCache bounds each map; past it the map starts over.
const maxServeCache = 10000

// invalidate drops everything cached; the store calls it on writes to
// content rows and group memberships.
func (c *serveCache) invalidate() { c.gen.Add(1) }

func cacheGet[T any](c *serveCache, m map[string]cachedValue[T], key string, now time.Time) (T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := m[key]
	if !ok || e.gen != c.gen.Load() || now.Sub(e.at) >= serveTTL {
		var zero T
		return zero, false
	}
	return e.v, true
}

func cachePut[T any](c *serveCache, m *map[string]cachedValue[T], key string, v T, gen int64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if *m == nil || len(*m) >= maxServeCache {
		*m = map[string]cachedValue[T]{}
	}
	(*m)[key] = cachedValue[T]{v: v, gen: gen, at: now}
}

// contentForServing is content(guid) for the serving path.
func (s *store) contentForServing(ctx context.Context, guid string) (Content, error) {
	now := time.Now()
	if ct, ok := cacheGet(&s.serving, s.serving.content, guid, now); ok {
		return ct, nil
	}
	gen := s.serving.gen.Load() // before the read: a write during it makes the entry stale
	ct, err := s.content(ctx, guid)
	if err != nil {
		return ct, err
	}
	cachePut(&s.serving, &s.serving.content, guid, ct, gen, now)
	return ct, nil
}

// groupNamesForServing is groupNamesOf(userID) for the serving path.
func (s *store) groupNamesForServing(ctx context.Context, userID string) ([]string, error) {
	now := time.Now()
	if g, ok := cacheGet(&s.serving, s.serving.groups, userID, now); ok {
		return g, nil
	}
	gen := s.serving.gen.Load()
	g, err := s.groupNamesOf(ctx, userID)
	if err != nil {
		return nil, err
	}
	cachePut(&s.serving, &s.serving.groups, userID, g, gen, now)
	return g, nil
}
