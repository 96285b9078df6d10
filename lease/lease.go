// Package lease keeps leased Vault responses (database credentials, PKI
// certificates) per pod and object: a rotation poll gets the same secret
// while its lease has life left, not a new lease.
package lease

import (
	"context"
	"encoding/json"
	"time"

	"github.com/vaultcsi/vault-csi-provider/cache"
	"github.com/vaultcsi/vault-csi-provider/metrics"
)

// Info is what a Vault response says about its own lifetime.
type Info struct {
	LeaseID   string
	TTL       time.Duration
	Renewable bool
}

// Leased reports whether the response should be kept: it has a lease, or is
// a PKI certificate whose data.expiration is in the future.
func (i Info) Leased() bool { return i.TTL > 0 }

// Parse reads the lease of a Vault response body. Responses without a lease
// id (KV reads, including KV v1's advisory lease_duration) are not leased.
func Parse(body []byte, now time.Time) Info {
	var r struct {
		LeaseID       string `json:"lease_id"`
		LeaseDuration int64  `json:"lease_duration"`
		Renewable     bool   `json:"renewable"`
		Data          struct {
			Expiration   json.Number `json:"expiration"`
			Certificate  string      `json:"certificate"`
			SerialNumber string      `json:"serial_number"`
		} `json:"data"`
	}
	if json.Unmarshal(body, &r) != nil {
		return Info{}
	}
	if r.LeaseID != "" && r.LeaseDuration > 0 {
		return Info{LeaseID: r.LeaseID, TTL: time.Duration(r.LeaseDuration) * time.Second, Renewable: r.Renewable}
	}
	// A PKI issue or sign response (certificate, serial_number, expiration),
	// not any secret with an expiration key: a KV secret is read every time.
	if r.Data.Certificate == "" || r.Data.SerialNumber == "" {
		return Info{}
	}
	if exp, err := r.Data.Expiration.Int64(); err == nil && exp > now.Unix() {
		return Info{TTL: time.Unix(exp, 0).Sub(now)}
	}
	return Info{}
}

// Source is one request of a mount, with that mount's Vault token.
type Source interface {
	// Read sends the request afresh.
	Read(ctx context.Context) ([]byte, error)
	// RenewLease extends a lease and returns the TTL Vault granted.
	RenewLease(ctx context.Context, leaseID string, increment time.Duration) (time.Duration, error)
}

// Outcome says how Get answered, for logs and tests.
type Outcome string

// Outcomes of Get.
const (
	Reused  Outcome = "reused"
	Renewed Outcome = "renewed"
	Read    Outcome = "read"
)

// Cache keeps leased responses. Safe for concurrent use. Get returns the
// kept response while more than MinRemaining of its TTL is left; below that
// a renewable lease is renewed, else the secret read anew, one flight per key
// (calls that last answered without a lease, KV, are read directly).
// Unleased responses are never kept; at most size entries and maxBytes.
type Cache struct {
	// MinRemaining is the fraction of a lease's TTL that must be left for
	// it to be reused without renewal (0 < MinRemaining < 1).
	MinRemaining float64
	// Metrics may be nil.
	Metrics *metrics.Metrics

	cache *cache.Cache[entry]
	// static holds the calls (Call.Key, no identity) last seen answering
	// without a lease.
	static *cache.Cache[struct{}]
	now    func() time.Time
}

// staticCallsKept bounds the calls remembered as static.
const staticCallsKept = 1024

// Pod is whose a leased answer is: the cache is shared fairly by namespace.
type Pod struct{ Namespace, UID string }

// entry is immutable: a renewal or a new Get stores a new one.
type entry struct {
	pod     Pod
	src     Source // from the latest Get, with that mount's token
	body    []byte
	info    Info // TTL is the lease's first TTL: the reference for MinRemaining
	expires time.Time
}

// entryOverhead is what an entry weighs besides its body.
const entryOverhead = 512

// NewCache returns a cache of at most size entries and maxBytes (0: no bound).
func NewCache(size int, maxBytes int64, minRemaining float64) *Cache {
	c := &Cache{MinRemaining: minRemaining, now: time.Now}
	c.cache = cache.New(cache.Options[entry]{
		MaxEntries: max(size, 1),
		MaxBytes:   maxBytes,
		Size:       func(e entry) int64 { return int64(len(e.body) + entryOverhead) },
		Now:        func() time.Time { return c.now() },
		OnEvict:    func(string, entry) { c.Metrics.CacheEvent("lease", "eviction") },
		Owner:      func(e entry) string { return e.pod.Namespace },
	})
	c.static = cache.New(cache.Options[struct{}]{MaxEntries: staticCallsKept})
	return c
}

