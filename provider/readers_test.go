package provider

import (
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// Reads beyond the kept goroutines still all run at once: a mount never
// waits for another's reads to finish.
func TestReadersNeverMakeAReadWait(t *testing.T) {
	r := newReaders(4)
	release := make(chan struct{})
	var started, done sync.WaitGroup
	for range 10 {
		started.Add(1)
		done.Add(1)
		r.Go(func() {
			started.Done()
			<-release
			done.Done()
		})
	}
	waited := make(chan struct{})
	go func() { started.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		t.Fatal("10 reads given at once did not all start while the first ones were still running")
	}
	close(release)
	done.Wait()
	assert.EqualValues(t, 4, r.kept.Load())
}

// Mount after mount, the reads run on the same goroutines: no new
// goroutine (and no new stack to grow) per read.
func TestReadersAreKept(t *testing.T) {
	r := newReaders(8)
	batch := func() {
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			r.Go(wg.Done)
		}
		wg.Wait()
	}
	batch()
	created := func() uint64 {
		s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	before := created()
	for range 200 {
		batch()
		time.Sleep(100 * time.Microsecond) // a mount writes its answer before the next comes
	}
	assert.Less(t, created()-before, uint64(160), "1,600 reads in 200 mounts: at most a tenth on new goroutines")
	assert.LessOrEqual(t, r.kept.Load(), int32(8))
}

// A kept goroutine waiting for the next read holds nothing of the last
// mount: its Vault answers can be collected.
func TestReadersKeepNothingOfAMount(t *testing.T) {
	r := newReaders(1)
	done := make(chan struct{})
	freed := make(chan struct{})
	func() {
		answer := new([4096]byte) // a mount's Vault answer
		runtime.AddCleanup(answer, func(struct{}) { close(freed) }, struct{}{})
		r.Go(func() { answer[0] = 1; close(done) })
	}()
	<-done
	assert.Eventually(t, func() bool {
		runtime.GC()
		select {
		case <-freed:
			return true
		default:
			return false
		}
	}, 5*time.Second, 10*time.Millisecond, "the answer was collected while the reader waits")
	assert.EqualValues(t, 1, r.kept.Load())
}
