package db

import (
	"context"
	"sync"
)

// VersionCache keeps values read from a database while its DataVersion
// stays the same: on SQLite a row read for every request (an API key, a
// session, its user) costs a pragma instead of a query, and any commit by
// anyone — this process or another, such as the atrium CLI — makes the
// next Get read again. On PostgreSQL, which has no such signal, Get
// always loads. Errors (a row not found) are not kept, so unknown keys
// cannot grow it; past maxCached entries it starts over. The zero value is
// ready to use.
type VersionCache[V any] struct {
	mu      sync.Mutex
	version int64
	m       map[string]V
}

const maxCached = 10000

// Get returns key's value, from the cache when d is unchanged since it was
// loaded, otherwise from load.
func (c *VersionCache[V]) Get(ctx context.Context, d *DB, key string, load func() (V, error)) (V, error) {
	version, ok, err := d.DataVersion(ctx)
	if err != nil || !ok {
		return load()
	}
	c.mu.Lock()
	if c.version != version {
		c.version, c.m = version, nil
	} else if v, hit := c.m[key]; hit {
		c.mu.Unlock()
		return v, nil
	}
	c.mu.Unlock()
	// version was read before the load: a change committed meanwhile moves
	// it, and this value is then not used.
	v, err := load()
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.version == version {
		if c.m == nil || len(c.m) >= maxCached {
			c.m = map[string]V{}
		}
		c.m[key] = v
	}
	return v, nil
}
