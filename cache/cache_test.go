package cache

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vaultcsi/vault-csi-provider/test/manualclock"
)

func TestBounds(t *testing.T) {
	tests := []struct {
		name        string
		opts        Options[string]
		add         []string
		wantKept    []string
		wantEvicted []string
	}{
		{name: "count: the least recently used goes", opts: Options[string]{MaxEntries: 2}, add: []string{"a", "b", "c"}, wantKept: []string{"b", "c"}, wantEvicted: []string{"a"}},
		{name: "bytes: as many go as needed", opts: Options[string]{MaxEntries: 10, MaxBytes: 5, Size: func(v string) int64 { return int64(len(v)) }},
			add: []string{"aa", "bb", "cccc"}, wantKept: []string{"cccc"}, wantEvicted: []string{"aa", "bb"}},
		{name: "a value over the byte bound is not kept", opts: Options[string]{MaxEntries: 10, MaxBytes: 2, Size: func(v string) int64 { return int64(len(v)) }},
			add: []string{"aa", "toolarge"}, wantKept: []string{"aa"}, wantEvicted: []string{"toolarge"}},
		{name: "a cache of none keeps none", opts: Options[string]{}, add: []string{"a"}, wantEvicted: []string{"a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var evicted []string
			tc.opts.OnEvict = func(k, _ string) { evicted = append(evicted, k) }
			c := New(tc.opts)
			for _, v := range tc.add {
				c.Add(v, v, time.Time{})
			}
			for _, v := range tc.wantKept {
				got, ok := c.Get(v)
				assert.True(t, ok, v)
				assert.Equal(t, v, got)
			}
			assert.Equal(t, tc.wantEvicted, evicted)
			assert.Equal(t, len(tc.wantKept), c.Len())
		})
	}
}

func TestExpiryReplaceAndRemove(t *testing.T) {
	clk := manualclock.New(time.Unix(1_800_000_000, 0))
	var evicted []string
	c := New(Options[int]{MaxEntries: 10, Now: clk.Now, OnEvict: func(k string, _ int) { evicted = append(evicted, k) }})
	c.Add("a", 1, clk.Now().Add(time.Minute))
	c.Add("b", 2, time.Time{})
	clk.Add(2 * time.Minute)
	_, ok := c.Get("a")
	assert.False(t, ok, "expired")
	assert.False(t, c.Replace("a", 3, time.Time{}), "gone entries are not brought back")
	assert.True(t, c.Replace("b", 4, time.Time{}))
	v, _ := c.Peek("b")
	assert.Equal(t, 4, v)
	c.Add("b", 5, time.Time{})
	assert.Equal(t, []string{"b"}, evicted, "a replaced value is told, expiry and Replace are not")
	assert.Equal(t, []int{5}, c.RemoveFunc(func(_ string, v int) bool { return v == 5 }))
	assert.Equal(t, 0, c.Len())
}

func TestDoSharesOneLoadAndLetsCallersLeave(t *testing.T) {
	c := New(Options[int]{MaxEntries: 1})
	var loads atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	var started atomic.Int32
	for range 20 {
		wg.Go(func() {
			started.Add(1)
			v, err := c.Do(context.Background(), "k", time.Minute, func(context.Context) (any, error) {
				loads.Add(1)
				<-release
				return 7, nil
			})
			assert.NoError(t, err)
			assert.Equal(t, 7, v)
		})
	}
	require.Eventually(t, func() bool { return loads.Load() == 1 && started.Load() == 20 }, 5*time.Second, time.Millisecond)
	time.Sleep(50 * time.Millisecond) // let the last callers join the flight
	ctx, cancel := context.WithCancel(context.Background())
	left := make(chan error)
	go func() {
		_, err := c.Do(ctx, "k", time.Minute, func(context.Context) (any, error) { return 0, nil })
		left <- err
	}()
	cancel()
	require.ErrorIs(t, <-left, context.Canceled, "a caller that gives up returns at once")
	close(release)
	wg.Wait()
	assert.Equal(t, int32(1), loads.Load())
}

// TestDoRecoversPanics: a load that panics fails its callers with
// ErrPanicked instead of crashing the process (singleflight re-panics a
// load's panic on a goroutine of its own, which no caller could recover).
func TestDoRecoversPanics(t *testing.T) {
	c := New(Options[int]{MaxEntries: 1})
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			_, err := c.Do(context.Background(), "k", time.Minute, func(context.Context) (any, error) { panic("bug") })
			assert.ErrorIs(t, err, ErrPanicked)
		})
	}
	wg.Wait()
	v, err := c.Do(context.Background(), "k", time.Minute, func(context.Context) (any, error) { return 1, nil })
	require.NoError(t, err)
	assert.Equal(t, 1, v, "the key works again")
}

// With owners, the bounds push out the entries of the owner holding the
// most (entries, or bytes over MaxBytes): one owner adding many pushes out
// its own, never another's, even the least recently used.
func TestOwnersPushOutTheirOwn(t *testing.T) {
	for _, byBytes := range []bool{false, true} {
		opts := Options[string]{MaxEntries: 10, Owner: func(v string) string { return v[:1] }}
		if byBytes {
			opts = Options[string]{MaxEntries: 1000, MaxBytes: 100, Size: func(v string) int64 { return 10 }, Owner: opts.Owner}
		}
		var evicted []string
		opts.OnEvict = func(_ string, v string) { evicted = append(evicted, v) }
		c := New(opts)
		c.Add("a1", "a1", time.Time{})
		c.Add("a2", "a2", time.Time{})
		for i := range 50 {
			c.Add(fmt.Sprint("b", i), fmt.Sprint("b", i), time.Time{})
		}
		for _, k := range []string{"a1", "a2", "b49"} {
			_, ok := c.Peek(k)
			assert.True(t, ok, "%s kept (bytes %v)", k, byBytes)
		}
		assert.Len(t, evicted, 42)
		for _, v := range evicted {
			assert.Equal(t, "b", v[:1])
		}
	}
}
