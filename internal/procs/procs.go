// Package procs runs the provider on one processor (GOMAXPROCS 1) while it
// serves at most one mount at a time, and on all of them (the GOMAXPROCS it
// started with) as soon as it serves two.
//
// A node's provider is idle most of the time and serves one pod's mount at
// a time. Each such mount hands work between goroutines (gRPC's reader,
// the handler, gRPC's writer) and waits on Vault; with a second processor
// idle, every handoff wakes a thread on it that mostly finds nothing to
// do and sleeps again: on a 2-core machine a third of a mount's CPU
// (README, Benchmark). On one processor the handoffs stay on one thread.
// Two mounts at once, a burst, a tenant's slow template beside another's
// mount: the provider is back on every processor at once, before the
// second mount runs, and stays there until it has served one mount at a
// time for Quiet.
package procs

import (
	"os"
	"runtime"
	"sync"
	"time"
)

// Quiet is how long the provider serves at most one mount at a time before
// it goes back to one processor.
const Quiet = time.Second

// Governor sets GOMAXPROCS from the mounts in flight; see Start.
type Governor struct {
	off   bool
	max   int
	quiet time.Duration
	set   func(int) int // runtime.GOMAXPROCS

	mu       sync.Mutex
	inFlight int
	wide     bool      // running on max processors
	busy     time.Time // when two or more mounts were last in flight
	timer    *time.Timer
	stopped  bool
}

// Start returns a governor that puts the process on one processor now (when
// it has more than one). It does nothing when off, when the process has one
// processor, or when the process's environment sets GOMAXPROCS: an
// operator's choice stands. Stop gives the process its processors back.
func Start(on bool) *Governor {
	return start(on && os.Getenv("GOMAXPROCS") == "", runtime.GOMAXPROCS(0), Quiet, runtime.GOMAXPROCS)
}

func start(on bool, max int, quiet time.Duration, set func(int) int) *Governor {
	g := &Governor{off: !on || max <= 1, max: max, quiet: quiet, set: set}
	if !g.off {
		g.set(1)
	}
	return g
}

// Begin counts a mount in flight; the function it returns counts it out.
func (g *Governor) Begin() (end func()) {
	if g == nil || g.off {
		return func() {}
	}
	g.mu.Lock()
	g.inFlight++
	if g.inFlight > 1 && !g.wide && !g.stopped {
		g.wide = true
		g.set(g.max)
	}
	g.mu.Unlock()
	return g.end
}

func (g *Governor) end() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inFlight--
	if g.inFlight == 1 { // from two: the last moment two were in flight
		g.busy = time.Now()
	}
	if g.wide && g.timer == nil && !g.stopped {
		g.timer = time.AfterFunc(g.quiet, g.narrow)
	}
}

// narrow goes back to one processor once at most one mount has been in
// flight for quiet, and looks again later when that is not yet so.
func (g *Governor) narrow() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.timer = nil
	if !g.wide || g.stopped {
		return
	}
	wait := g.quiet
	if g.inFlight <= 1 {
		if wait -= time.Since(g.busy); wait <= 0 {
			g.wide = false
			g.set(1)
			return
		}
	}
	g.timer = time.AfterFunc(wait, g.narrow)
}

// Max is the process's own GOMAXPROCS, the one it runs on while busy: what
// to size pools of workers by (runtime.GOMAXPROCS(0) may read 1 while idle).
// A nil governor reads runtime.GOMAXPROCS.
func (g *Governor) Max() int {
	if g == nil {
		return runtime.GOMAXPROCS(0)
	}
	return g.max
}

// Stop puts GOMAXPROCS back to what the process started with, for good.
func (g *Governor) Stop() {
	if g.off {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
	g.stopped = true
	g.wide = true
	g.set(g.max)
}

// Procs is the GOMAXPROCS the governor has set: 1 or the process's own.
// Off, it is the process's own.
func (g *Governor) Procs() int {
	if g.off {
		return g.max
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.wide {
		return g.max
	}
	return 1
}
