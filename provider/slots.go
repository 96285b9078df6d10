package provider

import (
	"context"
	"errors"
	"fmt"
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

// ErrAnswersBusy means the node's budget for Vault answers held at once is
// spent by other mounts (or this namespace's half of it): a retry later fits.
var ErrAnswersBusy = errors.New("the provider's memory for Vault answers is in use")

// answerBytes bounds the bytes of Vault answers all mounts hold at once
// (-answers-max-bytes), and one namespace's part to half of them. Bytes are
// held before they are read and released when the mount has answered.
// Safe for concurrent use.
type answerBytes struct {
	mu          sync.Mutex
	total, held int64
	namespaces  map[string]int64 // only while held: bounded by the mounts in flight
}

func newAnswerBytes(total int64) *answerBytes {
	return &answerBytes{total: total, namespaces: map[string]int64{}}
}

func (a *answerBytes) hold(namespace string, n int64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	ns := a.namespaces[namespace]
	if a.held+n > a.total || ns+n > a.total/2 {
		return fmt.Errorf("%w: mounts hold %d of its %d bytes (-answers-max-bytes), namespace %s %d of its half: the driver retries the mount",
			ErrAnswersBusy, a.held, a.total, namespace, ns)
	}
	a.held += n
	a.namespaces[namespace] = ns + n
	return nil
}

func (a *answerBytes) release(namespace string, n int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.held -= n
	if a.namespaces[namespace] -= n; a.namespaces[namespace] <= 0 {
		delete(a.namespaces, namespace)
	}
}
