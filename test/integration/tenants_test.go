package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestHostileTenantsCannotStallOthers: pods of one namespace send the
// inputs that used to take a node's provider down (templates that spin or
// build gigabytes, object lists over the bound), all at once and again, to
// the real provider and Vault. Each is refused with a code and a message
// naming the object (templates queue for the node's template slots, so the
// last waits for the others); meanwhile another pod's mounts keep
// succeeding with their quiet latency, the provider's memory stays within
// the chart's limit, and a refused list costs no Vault call.
func TestHostileTenantsCannotStallOthers(t *testing.T) {
	metricsAddr := freeAddr(t)
	p := startProvider(t, "-max-objects=4", "-metrics-addr="+metricsAddr)
	hostile := createPod(t, appServiceAccount)
	victim := createPod(t, appServiceAccount)
	spin := "1" + strings.Repeat(",1", 3000)
	attacks := []struct {
		name, objects string
		code          codes.Code
		says          string // a regular expression
	}{
		{"nested ranges", templateObjects(`{{ range split "," "` + spin + `" }}{{ range split "," "` + spin + `" }}{{ end }}{{ end }}`), codes.ResourceExhausted, "steps|of execution"},
		{"range over a number", templateObjects(`{{ with 1000000000000 }}{{ range . }}{{ end }}{{ end }}`), codes.ResourceExhausted, "steps|of execution"},
		{"printf width", templateObjects(`{{ with secret "secret/data/app" }}{{ printf "%999999999s" .Data.data.password }}{{ end }}`), codes.ResourceExhausted, "bytes"},
		{"replaceAll growth", templateObjects(`{{ $a := replaceAll "" "` + strings.Repeat("x", 2000) + `" "` + strings.Repeat("y", 2000) + `" }}{{ replaceAll "" $a $a }}`), codes.ResourceExhausted, "bytes"},
		{"too many objects", objectList(5), codes.InvalidArgument, "5 objects, more than the 4"},
	}
	victimMount := func() (time.Duration, bool) {
		start := time.Now()
		resp, err := p.mount(t, mountCall{pod: victim, params: map[string]string{"roleName": kubeRole, "objects": passwordObject}, tokenAudiences: []string{"vault"}})
		return time.Since(start), err == nil && string(resp.Files[0].Contents) == plantedPassword
	}
	_, ok := victimMount() // logs in: the quiet run is of warm mounts, as the attacked one is
	require.True(t, ok)
	var quiet []time.Duration
	for range 200 {
		took, ok := victimMount()
		require.True(t, ok)
		quiet = append(quiet, took)
	}

	var wg sync.WaitGroup
	var mu sync.Mutex
	var longest time.Duration
	stopSampling := sampleMemory()
	for round := range 2 { // the kubelet retries: each attempt is bounded too
		for _, a := range attacks {
			wg.Go(func() {
				start := time.Now()
				_, err := p.mount(t, mountCall{pod: hostile, params: map[string]string{"roleName": kubeRole, "objects": a.objects}, tokenAudiences: []string{"vault"}})
				took := time.Since(start)
				st := status.Convert(err)
				assert.Equal(t, a.code, st.Code(), "%s (round %d): %s", a.name, round, st.Message())
				assert.Regexp(t, a.says, st.Message(), a.name) // steps, or time when six run at once on two cores
				if a.code == codes.ResourceExhausted {
					assert.Contains(t, st.Message(), `object "x": template: x:1:`, a.name)
				}
				mu.Lock()
				longest = max(longest, took)
				mu.Unlock()
			})
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var attacked []time.Duration
	failures := 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		took, ok := victimMount()
		attacked = append(attacked, took)
		if !ok {
			failures++
		}
	}
	peak := stopSampling()
	t.Logf("hostile mounts: %d, longest %s; the other pod: quiet p99 %s (%d mounts), under attack p99 %s (%d mounts, %d failed); peak memory from the OS %.1f MiB",
		2*len(attacks), longest.Round(time.Millisecond), p99(quiet), len(quiet), p99(attacked), len(attacked), failures, float64(peak)/(1<<20))
	assert.Zero(t, failures, "the other pod was served throughout")
	assert.LessOrEqual(t, p99(attacked), 2*p99(quiet)+10*time.Millisecond, "the other pod's mounts keep their latency (2x, and 10 ms for timer noise)")
	assert.Less(t, longest, time.Minute, "every hostile mount ended, well inside the kubelet's 2 minutes, though the namespace's templates queue behind each other")
	assert.Less(t, peak, uint64(128<<20), "within the chart's memory limit")

	before := vaultCalls(t, metricsAddr)
	_, err := p.mount(t, mountCall{pod: createPod(t, appServiceAccount), params: map[string]string{"roleName": kubeRole, "objects": objectList(5)}, tokenAudiences: []string{"vault"}})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	assert.Equal(t, before, vaultCalls(t, metricsAddr), "a refused list makes no login and no read")
}

// p99 is the 99th percentile of ds.
func p99(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)*99)/100].Round(time.Millisecond)
}

