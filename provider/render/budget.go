package render

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Limits bound what one template may cost, whatever its syntax: over any of
// them it stops at once and the mount fails with ErrBudget. Steps counts
// nodes executed and range iterations; Bytes what helpers produce, secrets
// decoded and output; Time the execution, reads from Vault not counted.
type Limits struct {
	Steps, Bytes int
	Time         time.Duration
}

// DefaultLimits are far above what a configuration file needs and far below
// what would slow other pods (50,000 steps take about 0.1 CPU-seconds).
var DefaultLimits = Limits{Steps: 50_000, Bytes: 32 << 20, Time: 2 * time.Second}

// ErrBudget means a template went over one of its Limits.
var ErrBudget = errors.New("template over its budget")

// Budget is what the templates of one mount spend together (many templates
// cost no more than one); safe for concurrent use.
type Budget struct {
	limits Limits

	mu    sync.Mutex
	steps int
	bytes int
}

// NewBudget starts a mount's budget.
func NewBudget(limits Limits) *Budget { return &Budget{limits: limits} }

// budget meters one execution, on one goroutine, against its mount's Budget.
type budget struct {
	ctx       context.Context
	shared    *Budget
	start     time.Time
	reading   time.Duration // spent in {{ secret }}, not counted in Time
	throttled time.Duration // paused by yield, not counted in Time
	steps     int           // this execution's
	lastYield time.Time
}

func newBudget(ctx context.Context, b *Budget) *budget {
	now := time.Now()
	return &budget{ctx: ctx, shared: b, start: now, lastYield: now}
}

// running is the time spent executing, without reads and pauses.
func (b *budget) running(now time.Time) time.Duration {
	return now.Sub(b.start) - b.reading - b.throttled
}

// yieldEvery is how many steps (about 0.1 ms) a template runs before it
// yields its thread to other mounts.
const yieldEvery = 64

// A template that has run throttleAfter goes on at a quarter of a CPU.
const (
	throttleAfter = 10 * time.Millisecond
	throttleRest  = 3 // pause this many times what was run since the last yield
)

// yield lets other goroutines run, and pauses a long template.
func (b *budget) yield() error {
	now := time.Now()
	if b.running(now) <= throttleAfter {
		runtime.Gosched()
		b.lastYield = now
		return nil
	}
	pause := time.NewTimer(throttleRest * now.Sub(b.lastYield))
	defer pause.Stop()
	select {
	case <-b.ctx.Done():
		return b.ctx.Err()
	case <-pause.C:
	}
	b.lastYield = time.Now()
	b.throttled += b.lastYield.Sub(now)
	return nil
}

// step is the StepFunction: it stops the execution at a limit or the mount's end.
func (b *budget) step() (string, error) {
	if err := b.ctx.Err(); err != nil {
		return "", err
	}
	limits := b.shared.limits
	b.shared.mu.Lock()
	b.shared.steps++
	steps := b.shared.steps
	b.shared.mu.Unlock()
	if b.steps++; b.steps%yieldEvery == 0 {
		if err := b.yield(); err != nil {
			return "", err
		}
	}
	if steps > limits.Steps {
		return "", fmt.Errorf("%w: more than %d steps (actions and range iterations) in the mount's templates: range over less data", ErrBudget, limits.Steps)
	}
	if spent := b.running(time.Now()); spent > limits.Time {
		return "", fmt.Errorf("%w: more than %s of execution", ErrBudget, limits.Time)
	}
	return "", nil
}

// spend charges n bytes before they are produced.
func (b *budget) spend(n int) error {
	s := b.shared
	s.mu.Lock()
	defer s.mu.Unlock()
	if n < 0 || s.bytes+n > s.limits.Bytes {
		return b.overBytes()
	}
	s.bytes += n
	return nil
}

// overBytes is the error of a helper call that would go over Limits.Bytes.
func (b *budget) overBytes() error {
	return fmt.Errorf("%w: the mount's templates, their helpers and the secrets they read would take more than %d bytes", ErrBudget, b.shared.limits.Bytes)
}

// remaining is what may still be spent.
func (b *budget) remaining() int {
	s := b.shared
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limits.Bytes - s.bytes
}

// refund gives back what a reservation did not use.
func (b *budget) refund(n int) {
	s := b.shared
	s.mu.Lock()
	s.bytes -= max(n, 0)
	s.mu.Unlock()
}

// produce runs f once n bytes are reserved and keeps what its result takes.
func produce(b *budget, n int, f func() (string, error)) (string, error) {
	if err := b.spend(n); err != nil {
		return "", err
	}
	s, err := f()
	b.refund(n - len(s))
	return s, err
}

// timeReading runs read without charging its time.
func timeReading[T any](b *budget, read func() (T, error)) (T, error) {
	start := time.Now()
	v, err := read()
	b.reading += time.Since(start)
	return v, err
}

// sizeOf bounds from above the bytes printing v takes (indented JSON too),
// counting no further than limit.
func sizeOf(v any, limit int) int {
	n := 0
	var walk func(rv reflect.Value, depth int)
	walk = func(rv reflect.Value, depth int) {
		if n > limit {
			return
		}
		indent := 2*depth + 4 // newline, indentation, separators
		switch rv.Kind() {
		case reflect.String:
			n += rv.Len() + 2
		case reflect.Slice, reflect.Array:
			n += 2 + indent
			for i := 0; i < rv.Len() && n <= limit; i++ {
				walk(rv.Index(i), depth+1)
				n += indent
			}
		case reflect.Map:
			n += 2 + indent
			it := rv.MapRange()
			for it.Next() && n <= limit {
				walk(it.Key(), depth+1)
				walk(it.Value(), depth+1)
				n += indent
			}
		case reflect.Interface, reflect.Pointer:
			if rv.IsNil() {
				n += 5
			} else {
				walk(rv.Elem(), depth)
			}
		case reflect.Struct:
			for i := 0; i < rv.NumField() && n <= limit; i++ {
				walk(rv.Field(i), depth+1)
				n += indent
			}
		default:
			n += 32 // numbers and booleans
		}
	}
	walk(reflect.ValueOf(v), 0)
	return n
}

// formatWidths adds up the widths and precisions printf's format asks for;
// a width taken from the arguments (%*d) counts as the whole budget.
func formatWidths(format string, limit int) int {
	total := 0
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		n := 0
		for i++; i < len(format) && strings.IndexByte("+-# 0123456789.*[]", format[i]) >= 0; i++ {
			switch c := format[i]; {
			case c == '*':
				return limit + 1
			case c >= '0' && c <= '9':
				total -= n
				n = min(n*10+int(c-'0'), limit+1)
				total += n
			default:
				n = 0
			}
		}
		if total > limit {
			return limit + 1
		}
	}
	return total
}
