package provider

import (
	"context"
	"sync"

	"golang.org/x/sync/semaphore"
)

// templateSlots bounds the templates running at once on the node to half of
// GOMAXPROCS (at least one), one per namespace at a time: a namespace sending
// many long templates queues behind itself. Safe for concurrent use;
// acquire's release must be called once.
type templateSlots struct {
	node *semaphore.Weighted

	mu         sync.Mutex
	namespaces map[string]*namespaceSlot // only while in use: bounded by the mounts in flight
}

type namespaceSlot struct {
	sem   *semaphore.Weighted
	users int
}

func newTemplateSlots(procs int) *templateSlots {
	return &templateSlots{
		node:       semaphore.NewWeighted(int64(max(1, procs/2))),
		namespaces: map[string]*namespaceSlot{},
	}
}

// acquire waits for namespace's turn, then for a node slot.
func (s *templateSlots) acquire(ctx context.Context, namespace string) (release func(), err error) {
	s.mu.Lock()
	ns := s.namespaces[namespace]
	if ns == nil {
		ns = &namespaceSlot{sem: semaphore.NewWeighted(1)}
		s.namespaces[namespace] = ns
	}
	ns.users++
	s.mu.Unlock()
	leave := func() {
		s.mu.Lock()
		if ns.users--; ns.users == 0 {
			delete(s.namespaces, namespace)
		}
		s.mu.Unlock()
	}
	if err := ns.sem.Acquire(ctx, 1); err != nil {
		leave()
		return nil, err
	}
	if err := s.node.Acquire(ctx, 1); err != nil {
		ns.sem.Release(1)
		leave()
		return nil, err
	}
	return func() {
		s.node.Release(1)
		ns.sem.Release(1)
		leave()
	}, nil
}
