package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// latencies summarizes durations.
type latencies []time.Duration

func (l latencies) percentile(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := append(latencies(nil), l...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p/100*float64(len(s)-1) + 0.5)
	return s[i]
}

func (l latencies) summary() string {
	return fmt.Sprintf("p50 %s · p95 %s · p99 %s", ms(l.percentile(50)), ms(l.percentile(95)), ms(l.percentile(99)))
}

// sampleLog keeps every warm sample with the moment it ended, so that a
// tail can be read as a stall (slow samples in a row) or a spread. A nil
// log keeps nothing (no -keep); samples are formatted only when saved, so
// keeping them adds no work to the timed loop but an append.
type sampleLog struct {
	start   time.Time
	samples []sample
}

type sample struct {
	run, objects int
	kind         string
	ended, took  time.Duration
}

func (s *sampleLog) add(run, objects int, kind string, d time.Duration) {
	if s == nil {
		return
	}
	now := time.Now()
	if s.start.IsZero() {
		s.start = now
	}
	s.samples = append(s.samples, sample{run: run + 1, objects: objects, kind: kind, ended: now.Sub(s.start), took: d})
}

func (s *sampleLog) save(path string) error {
	if s == nil {
		return nil
	}
	var b strings.Builder
	b.WriteString("run,objects,kind,ended_s,took_us\n")
	for _, x := range s.samples {
		fmt.Fprintf(&b, "%d,%d,%s,%.3f,%d\n", x.run, x.objects, x.kind, x.ended.Seconds(), x.took.Microseconds())
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// memory is a process's resident memory, from /proc: all of it, and its
// anonymous part (heap, stacks) and file-backed part (the binary's pages,
// which the kernel can reclaim).
type memory struct{ totalKiB, anonKiB, fileKiB float64 }

func (m memory) String() string {
	return fmt.Sprintf("%.1f MiB (anonymous %.1f, file-backed %.1f)", m.totalKiB/1024, m.anonKiB/1024, m.fileKiB/1024)
}

func rss(pid int) (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	kb := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && (strings.HasPrefix(f[0], "Rss") || f[0] == "VmRSS:") {
			if v, err := strconv.ParseFloat(f[1], 64); err == nil {
				kb[strings.TrimSuffix(f[0], ":")] = v
			}
		}
	}
	total, ok := kb["VmRSS"]
	if !ok {
		return memory{}, fmt.Errorf("no VmRSS for pid %d", pid)
	}
	return memory{totalKiB: total, anonKiB: kb["RssAnon"], fileKiB: kb["RssFile"]}, nil
}

// cpuSeconds is the user+system CPU time pid has used, from /proc.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may contain spaces) start at ")".
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parsing /proc/%d/stat", pid)
	}
	const ticks = 100 // USER_HZ on Linux
	return (utime + stime) / ticks, nil
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
