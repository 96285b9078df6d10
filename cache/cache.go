// Package cache is the provider's one bounded cache: LRU entries with an
// expiry, bounded by count and bytes, an eviction hook, and single-flight
// loads that outlive any one caller.
package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/sync/singleflight"
)

// ErrPanicked means a load panicked: a bug, recovered to fail one call.
var ErrPanicked = errors.New("panic recovered")

// Options bound a Cache and say how to weigh and retire its entries.
type Options[V any] struct {
	// MaxEntries bounds the number of entries; 0 or less keeps none.
	MaxEntries int
	// MaxBytes bounds the sum of Size over the entries; 0 means no bound.
	MaxBytes int64
	// Size is what one value weighs in bytes (nil: nothing).
	Size func(V) int64
	// OnEvict is told of every value the cache stops holding other than by
	// expiry or removal: entries the bounds pushed out, a value another Add
	// replaced, and a value Add did not keep (too big, or a cache that keeps
	// none). It runs after the cache's lock is
	// released, on the goroutine of the Add: it must not block for long.
	OnEvict func(key string, v V)
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Owner, if set, names who an entry counts for (a namespace): the
	// bounds then push out the least recently used entry of the owner
	// holding the most (entries, or bytes when over MaxBytes), so that one
	// owner adding many pushes out only its own.
	Owner func(V) string
}

// Cache is safe for concurrent use; an expired entry is dropped when next looked at.
type Cache[V any] struct {
	opts   Options[V]
	mu     sync.Mutex
	lru    *simplelru.LRU[string, entry[V]] // nil when the cache keeps nothing
	bytes  int64
	owners map[string]*held // with Options.Owner: what each owner holds
	group  singleflight.Group
}

type entry[V any] struct {
	value   V
	expires time.Time // zero: never
	size    int64
	owner   string
}

type held struct{ entries, bytes int64 }

// New returns an empty cache.
func New[V any](opts Options[V]) *Cache[V] {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Cache[V]{opts: opts, owners: map[string]*held{}}
	if opts.MaxEntries > 0 {
		c.lru, _ = simplelru.NewLRU[string, entry[V]](opts.MaxEntries+1, nil) // fails only for size <= 0; we evict first
	}
	return c
}

// Now is the cache's clock.
func (c *Cache[V]) Now() time.Time { return c.opts.Now() }

// Get returns the value of key and marks it recently used.
func (c *Cache[V]) Get(key string) (V, bool) { return c.get(key, true) }

// Peek returns the value of key without marking it used.
func (c *Cache[V]) Peek(key string) (V, bool) { return c.get(key, false) }

