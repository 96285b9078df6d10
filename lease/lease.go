// Package lease keeps leased Vault responses (database credentials, PKI
// certificates, …) per pod and object, so that a rotation poll returns the
// same secret while its lease has life left instead of creating a new lease
// on every poll.
package lease

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/vaultcsi/vault-csi-provider/metrics"
)

// Info is what a Vault response says about its own lifetime.
type Info struct {
	LeaseID   string
	TTL       time.Duration
	Renewable bool
}

// Leased reports whether the response should be kept: it has a lease, or
// (PKI issue without a lease) a data.expiration in the future.
func (i Info) Leased() bool { return i.TTL > 0 }

// Parse reads the lease of a Vault response body. Responses without a lease
// id (KV reads, including KV v1's advisory lease_duration) are not leased.
func Parse(body []byte, now time.Time) Info {
	var r struct {
		LeaseID       string `json:"lease_id"`
		LeaseDuration int64  `json:"lease_duration"`
		Renewable     bool   `json:"renewable"`
		Data          struct {
			Expiration json.Number `json:"expiration"`
		} `json:"data"`
	}
	if json.Unmarshal(body, &r) != nil {
		return Info{}
	}
	if r.LeaseID != "" && r.LeaseDuration > 0 {
		return Info{LeaseID: r.LeaseID, TTL: time.Duration(r.LeaseDuration) * time.Second, Renewable: r.Renewable}
	}
	if exp, err := r.Data.Expiration.Int64(); err == nil && exp > now.Unix() {
		return Info{TTL: time.Unix(exp, 0).Sub(now)}
	}
	return Info{}
}

// RenewFunc extends a lease and returns the TTL Vault granted.
type RenewFunc func(ctx context.Context, leaseID string, increment time.Duration) (time.Duration, error)

// ReadFunc reads the secret afresh.
type ReadFunc func(ctx context.Context) ([]byte, error)

// Outcome says how Get answered, for logs and tests.
type Outcome string

// Outcomes of Get.
const (
	Reused  Outcome = "reused"
	Renewed Outcome = "renewed"
	Read    Outcome = "read"
)

// Cache keeps leased responses.
//
// Contract: safe for concurrent use. Get returns the kept response while its
// lease has more than MinRemaining of its TTL left; below that it renews a
// renewable lease and keeps the response if the renewal leaves it above the
// threshold again; otherwise it reads anew. Concurrent Gets for one key share
// one renewal or read. Unleased responses are never kept. At most size
// entries are kept (least recently used go first); ForgetPod drops a pod's.
type Cache struct {
	// MinRemaining is the fraction of a lease's TTL that must be left for
	// it to be reused without renewal (0 < MinRemaining < 1).
	MinRemaining float64
	// Metrics may be nil.
	Metrics *metrics.Metrics

	mu    sync.Mutex
	cache *lru.Cache[string, *entry]
	group singleflight.Group
	now   func() time.Time
}

type entry struct {
	pod     string
	renew   RenewFunc // from the latest Get, with that mount's token
	body    []byte
	info    Info // TTL is the lease's first TTL: the reference for MinRemaining
	expires time.Time
}

// NewCache returns a cache of at most size entries.
func NewCache(size int, minRemaining float64) *Cache {
	c, _ := lru.New[string, *entry](max(size, 1)) // fails only for size <= 0
	return &Cache{MinRemaining: minRemaining, cache: c, now: time.Now}
}

// Get returns the response for key (which must identify the pod, its Vault
// identity and the request), reusing, renewing or reading it.
func (c *Cache) Get(ctx context.Context, pod, key string, renew RenewFunc, read ReadFunc) ([]byte, Outcome, error) {
	if e, ok := c.fresh(key); ok {
		return e.body, Reused, nil
	}
	type result struct {
		body    []byte
		outcome Outcome
	}
	v, err, _ := c.group.Do(key, func() (any, error) {
		if e, ok := c.fresh(key); ok {
			return result{e.body, Reused}, nil
		}
		if e, ok := c.lookup(key); ok && e.info.Renewable && c.now().Before(e.expires) {
			c.mu.Lock()
			e.renew = renew
			c.mu.Unlock()
			if c.extend(ctx, e, renew) {
				return result{e.body, Renewed}, nil
			}
		}
		body, err := read(ctx)
		if err != nil {
			return nil, err
		}
		now := c.now()
		if info := Parse(body, now); info.Leased() {
			c.mu.Lock()
			evicted := c.cache.Add(key, &entry{pod: pod, renew: renew, body: body, info: info, expires: now.Add(info.TTL)})
			c.mu.Unlock()
			if evicted {
				c.Metrics.CacheEvent("lease", "eviction")
			}
		} else {
			c.Forget(key)
		}
		return result{body, Read}, nil
	})
	if err != nil {
		return nil, "", err
	}
	r := v.(result)
	return r.body, r.outcome, nil
}

// extend renews e's lease and reports whether it is above MinRemaining again.
func (c *Cache) extend(ctx context.Context, e *entry, renew RenewFunc) bool {
	ttl, err := renew(ctx, e.info.LeaseID, e.info.TTL)
	if err != nil || float64(ttl) <= c.MinRemaining*float64(e.info.TTL) {
		return false
	}
	c.mu.Lock()
	e.expires = c.now().Add(ttl)
	c.mu.Unlock()
	return true
}

// RenewDue renews, in the background, every kept renewable lease past half
// its TTL, with the token of the mount that last asked for it, so that a pod
// that mounts once keeps its credentials. A lease that cannot be extended
// enough is left as it is: the next mount reads the secret anew.
func (c *Cache) RenewDue(ctx context.Context) {
	for _, key := range c.cache.Keys() {
		c.mu.Lock()
		e, ok := c.cache.Peek(key)
		var renew RenewFunc
		due := false
		if ok && e.info.Renewable && e.renew != nil {
			left := e.expires.Sub(c.now())
			due = left > 0 && left <= e.info.TTL/2
			renew = e.renew
		}
		c.mu.Unlock()
		if due {
			// Its own flight: a Get must never join it and receive its result.
			_, _, _ = c.group.Do("background\x00"+key, func() (any, error) {
				if c.extend(ctx, e, renew) {
					c.Metrics.CacheEvent("lease", "renewal")
				}
				return nil, nil
			})
		}
	}
}

// Forget drops one entry.
func (c *Cache) Forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cache.Remove(key)
}

// ForgetPod drops every entry of the pod with uid.
func (c *Cache) ForgetPod(uid string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, k := range c.cache.Keys() {
		if e, ok := c.cache.Peek(k); ok && e.pod == uid {
			c.cache.Remove(k)
			n++
		}
	}
	return n
}

// Len is the number of kept responses.
func (c *Cache) Len() int { return c.cache.Len() }

func (c *Cache) lookup(key string) (*entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cache.Get(key)
}

// fresh returns the entry when it can be reused as it is.
func (c *Cache) fresh(key string) (*entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.cache.Get(key)
	if !ok {
		return nil, false
	}
	left := e.expires.Sub(c.now())
	return e, float64(left) > c.MinRemaining*float64(e.info.TTL)
}
