package provider

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/semaphore"
)

// One namespace queuing many long templates delays another namespace's
// template by at most one of them, and nothing is kept once all are done.
func TestTemplateSlotsAreFairAcrossNamespaces(t *testing.T) {
	s := newTemplateSlots(runtime.GOMAXPROCS(0))
	s.node = semaphore.NewWeighted(1) // one CPU's worth, whatever this machine has
	ctx := context.Background()
	first, err := s.acquire(ctx, "hostile")
	require.NoError(t, err)

	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	run := func(ns string) {
		wg.Go(func() {
			release, err := s.acquire(ctx, ns)
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
	assert.Empty(t, s.namespaces, "no namespace kept after its templates ran")

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = s.acquire(cancelled, "gone")
	require.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, s.namespaces)
}
