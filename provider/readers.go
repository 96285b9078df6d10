package provider

import "sync/atomic"

// readers runs the parallel reads of mounts on goroutines kept from one
// read to the next, at most max of them. A new goroutine's stack grows
// through a Vault call, copied at each doubling: for a ten-object mount's
// eight readers, about 5 % of its CPU. A kept goroutine's stack has grown
// already. When every kept goroutine is busy, a read gets a goroutine of
// its own, as without: no mount ever waits for another's reads.
type readers struct {
	work chan func()
	kept atomic.Int32
	max  int32
}

func newReaders(max int) *readers {
	return &readers{work: make(chan func()), max: int32(max)}
}

// Go runs f on an idle kept goroutine, a new kept one while there are
// fewer than max, or else a goroutine of its own.
func (r *readers) Go(f func()) {
	select {
	case r.work <- f: // an idle one took it
		return
	default:
	}
	if r.kept.Add(1) <= r.max {
		go r.serve(f)
		return
	}
	r.kept.Add(-1)
	go f()
}

// serve runs f, then whatever it is given, for the life of the process.
// Waiting, it holds nothing of the last mount, whose answers the closure
// held (TestReadersKeepNothingOfAMount).
func (r *readers) serve(f func()) {
	for {
		f()
		f = <-r.work
	}
}