// sampleMemory samples what the Go runtime holds from the OS (the provider
// runs in this process; the race detector's shadow memory is not counted)
// until the returned function is called, which returns the peak. Memory
// the runtime gave back is not held: what earlier tests of this process
// used is given back first.
func sampleMemory() func() uint64 {
	debug.FreeOSMemory()
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if held := m.Sys - m.HeapReleased; held > peak.Load() {
				peak.Store(held)
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return func() uint64 { close(stop); <-done; return peak.Load() }
}

// objectList is n objects reading the same secret.
func objectList(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "- {objectName: o%d, secretPath: secret/data/app, secretKey: password}\n", i)
	}
	return b.String()
}

var vaultRequestLines = regexp.MustCompile(`(?m)^vault_csi_provider_vault_requests_total\{.*\} (\d+)$`)

// vaultCalls is how many calls the provider made to Vault, by its metrics.
func vaultCalls(t *testing.T, metricsAddr string) int {
	t.Helper()
	return sumSamples(t, scrape(t, metricsAddr), vaultRequestLines)
}

// sumSamples adds up the values of the metric lines that samples matches
// (its first group is the value).
func sumSamples(t *testing.T, text string, samples *regexp.Regexp) int {
	t.Helper()
	total := 0
	for _, m := range samples.FindAllStringSubmatch(text, -1) {
		n, err := strconv.Atoi(m[1])
		require.NoError(t, err)
		total += n
	}
	return total
}

// TestMountByteBudget: the Vault answers one mount holds are bounded
// (-mount-max-bytes), whatever the number of objects: three secrets of
// 600 KiB pass one by one and fail together, naming the flag.
func TestMountByteBudget(t *testing.T) {
	var objects string
	for _, k := range []string{"a", "b", "c"} {
		_, err := env.Vault.Root.Logical().Write("secret/data/budget-"+k, map[string]any{"data": map[string]any{"v": strings.Repeat(k, 600<<10)}})
		require.NoError(t, err)
		objects += "- {objectName: " + k + ", secretPath: secret/data/budget-" + k + ", secretKey: v}\n"
	}
	p := startProvider(t, "-mount-max-bytes=1Mi")
	pod := createPod(t, appServiceAccount)
	resp, err := p.mount(t, mountCall{pod: pod, params: map[string]string{"roleName": kubeRole, "objects": "- {objectName: a, secretPath: secret/data/budget-a, secretKey: v}"}, tokenAudiences: []string{"vault"}})
	require.NoError(t, err)
	assert.Len(t, resp.Files[0].Contents, 600<<10)

	_, err = p.mount(t, mountCall{pod: pod, params: map[string]string{"roleName": kubeRole, "objects": objects}, tokenAudiences: []string{"vault"}})
	st := status.Convert(err)
	assert.Equal(t, codes.ResourceExhausted, st.Code(), st.Message())
	assert.Contains(t, st.Message(), "more than 1048576 bytes (the provider's -mount-max-bytes)")
	assert.NotContains(t, st.Message(), "aaaa")
}

