package gcpace

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// These tests change the process's GOGC, so none runs in parallel.

func heap() (live, goal uint64) {
	s := []metrics.Sample{{Name: liveHeap}, {Name: "/gc/heap/goal:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64()
}

// collect runs a collection and waits for the pacer to have seen it.
func collect(t *testing.T, p *Pacer, until func() bool) {
	t.Helper()
	require.Eventually(t, func() bool {
		runtime.GC()
		return until()
	}, 10*time.Second, 10*time.Millisecond)
}

func TestSmallHeapGrowsByTheFloorBetweenCollections(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	const floor = 64 << 20
	p := Start(floor)
	collect(t, p, func() bool { return p.GCPercent() > 100 })
	live, goal := heap()
	assert.GreaterOrEqual(t, goal, live+floor*9/10, "the next collection waits for about the floor of new allocation (live %d, goal %d)", live, goal)

	p.Stop()
	assert.Equal(t, 100, debug.SetGCPercent(100), "Stop puts GOGC back")
	_, goal = heap()
	assert.Less(t, goal, uint64(floor), "the heap goal is GOGC's again")
}

func TestLargeHeapKeepsGOGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	kept := make([][]byte, 0, 64)
	for range 64 { // 64 MiB live, over the 8 MiB floor
		kept = append(kept, make([]byte, 1<<20))
	}
	p := Start(8 << 20)
	defer p.Stop()
	runtime.GC()
	collect(t, p, func() bool { runtime.GC(); return true })
	time.Sleep(50 * time.Millisecond) // let the finalizer of the last collection run
	assert.Equal(t, 100, p.GCPercent(), "a heap past the floor grows by GOGC's proportion, no more")
	runtime.KeepAlive(kept)
}

func TestOffWhenAskedOrWhenCollectionIsOff(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	p := Start(0)
	runtime.GC()
	time.Sleep(50 * time.Millisecond)
	assert.Equal(t, 100, debug.SetGCPercent(100), "-gc-min-growth=0 leaves GOGC alone")
	p.Stop()

	t.Setenv("GOGC", "off")
	debug.SetGCPercent(-1) // as the runtime set it from GOGC=off
	p = Start(8 << 20)
	runtime.GC()
	time.Sleep(50 * time.Millisecond)
	assert.Equal(t, -1, debug.SetGCPercent(100), "GOGC=off stays off")
	p.Stop()
}

func TestBaseIsTheGOGCTheProcessWasStartedWith(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want int
	}{
		{env: "", want: 100},
		{env: "200", want: 200},
		{env: "off", want: -1},
		{env: "fast", want: 100}, // the runtime ignores what it cannot read
	} {
		t.Run("GOGC="+tc.env, func(t *testing.T) {
			assert.Equal(t, tc.want, envGOGC(tc.env))
		})
	}
}
