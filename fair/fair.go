// Package fair shares what the node's provider has among namespaces: slots
// of work in flight and bytes held, each namespace to its part, so that one
// tenant's load waits behind itself, not in front of the others.
package fair

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sync/semaphore"
)

// Slots bound the work in flight on the node, and one namespace's part of
// it. Safe for concurrent use; a release must be called once.
type Slots struct {
	node        *semaphore.Weighted
	size, share int64
	mu          sync.Mutex
	namespaces  map[string]*namespace // only while in use: bounded by the callers
}

type namespace struct {
	sem   *semaphore.Weighted
	users int
}

// Share is one namespace's part of size slots: all but a quarter, kept for
// the others. A namespace alone (a small cluster's "default") loses little;
// one whose Vault never answers holds no more.
func Share(size int) int { return size - size/4 }

// NewSlots returns size slots (at least one), at most share (at least one)
// to one namespace at a time.
func NewSlots(size, share int) *Slots {
	size, share = max(1, size), max(1, min(share, size))
	return &Slots{node: semaphore.NewWeighted(int64(size)), size: int64(size), share: int64(share), namespaces: map[string]*namespace{}}
}

// Size is the node's number of slots.
func (s *Slots) Size() int { return int(s.size) }

// Share is one namespace's number of slots.
func (s *Slots) Share() int { return int(s.share) }

// Acquire waits for one of namespace's slots, then for one of the node's.
func (s *Slots) Acquire(ctx context.Context, ns string) (release func(), err error) {
	n, leave := s.enter(ns)
	if err := n.sem.Acquire(ctx, 1); err != nil {
		leave()
		return nil, err
	}
	if err := s.node.Acquire(ctx, 1); err != nil {
		n.sem.Release(1)
		leave()
		return nil, err
	}
	return func() { s.node.Release(1); n.sem.Release(1); leave() }, nil
}

// TryAcquire takes a slot only if one is free for namespace at once.
func (s *Slots) TryAcquire(ns string) (release func(), ok bool) {
	n, leave := s.enter(ns)
	if !n.sem.TryAcquire(1) {
		leave()
		return nil, false
	}
	if !s.node.TryAcquire(1) {
		n.sem.Release(1)
		leave()
		return nil, false
	}
	return func() { s.node.Release(1); n.sem.Release(1); leave() }, true
}

func (s *Slots) enter(ns string) (*namespace, func()) {
	s.mu.Lock()
	n := s.namespaces[ns]
	if n == nil {
		n = &namespace{sem: semaphore.NewWeighted(s.share)}
		s.namespaces[ns] = n
	}
	n.users++
	s.mu.Unlock()
	return n, func() {
		s.mu.Lock()
		if n.users--; n.users == 0 {
			delete(s.namespaces, ns)
		}
		s.mu.Unlock()
	}
}

// ErrBytesBusy means the bytes are held by other callers (or the namespace
// holds its half): a later try fits.
var ErrBytesBusy = errors.New("the provider's memory for Vault answers is in use")

// Bytes bounds the bytes held at once on the node, and one namespace's part
// to half of them; nothing waits. Safe for concurrent use.
type Bytes struct {
	mu          sync.Mutex
	total, held int64
	namespaces  map[string]int64 // only while held: bounded by the holders
}

// NewBytes returns a budget of total bytes.
func NewBytes(total int64) *Bytes {
	return &Bytes{total: total, namespaces: map[string]int64{}}
}

// Hold takes n bytes for namespace, or fails at once with ErrBytesBusy.
func (b *Bytes) Hold(ns string, n int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	mine := b.namespaces[ns]
	if b.held+n > b.total || mine+n > b.total/2 {
		return fmt.Errorf("%w: mounts hold %d of its %d bytes (-answers-max-bytes), namespace %s %d of its half: the driver retries the mount",
			ErrBytesBusy, b.held, b.total, ns, mine)
	}
	b.held += n
	b.namespaces[ns] = mine + n
	return nil
}

// Release gives back n bytes namespace held.
func (b *Bytes) Release(ns string, n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held -= n
	if b.namespaces[ns] -= n; b.namespaces[ns] <= 0 {
		delete(b.namespaces, ns)
	}
}

// Held is the bytes held now.
func (b *Bytes) Held() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held
}