// TestMountsInFlightAreBounded: with -mount-concurrency=4, twelve pods of
// one namespace mounting at once through a slow Vault all get their files,
// but the provider never serves more than three of them at once, the
// namespace's share (its mounts_in_flight gauge, read every 10 ms); the
// others wait their turn.
func TestMountsInFlightAreBounded(t *testing.T) {
	slow := startDelayingProxy(t, env.Vault.Addr, 150*time.Millisecond)
	metricsAddr := freeAddr(t)
	p := startProvider(t, "-mount-concurrency=4", "-allow-pod-overrides=vaultAddress", "-metrics-addr="+metricsAddr)
	var reqs []mountCall
	for range 12 {
		reqs = append(reqs, mountCall{pod: createPod(t, appServiceAccount), tokenAudiences: []string{"vault"},
			params: map[string]string{"roleName": kubeRole, "objects": passwordObject, "vaultAddress": slow}})
	}
	inFlight := regexp.MustCompile(`(?m)^vault_csi_provider_mounts_in_flight (\d+)`)
	most, done := 0, make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
			most = max(most, sumSamples(t, scrape(t, metricsAddr), inFlight))
		}
	}()
	var wg sync.WaitGroup
	var ok atomic.Int32
	for _, c := range reqs {
		wg.Go(func() {
			resp, err := p.mount(t, c)
			if assert.NoError(t, err) && string(resp.Files[0].Contents) == plantedPassword {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	close(done)
	<-sampled
	assert.Equal(t, int32(12), ok.Load(), "every pod got its file")
	assert.Equal(t, 3, most, "mounts served at once: one namespace's three quarters of -mount-concurrency")
}

// TestANamespaceCannotTakeEveryLoginSlot: one namespace holds 20 mounts on
// an address that accepts and never answers (a real Vault cannot be made
// to); another namespace's mounts, each logging in (-cache-size=0), take
// about their time alone: its logins do not queue behind the hung ones.
func TestANamespaceCannotTakeEveryLoginSlot(t *testing.T) {
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer hung.Close()
	go func() {
		var held []net.Conn // accepted, never answered
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := hung.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	p := startProvider(t, "-cache-size=0", "-log-level=info", "-allow-pod-overrides=vaultAddress") // as if the hostile class named the address
	victim := createPod(t, appServiceAccount)
	hostile := mountCall{pod: createPod(t, appServiceAccount), params: map[string]string{"roleName": kubeRole, "objects": passwordObject, "vaultAddress": "http://" + hung.Addr().String()}, tokenAudiences: []string{"vault"}}.request(t)
	var attrs map[string]string
	require.NoError(t, json.Unmarshal([]byte(hostile.Attributes), &attrs))
	attrs["csi.storage.k8s.io/pod.namespace"] = "hostile" // its mounts never reach Vault: only the namespace matters
	hostile.Attributes = mustJSON(t, attrs)
	victimMounts := func(n int) time.Duration {
		var took []time.Duration
		for range n {
			start := time.Now()
			resp, err := p.mount(t, mountCall{pod: victim, params: map[string]string{"roleName": kubeRole, "objects": passwordObject}, tokenAudiences: []string{"vault"}})
			took = append(took, time.Since(start))
			require.NoError(t, err)
			require.Equal(t, plantedPassword, string(resp.Files[0].Contents))
		}
		slices.Sort(took)
		return took[len(took)/2]
	}
	victimMounts(3) // warm connections
	alone := victimMounts(20)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			_, err := p.client.Mount(ctx, hostile)
			assert.Equal(t, codes.Canceled, status.Code(err), "the hung mounts wait until the test gives up: %v", err)
		})
	}
	time.Sleep(500 * time.Millisecond) // the hostile logins are in flight
	beside := victimMounts(20)
	cancel()
	wg.Wait()
	t.Logf("another namespace's mount (login and read), median of 20: alone %s, beside 20 hung mounts %s (%.2fx)", alone, beside, float64(beside)/float64(alone))
	assert.Less(t, beside, 2*alone+10*time.Millisecond, "within 2x of its time alone")
}
