// Package gcpace spaces garbage collections out while the heap is small.
//
// Go collects when the heap has grown by GOGC percent of what the last
// collection found live (but not before it reaches 4 MiB). A provider with
// a few MiB live and some tens of KiB allocated per mount then collects every few
// dozen mounts, and the mounts that run beside a collection are the slow
// tail of the latency. While the live heap is under a floor, Pacer raises
// GOGC so that the heap may grow by the floor between collections; once it
// is over, GOGC is what the process was started with, so a large heap still
// grows by its usual proportion and no more.
package gcpace

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"sync"
)

// liveHeap is the runtime's figure for the heap the last collection marked.
const liveHeap = "/gc/heap/live:bytes"

// Pacer adjusts GOGC after every collection; see Start.
type Pacer struct {
	minGrowth uint64
	base      int // GOGC as the process was started

	mu      sync.Mutex
	stopped bool
	current int
	sample  []metrics.Sample
}

// Start lets the heap grow by at least minGrowth bytes between collections,
// from the next collection on. It does nothing (and Stop nothing) when
// minGrowth is 0 or collection is off (GOGC=off).
func Start(minGrowth uint64) *Pacer {
	return start(minGrowth, envGOGC(os.Getenv("GOGC")))
}

// envGOGC is the GOGC the runtime starts with for the variable's value:
// "off" is -1, a number is itself, anything else the default 100.
func envGOGC(v string) int {
	if v == "off" {
		return -1
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return n
	}
	return 100
}

// start is Start with the base GOGC given: the one the process was started
// with, which a pacer's own changes do not alter.
func start(minGrowth uint64, base int) *Pacer {
	p := &Pacer{minGrowth: minGrowth, base: base, current: base, sample: []metrics.Sample{{Name: liveHeap}}}
	if minGrowth == 0 || base < 0 {
		p.stopped = true
		return p
	}
	p.arm()
	return p
}

// Stop puts GOGC back as it was and stops adjusting it.
func (p *Pacer) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	p.stopped = true
	debug.SetGCPercent(p.base)
}

// GCPercent is the GOGC the pacer set last.
func (p *Pacer) GCPercent() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.current
}

// sentinel is an object left unreachable on purpose: its finalizer runs
// after the collection that finds it, and arms the next one.
type sentinel struct{ _ *byte } // a pointer keeps it out of the tiny allocator, whose objects may never be finalized

func (p *Pacer) arm() {
	runtime.SetFinalizer(&sentinel{}, func(*sentinel) {
		if p.adjust() {
			p.arm()
		}
	})
}

// adjust sets GOGC for the live heap the last collection found; false once
// stopped.
func (p *Pacer) adjust() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return false
	}
	metrics.Read(p.sample)
	if p.sample[0].Value.Kind() != metrics.KindUint64 {
		return false // a runtime without the figure: leave GOGC alone
	}
	want := p.base
	if live := p.sample[0].Value.Uint64(); live > 0 {
		if floor := p.minGrowth * 100 / live; floor > uint64(want) {
			want = int(min(floor, 100_000))
		}
	}
	if want != p.current {
		debug.SetGCPercent(want)
		p.current = want
	}
	return true
}
