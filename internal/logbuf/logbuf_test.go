package logbuf

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sink records each write the Writer makes, as stderr would receive them.
type sink struct {
	mu     sync.Mutex
	writes []string
}

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes = append(s.writes, string(p))
	return len(p), nil
}

func (s *sink) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.writes...)
}

func newLogger(out *sink, interval time.Duration) (*slog.Logger, *Writer) {
	w := New(out, interval)
	opts := &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}
	return slog.New(Handler(slog.NewTextHandler(w, opts), w, slog.LevelWarn)), w
}

func TestInfoLinesAreWrittenTogetherWithinTheInterval(t *testing.T) {
	out := &sink{}
	log, _ := newLogger(out, 50*time.Millisecond)
	for i := range 100 {
		log.Info("mount succeeded", "n", i)
	}
	assert.Empty(t, out.got(), "nothing is written before the interval")
	require.Eventually(t, func() bool { return len(out.got()) == 1 }, 2*time.Second, 5*time.Millisecond,
		"the interval's lines are written in one write")
	lines := strings.Split(strings.TrimSuffix(out.got()[0], "\n"), "\n")
	require.Len(t, lines, 100)
	assert.Equal(t, `level=INFO msg="mount succeeded" n=0`, lines[0])
	assert.Equal(t, `level=INFO msg="mount succeeded" n=99`, lines[99], "in the order they were logged")

	log.Info("later")
	require.Eventually(t, func() bool { return len(out.got()) == 2 }, 2*time.Second, 5*time.Millisecond,
		"a line after a flush starts a new interval")
}

func TestAWarningWritesAtOnceWithTheLinesBeforeIt(t *testing.T) {
	out := &sink{}
	log, _ := newLogger(out, time.Hour)
	log.With("component", "pods").Info("first")
	log.Warn("mount failed", "code", "PermissionDenied")
	require.Len(t, out.got(), 1, "the warning flushed without waiting an hour")
	assert.Equal(t, "level=INFO msg=first component=pods\nlevel=WARN msg=\"mount failed\" code=PermissionDenied\n", out.got()[0])
	log.Error("boom")
	assert.Len(t, out.got(), 2)
}

func TestAFullBufferIsWrittenWithoutWaiting(t *testing.T) {
	out := &sink{}
	log, _ := newLogger(out, time.Hour)
	line := strings.Repeat("x", 1000)
	for range 40 { // 40 KB of lines, over flushBytes
		log.Info(line)
	}
	got := out.got()
	require.Len(t, got, 1, "one write once 32 KiB were gathered")
	assert.GreaterOrEqual(t, len(got[0]), flushBytes)
}

func TestFlushWritesWhatIsLeft(t *testing.T) {
	out := &sink{}
	log, w := newLogger(out, time.Hour)
	log.Info("shutting down")
	require.NoError(t, w.Flush())
	assert.Equal(t, []string{"level=INFO msg=\"shutting down\"\n"}, out.got())
	require.NoError(t, w.Flush())
	assert.Len(t, out.got(), 1, "nothing to write twice")
}

func TestNoIntervalWritesEveryLine(t *testing.T) {
	out := &sink{}
	log, _ := newLogger(out, 0)
	log.Info("a")
	log.Info("b")
	assert.Equal(t, []string{"level=INFO msg=a\n", "level=INFO msg=b\n"}, out.got())
}

func TestConcurrentLinesStayWhole(t *testing.T) {
	var buf bytes.Buffer
	out := &sink{}
	log, w := newLogger(out, 10*time.Millisecond)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				log.Info("mount succeeded", "g", g, "i", i)
			}
		})
	}
	wg.Wait()
	require.NoError(t, w.Flush())
	for _, s := range out.got() {
		buf.WriteString(s)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	assert.Len(t, lines, 1600)
	for _, l := range lines {
		assert.True(t, strings.HasPrefix(l, `level=INFO msg="mount succeeded" g=`), l)
	}
}
