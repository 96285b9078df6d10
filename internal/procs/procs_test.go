package procs

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The provider runs on one processor while it serves one mount at a time,
// on all of them from the second mount at once until it has been quiet for
// a while, and leaves GOMAXPROCS alone when the operator set it.
func TestGovernorFollowsMountsInFlight(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	const quiet = 200 * time.Millisecond
	g := start(true, 4, quiet, runtime.GOMAXPROCS)
	assert.Equal(t, 1, runtime.GOMAXPROCS(0), "idle: one processor")
	assert.Equal(t, 4, g.Max(), "pools are sized by the processors of a busy provider")

	for range 3 { // mounts one after another
		g.Begin()()
	}
	assert.Equal(t, 1, runtime.GOMAXPROCS(0), "one mount at a time: still one")

	end1 := g.Begin()
	end2 := g.Begin()
	assert.Equal(t, 4, runtime.GOMAXPROCS(0), "two at once: every processor, before the second runs")
	end2()
	time.Sleep(quiet / 2)
	assert.Equal(t, 4, runtime.GOMAXPROCS(0), "one left, not yet quiet for long enough")
	end1()
	require.Eventually(t, func() bool { return runtime.GOMAXPROCS(0) == 1 }, 5*quiet, 10*time.Millisecond, "quiet: back to one")
	assert.Equal(t, 1, g.Procs())

	var wg sync.WaitGroup
	for range 20 { // a burst
		wg.Go(func() {
			end := g.Begin()
			time.Sleep(20 * time.Millisecond)
			end()
		})
	}
	wg.Wait()
	assert.Equal(t, 4, g.Procs())
	require.Eventually(t, func() bool { return runtime.GOMAXPROCS(0) == 1 }, 5*quiet, 10*time.Millisecond)

	end := g.Begin()
	g.Stop()
	assert.Equal(t, 4, runtime.GOMAXPROCS(0), "stopped: every processor, for good")
	end()
	g.Begin()()
	time.Sleep(2 * quiet)
	assert.Equal(t, 4, runtime.GOMAXPROCS(0))
}

func TestGovernorLeavesAnOperatorsChoice(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	runtime.GOMAXPROCS(3)
	t.Setenv("GOMAXPROCS", "3")
	for _, g := range []*Governor{Start(true), Start(false)} {
		end := g.Begin()
		g.Begin()()
		end()
		assert.Equal(t, 3, runtime.GOMAXPROCS(0))
		assert.Equal(t, 3, g.Procs())
	}
}