func (c *Cache[V]) get(key string, touch bool) (V, bool) {
	var zero V
	if c.lru == nil {
		return zero, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.lru.Peek(key)
	switch {
	case !ok:
		return zero, false
	case !e.expires.IsZero() && !c.opts.Now().Before(e.expires):
		c.remove(key, e)
		return zero, false
	case touch:
		c.lru.Get(key)
	}
	return e.value, true
}

// Add keeps v under key until expires (zero: never), evicting the least
// recently used beyond the bounds; a value over MaxBytes alone is not kept.
func (c *Cache[V]) Add(key string, v V, expires time.Time) {
	e := entry[V]{value: v, expires: expires, size: c.size(v), owner: c.owner(v)}
	var evicted []evictee[V]
	c.mu.Lock()
	if c.lru == nil || (c.opts.MaxBytes > 0 && e.size > c.opts.MaxBytes) {
		evicted = append(evicted, evictee[V]{key, v})
	} else {
		if old, ok := c.lru.Peek(key); ok {
			c.remove(key, old)
			evicted = append(evicted, evictee[V]{key, old.value})
		}
		for {
			overBytes := c.opts.MaxBytes > 0 && c.bytes+e.size > c.opts.MaxBytes
			if c.lru.Len() < c.opts.MaxEntries && !overBytes {
				break
			}
			k, old, ok := c.victim(overBytes)
			if !ok {
				break
			}
			c.remove(k, old)
			evicted = append(evicted, evictee[V]{k, old.value})
		}
		c.lru.Add(key, e)
		c.account(e, 1)
	}
	c.mu.Unlock()
	if c.opts.OnEvict != nil {
		for _, ev := range evicted {
			c.opts.OnEvict(ev.key, ev.value)
		}
	}
}

type evictee[V any] struct {
	key   string
	value V
}

// Replace sets key's value and expiry if it is there, recency unchanged.
func (c *Cache[V]) Replace(key string, v V, expires time.Time) bool {
	if c.lru == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.lru.Peek(key)
	if !ok {
		return false
	}
	e := entry[V]{value: v, expires: expires, size: c.size(v), owner: old.owner}
	c.account(old, -1)
	c.account(e, 1)
	c.lru.Add(key, e)
	return true
}

// Remove drops key and returns what it held.
func (c *Cache[V]) Remove(key string) (V, bool) {
	var zero V
	if c.lru == nil {
		return zero, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.lru.Peek(key)
	if !ok {
		return zero, false
	}
	c.remove(key, e)
	return e.value, true
}

// RemoveFunc drops every entry match selects and returns their values.
func (c *Cache[V]) RemoveFunc(match func(key string, v V) bool) []V {
	if c.lru == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []V
	for _, k := range c.lru.Keys() {
		if e, ok := c.lru.Peek(k); ok && match(k, e.value) {
			c.remove(k, e)
			out = append(out, e.value)
		}
	}
	return out
}

// Each calls f with every entry, oldest first, outside the lock.
func (c *Cache[V]) Each(f func(key string, v V, expires time.Time)) {
	if c.lru == nil {
		return
	}
	c.mu.Lock()
	type kv struct {
		key string
		e   entry[V]
	}
	all := make([]kv, 0, c.lru.Len())
	for _, k := range c.lru.Keys() {
		if e, ok := c.lru.Peek(k); ok {
			all = append(all, kv{k, e})
		}
	}
	c.mu.Unlock()
	for _, x := range all {
		f(x.key, x.e.value, x.e.expires)
	}
}

// Len is the number of entries, expired ones included until looked at.
func (c *Cache[V]) Len() int {
	if c.lru == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// Bytes is the sum of Size over the entries.
func (c *Cache[V]) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

// Do runs load once for concurrent callers of one flight key, with its own
// context (no cancellation, timeout): a caller that gives up fails alone.
func (c *Cache[V]) Do(ctx context.Context, flight string, timeout time.Duration, load func(ctx context.Context) (any, error)) (any, error) {
	ch := c.group.DoChan(flight, func() (v any, err error) {
		opCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		defer func() {
			if r := recover(); r != nil {
				v, err = nil, fmt.Errorf("%w (%T) in a shared load", ErrPanicked, r)
			}
		}()
		return load(opCtx)
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-ch:
		return r.Val, r.Err
	}
}

func (c *Cache[V]) remove(key string, e entry[V]) {
	c.lru.Remove(key)
	c.account(e, -1)
}

// account adds (sign 1) or takes away (-1) e's weight.
func (c *Cache[V]) account(e entry[V], sign int64) {
	c.bytes += sign * e.size
	if c.opts.Owner == nil {
		return
	}
	h := c.owners[e.owner]
	if h == nil {
		h = &held{}
		c.owners[e.owner] = h
	}
	h.entries += sign
	h.bytes += sign * e.size
	if h.entries <= 0 {
		delete(c.owners, e.owner)
	}
}

// victim is the entry the bounds push out: the least recently used of the
// owner holding the most (bytes when byBytes), or of all without owners.
func (c *Cache[V]) victim(byBytes bool) (string, entry[V], bool) {
	k, oldest, ok := c.lru.GetOldest()
	if !ok || c.opts.Owner == nil {
		return k, oldest, ok
	}
	weight := func(h *held) int64 {
		if byBytes {
			return h.bytes
		}
		return h.entries
	}
	most := oldest.owner
	for owner, h := range c.owners {
		if weight(h) > weight(c.owners[most]) {
			most = owner
		}
	}
	if most == oldest.owner {
		return k, oldest, true
	}
	for _, k := range c.lru.Keys() { // oldest first
		if e, _ := c.lru.Peek(k); e.owner == most {
			return k, e, true
		}
	}
	return k, oldest, true
}

func (c *Cache[V]) owner(v V) string {
	if c.opts.Owner == nil {
		return ""
	}
	return c.opts.Owner(v)
}

func (c *Cache[V]) size(v V) int64 {
	if c.opts.Size == nil {
		return 0
	}
	return c.opts.Size(v)
}
