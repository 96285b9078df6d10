// Package logbuf gathers the provider's log lines into fewer writes.
//
// Every warm mount logs a line at info, and writing each line on its own is
// a system call per mount (and, in a pod, a wake-up of the container
// runtime that reads the pipe): a few percent of what a warm mount costs.
// A Writer keeps the lines of an interval and writes them together; a
// line at warn or above is written at once, with everything before it.
package logbuf

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// flushBytes is how much a Writer gathers before it writes whatever the
// interval: a burst of mounts writes in pieces of this size.
const flushBytes = 32 << 10

// Writer gathers what is written to it for up to an interval, then writes it
// to the underlying writer in one call. It is safe for concurrent use.
type Writer struct {
	out      io.Writer
	interval time.Duration

	mu      sync.Mutex
	buf     []byte
	timer   *time.Timer
	pending bool // the timer will flush
}

// New returns a Writer that writes to out at most interval after a line
// was written to it; an interval of 0 or less writes every line at once.
func New(out io.Writer, interval time.Duration) *Writer {
	return &Writer{out: out, interval: interval}
}

// Write keeps p for the next flush, or writes it now when the Writer does
// not gather or has gathered flushBytes. An error is the underlying
// writer's, from this or an earlier flush.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.interval <= 0 {
		return w.out.Write(p)
	}
	w.buf = append(w.buf, p...)
	if len(w.buf) >= flushBytes {
		return len(p), w.flushLocked()
	}
	if !w.pending {
		w.pending = true
		if w.timer == nil {
			w.timer = time.AfterFunc(w.interval, func() { _ = w.Flush() })
		} else {
			w.timer.Reset(w.interval)
		}
	}
	return len(p), nil
}

// Flush writes what was gathered.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flushLocked()
}

func (w *Writer) flushLocked() error {
	w.pending = false
	if w.timer != nil {
		w.timer.Stop()
	}
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.out.Write(w.buf)
	if cap(w.buf) > 4*flushBytes { // one long line does not stay in memory
		w.buf = nil
	} else {
		w.buf = w.buf[:0]
	}
	return err
}

// Handler passes records to next, which writes to w, and flushes w after
// every record at or above level: warnings and errors are read at once.
func Handler(next slog.Handler, w *Writer, level slog.Level) slog.Handler {
	return flushing{next: next, w: w, level: level}
}

type flushing struct {
	next  slog.Handler
	w     *Writer
	level slog.Level
}

func (h flushing) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h flushing) Handle(ctx context.Context, r slog.Record) error {
	err := h.next.Handle(ctx, r)
	if r.Level >= h.level {
		if ferr := h.w.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

func (h flushing) WithAttrs(attrs []slog.Attr) slog.Handler {
	return flushing{next: h.next.WithAttrs(attrs), w: h.w, level: h.level}
}

func (h flushing) WithGroup(name string) slog.Handler {
	return flushing{next: h.next.WithGroup(name), w: h.w, level: h.level}
}
