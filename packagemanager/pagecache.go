package packagemanager

import (
	"container/list"
	"sync"
)

// pageCache keeps rendered index pages. A page is keyed by the transaction
// it was rendered at, and what a repository shows at a transaction never
// changes, so an entry never goes stale: it only ages out when the cache
// is full. This spares the database and the renderer on the hot path that
// every pip and uv resolution takes.
type pageCache struct {
	mu       sync.Mutex
	maxBytes int
	size     int
	order    *list.List // front: most recently used
	entries  map[string]*list.Element
}

type cachedPage struct {
	key  string
	body []byte
	etag string
}

func newPageCache(maxBytes int) *pageCache {
	return &pageCache{maxBytes: maxBytes, order: list.New(), entries: map[string]*list.Element{}}
}

func (c *pageCache) get(key string) (cachedPage, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return cachedPage{}, false
	}
	c.order.MoveToFront(el)
	return el.Value.(cachedPage), true
}

func (c *pageCache) put(p cachedPage) {
	if len(p.body) > c.maxBytes/8 {
		return // one huge page must not flush everything else
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[p.key]; ok {
		c.size -= len(el.Value.(cachedPage).body)
		c.order.Remove(el)
	}
	c.entries[p.key] = c.order.PushFront(p)
	c.size += len(p.body)
	for c.size > c.maxBytes {
		last := c.order.Back()
		old := last.Value.(cachedPage)
		c.order.Remove(last)
		delete(c.entries, old.key)
		c.size -= len(old.body)
	}
}