// Get returns the response for key (pod, Vault identity and request; call:
// the request alone), reusing, renewing or reading it.
func (c *Cache) Get(ctx context.Context, pod Pod, key, call string, src Source) ([]byte, Outcome, error) {
	if e, ok := c.fresh(key); ok {
		return e.body, Reused, nil
	}
	if _, static := c.static.Get(call); static {
		body, err := src.Read(ctx)
		if err != nil {
			return nil, "", err
		}
		if info := Parse(body, c.now()); info.Leased() { // it has a lease now: keep it
			c.keep(pod, key, call, src, body, info)
		}
		return body, Read, nil
	}
	type result struct {
		body    []byte
		outcome Outcome
	}
	v, err := c.cache.Do(ctx, key, loadTimeout, func(ctx context.Context) (any, error) {
		if e, ok := c.fresh(key); ok {
			return result{e.body, Reused}, nil
		}
		if e, ok := c.cache.Get(key); ok && e.info.Renewable {
			e.src = src
			c.cache.Replace(key, e, e.expires)
			if c.extend(ctx, key, e) {
				return result{e.body, Renewed}, nil
			}
		}
		body, err := src.Read(ctx)
		if err != nil {
			return nil, err
		}
		c.keep(pod, key, call, src, body, Parse(body, c.now()))
		return result{body, Read}, nil
	})
	if err != nil {
		return nil, "", err
	}
	r := v.(result)
	return r.body, r.outcome, nil
}

// keep stores a leased response, or remembers that call answers without one.
func (c *Cache) keep(pod Pod, key, call string, src Source, body []byte, info Info) {
	if !info.Leased() {
		c.Forget(key)
		c.static.Add(call, struct{}{}, time.Time{})
		return
	}
	c.static.Remove(call)
	e := entry{pod: pod, src: src, body: body, info: info, expires: c.now().Add(info.TTL)}
	c.cache.Remove(key) // replaced, not evicted
	c.cache.Add(key, e, e.expires)
}

// loadTimeout bounds a shared renewal or read.
const loadTimeout = 90 * time.Second

// extend renews e's lease and reports whether it is above MinRemaining again.
func (c *Cache) extend(ctx context.Context, key string, e entry) bool {
	ttl, err := e.src.RenewLease(ctx, e.info.LeaseID, e.info.TTL)
	if err != nil || float64(ttl) <= c.MinRemaining*float64(e.info.TTL) {
		return false
	}
	e.expires = c.now().Add(ttl)
	c.cache.Replace(key, e, e.expires)
	return true
}

// RenewDue renews every kept renewable lease past half its TTL, with the
// token of the mount that last asked for it; one that cannot be extended is
// left for the next mount to read anew.
func (c *Cache) RenewDue(ctx context.Context) {
	c.cache.Each(func(key string, e entry, _ time.Time) {
		if !e.info.Renewable || e.src == nil {
			return
		}
		if left := e.expires.Sub(c.now()); left <= 0 || left > e.info.TTL/2 {
			return
		}
		// Its own flight: a Get must never join it and receive its result.
		_, _ = c.cache.Do(ctx, "background\x00"+key, loadTimeout, func(ctx context.Context) (any, error) {
			if c.extend(ctx, key, e) {
				c.Metrics.CacheEvent("lease", "renewal")
			}
			return nil, nil
		})
	})
}

// Forget drops one entry.
func (c *Cache) Forget(key string) { c.cache.Remove(key) }

// ForgetPod drops every entry of the pod with uid.
func (c *Cache) ForgetPod(uid string) int {
	return len(c.cache.RemoveFunc(func(_ string, e entry) bool { return e.pod.UID == uid }))
}

// Len is the number of kept responses.
func (c *Cache) Len() int { return c.cache.Len() }

// fresh returns the entry when it can be reused as it is.
func (c *Cache) fresh(key string) (entry, bool) {
	e, ok := c.cache.Get(key)
	if !ok {
		return entry{}, false
	}
	left := e.expires.Sub(c.now())
	return e, float64(left) > c.MinRemaining*float64(e.info.TTL)
}
