package fair

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// One namespace queuing many long jobs delays another namespace's job by at
// most one of them, and nothing is kept once all are done.
func TestSlotsAreFairAcrossNamespaces(t *testing.T) {
	s := NewSlots(1, 1)
	ctx := context.Background()
	first, err := s.Acquire(ctx, "hostile")
	require.NoError(t, err)

	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	run := func(ns string) {
		wg.Go(func() {
			release, err := s.Acquire(ctx, ns)
			assert.NoError(t, err)
			mu.Lock()
			order = append(order, ns)
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
			release()
		})
	}
	for range 4 {
		run("hostile")
	}
	time.Sleep(50 * time.Millisecond) // the hostile ones queue first
	run("other")
	time.Sleep(50 * time.Millisecond)
	first()
	wg.Wait()
	assert.Equal(t, "other", order[0], "the other namespace runs next: %v", order)
	assert.Empty(t, s.namespaces, "no namespace kept after its jobs ran")

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = s.Acquire(cancelled, "gone")
	require.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, s.namespaces)
}

// A namespace holding its share of slots, or half the bytes, is refused
// more at once; another namespace is not.
func TestSharesAreCapped(t *testing.T) {
	s := NewSlots(8, 2)
	var releases []func()
	for range 2 {
		r, ok := s.TryAcquire("hostile")
		require.True(t, ok)
		releases = append(releases, r)
	}
	_, ok := s.TryAcquire("hostile")
	assert.False(t, ok, "over its share")
	r, ok := s.TryAcquire("other")
	require.True(t, ok)
	r()
	for _, r := range releases {
		r()
	}
	assert.Empty(t, s.namespaces)

	b := NewBytes(100)
	require.NoError(t, b.Hold("hostile", 50))
	require.ErrorIs(t, b.Hold("hostile", 1), ErrBytesBusy)
	require.NoError(t, b.Hold("other", 50))
	require.ErrorIs(t, b.Hold("third", 1), ErrBytesBusy, "the node's total")
	b.Release("hostile", 50)
	b.Release("other", 50)
	assert.Zero(t, b.Held())
	assert.Empty(t, b.namespaces)
}
