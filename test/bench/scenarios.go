package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
	"golang.org/x/sync/errgroup"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/vaultcsi/vault-csi-provider/config"
	"github.com/vaultcsi/vault-csi-provider/test/rig"
)

// kvObjects lists n objects on n distinct KV v2 paths.
func kvObjects(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "- {objectName: s%02d, secretPath: secret/data/bench/s%02d, secretKey: value}\n", i, i)
	}
	return b.String()
}

const dbObjects = `
- {objectName: username, secretPath: database/creds/` + benchDBRole + `, secretKey: username}
- {objectName: password, secretPath: database/creds/` + benchDBRole + `, secretKey: password}
`

// requests creates n pods on the node and the driver's MountRequest for
// each, with a kubelet token for audience vault.
func (b *bench) requests(ctx context.Context, n int, prefix, objects string) ([]*v1alpha1.MountRequest, error) {
	reqs := make([]*v1alpha1.MountRequest, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range n {
		g.Go(func() error {
			pod, err := b.r.CreatePod(gctx, prefix, rig.AppServiceAccount, nodeName)
			if err != nil {
				return err
			}
			tok, err := b.r.KubeletToken(gctx, pod, "vault")
			if err != nil {
				return err
			}
			reqs[i], err = rig.MountRequest(pod, b.classParams(objects), map[string]rig.Token{"vault": tok}, false, "")
			return err
		})
	}
	return reqs, g.Wait()
}

// classParams are a class's for objects: the rig's Vault is named in the
// class, so that any provider on -socket reaches it with no setting of its own.
func (b *bench) classParams(objects string) map[string]string {
	p := map[string]string{"roleName": rig.KubeRole, "objects": objects, "vaultAddress": b.r.Vault.Addr}
	if b.r.Vault.CAFile != "" {
		p["vaultCACertPath"] = b.r.Vault.CAFile
	}
	return p
}

func timedMount(ctx context.Context, c v1alpha1.CSIDriverProviderClient, req *v1alpha1.MountRequest) (time.Duration, error) {
	start := time.Now()
	_, err := c.Mount(ctx, req)
	return time.Since(start), err
}

// mountAll mounts every request with at most limit in flight.
func mountAll(ctx context.Context, c v1alpha1.CSIDriverProviderClient, reqs []*v1alpha1.MountRequest, limit int) (latencies, int) {
	lat := make(latencies, len(reqs))
	var failed sync.Map
	var wg sync.WaitGroup
	sem := make(chan struct{}, limit)
	for i, req := range reqs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			d, err := timedMount(ctx, c, req)
			lat[i] = d
			if err != nil {
				failed.Store(i, err)
			}
		})
	}
	wg.Wait()
	n := 0
	failed.Range(func(_, v any) bool {
		if n == 0 {
			fmt.Printf("bench: first failure: %v\n", v)
		}
		n++
		return true
	})
	return lat, n
}

func (b *bench) audit(path string) int {
	n, err := b.r.AuditRequests(path)
	if err != nil {
		return -1
	}
	return n
}

func (b *bench) rssAtRest(context.Context) error {
	if b.pid == 0 {
		b.add("at rest", "provider RSS", "not measured (no -pid)", "")
		return nil
	}
	m, err := rss(b.pid)
	if err != nil {
		return err
	}
	b.add("at rest", "provider RSS", m.String(), "")
	return nil
}

// warmLatency times mounts of 1, 10 and 50 objects for one warm identity,
// and the same reads made directly against Vault (the floor), in -runs
// rounds; each round times every size, -block mounts and then as many
// rounds of reads in turn, so that a slow moment of the machine falls on
// provider and floor alike. Each row times the same number of reads
// (-reads), so the shortest mounts get the most samples: a p99 of 200
// one-object mounts is their 2nd or 3rd slowest, set by whichever process
// the kernel ran at that moment, while 50 reads in a mount average such
// moments out. It counts the apiserver's requests over all of them.
func (b *bench) warmLatency(ctx context.Context) error {
	sizes := []int{1, 10, 50}
	reqs := map[int]*v1alpha1.MountRequest{}
	for _, n := range sizes {
		r, err := b.requests(ctx, 1, "warm", kvObjects(n))
		if err != nil {
			return err
		}
		reqs[n] = r[0]
	}
	floor, err := newFloor(ctx, b.r, reqs[1])
	if err != nil {
		return err
	}
	for _, n := range sizes {
		for range 10 { // warm up: login, connections, HMAC key
			if _, err := b.client.Mount(ctx, reqs[n]); err != nil {
				return err
			}
		}
	}
	type result struct {
		lat, par, seq latencies
		ratios        []float64
		cpu           float64
		cpuRuns       []float64 // CPU-s per 1,000 mounts, each run
		vaultCPU      float64   // Vault's, while the provider's mounts ran
		ratioRuns     []float64 // provider CPU / Vault CPU per read, each run
	}
	results := map[int]*result{}
	var timeline *sampleLog
	if b.o.keep {
		timeline = &sampleLog{}
	}
	api0, apiErr := b.r.APIRequests(ctx)
	mounts := 0
	for run := range b.o.runs {
		for _, n := range sizes {
			iterations := warmIterations(b.o.reads, n)
			res := results[n]
			if res == nil {
				res = &result{}
				results[n] = res
			}
			// The provider's CPU over the whole row, reads included: what
			// a mount leaves to run after it (the collector) counts too.
			cpu0, _ := cpuSeconds(b.pid)
			block := iterations
			if b.o.block > 0 {
				block = b.o.block
			}
			var lat, par, seq latencies
			vaultCPU := 0.0
			for done := 0; done < iterations; done += block {
				k := min(block, iterations-done)
				v0, _ := cpuSeconds(b.r.Vault.Pid())
				for range k {
					d, err := timedMount(ctx, b.client, reqs[n])
					if err != nil {
						return err
					}
					lat = append(lat, d)
					timeline.add(run, n, "provider", d)
				}
				v1, _ := cpuSeconds(b.r.Vault.Pid())
				vaultCPU += v1 - v0
				p, s, err := floor.measure(ctx, n, k, func(d time.Duration) { timeline.add(run, n, "floor", d) })
				if err != nil {
					return err
				}
				par, seq = append(par, p...), append(seq, s...)
			}
			cpu1, _ := cpuSeconds(b.pid)
			mounts += iterations
			res.lat, res.par, res.seq = append(res.lat, lat...), append(res.par, par...), append(res.seq, seq...)
			res.ratios = append(res.ratios, float64(lat.percentile(99))/float64(par.percentile(99)))
			res.cpu += cpu1 - cpu0
			res.cpuRuns = append(res.cpuRuns, (cpu1-cpu0)/float64(iterations)*1000)
			res.vaultCPU += vaultCPU
			res.ratioRuns = append(res.ratioRuns, (cpu1-cpu0)/vaultCPU)
		}
	}
	api1, apiErr1 := b.r.APIRequests(ctx)
	if err := timeline.save(filepath.Join(b.dir, "warm-samples.csv")); err != nil {
		return err
	}
	for _, n := range sizes {
		res := results[n]
		scenario := fmt.Sprintf("warm mount, %d object(s)", n)
		b.add(scenario, fmt.Sprintf("provider latency, all runs (%d × %d mounts)", b.o.runs, len(res.lat)/b.o.runs), res.lat.summary(), "")
		b.add(scenario, "floor: direct parallel reads (8), all runs", res.par.summary(), "")
		b.add(scenario, "direct sequential reads, all runs", res.seq.summary(), "")
		b.add(scenario, fmt.Sprintf("provider p99 / floor p99, each of %d runs", b.o.runs), ratios(res.ratios), "")
		b.add(scenario, "provider p99 / floor p99, median · worst run", fmt.Sprintf("%.2f× · %.2f×", median(res.ratios), slices.Max(res.ratios)), "≤ 1.2×")
		if b.pid != 0 {
			b.add(scenario, fmt.Sprintf("provider CPU per 1,000 mounts, each of %d runs", b.o.runs), cpuFigures(res.cpuRuns), "")
			b.add(scenario, "provider CPU per 1,000 mounts", fmt.Sprintf("%.2f CPU-s", res.cpu/float64(len(res.lat))*1000), "")
			reads := float64(len(res.lat) * n)
			b.add(scenario, "Vault CPU per read (during the mounts)", fmt.Sprintf("%.0f µs", res.vaultCPU/reads*1e6), "")
			b.add(scenario, fmt.Sprintf("provider CPU per read / Vault's, each of %d runs", b.o.runs), ratios(res.ratioRuns), "")
			b.add(scenario, "provider CPU per read / Vault's", fmt.Sprintf("%.2f× (%.0f µs per read)", res.cpu/res.vaultCPU, res.cpu/reads*1e6), cpuGoals[n])
		}
		if err := b.profileWarmMounts(ctx, fmt.Sprintf("warm-%d", n), reqs[n]); err != nil {
			return err
		}
	}
	if apiErr == nil && apiErr1 == nil {
		// Only the resources a mount can touch count: the apiserver's own
		// controllers renew its identity lease every 10 s and check
		// services now and then.
		touched, other, what := 0, 0, []string{}
		for k, n := range api1 {
			if d := n - api0[k]; d > 0 {
				what = append(what, fmt.Sprintf("%s %d", k, d))
				_, resource, _ := strings.Cut(k, " ")
				if slices.Contains(mountResources, resource) {
					touched += d
				} else {
					other += d
				}
			}
		}
		slices.Sort(what)
		fmt.Fprintf(os.Stderr, "bench: apiserver requests during the warm mounts: %s\n", strings.Join(what, ", "))
		b.add("warm mounts, all sizes", "apiserver requests per mount (pods, secrets, service accounts, token reviews, classes)",
			fmt.Sprintf("%.3f (%d over %d mounts; %d others in that time were the apiserver's own)", float64(touched)/float64(mounts), touched, mounts, other), "0")
	}
	return nil
}

// warmIterations is how many mounts of n objects a warm-latency run times
// for reads Vault reads: at least 200.
func warmIterations(reads, n int) int { return max(reads/n, 200) }

// mountResources are what a mount could make the apiserver serve: the
// provider's pod and class watches, the HMAC key Secret, TokenRequests, and
// Vault's TokenReviews for a login.
var mountResources = []string{"pods", "secrets", "serviceaccounts", "tokenreviews", "secretproviderclasses"}

// cpuGoals are printed, not gated: the provider's CPU is approached by
// doing less per mount, and a share of Vault's holds across machines.
var cpuGoals = map[int]string{1: "goal ≤ 0.25× (not gated)"}

func ratios(r []float64) string {
	parts := make([]string, len(r))
	for i, x := range r {
		parts[i] = fmt.Sprintf("%.2f×", x)
	}
	return strings.Join(parts, " ")
}

func cpuFigures(r []float64) string {
	parts := make([]string, len(r))
	for i, x := range r {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(parts, " ")
}

func median(r []float64) float64 {
	s := slices.Clone(r)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// floor reads the bench secrets straight from Vault with a token of the
// same role, in parallel (as the provider does) and one after another.
type floor struct{ client *api.Client }

func newFloor(ctx context.Context, r *rig.Rig, req *v1alpha1.MountRequest) (*floor, error) {
	cfg := api.DefaultConfig()
	cfg.Address = r.Vault.Addr
	if r.Vault.CAFile != "" {
		if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: r.Vault.CAFile}); err != nil {
			return nil, err
		}
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	tok, err := tokenOf(req)
	if err != nil {
		return nil, err
	}
	secret, err := c.Logical().WriteWithContext(ctx, "auth/kubernetes/login", map[string]any{"role": rig.KubeRole, "jwt": tok})
	if err != nil {
		return nil, err
	}
	c.SetToken(secret.Auth.ClientToken)
	return &floor{client: c}, nil
}

func (f *floor) read(ctx context.Context, i int) error {
	resp, err := f.client.Logical().ReadRawWithContext(ctx, fmt.Sprintf("secret/data/bench/s%02d", i))
	if resp != nil {
		_ = resp.Body.Close()
	}
	return err
}

// measure times iterations rounds of n reads, in parallel and one after
// another; each parallel round is also handed to timed.
func (f *floor) measure(ctx context.Context, n, iterations int, timed func(time.Duration)) (par, seq latencies, err error) {
	for range iterations {
		start := time.Now()
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(8)
		for i := range n {
			g.Go(func() error { return f.read(gctx, i) })
		}
		if err := g.Wait(); err != nil {
			return nil, nil, err
		}
		par = append(par, time.Since(start))
		timed(par[len(par)-1])
		start = time.Now()
		for i := range n {
			if err := f.read(ctx, i); err != nil {
				return nil, nil, err
			}
		}
		seq = append(seq, time.Since(start))
	}
	return par, seq, nil
}

// burstAndIdentities fills the provider's cache to the first -identities
// count and reads its memory, fires a burst of new pods at once, fills the
// cache to the last count and reads its memory again. Pods are created as
// they are needed: the provider watches every pod of its node, so a pod
// created early would weigh on the first reading.
func (b *bench) burstAndIdentities(ctx context.Context) error {
	counts := b.o.identities
	total := counts[len(counts)-1]
	cached := 0
	var first struct{ anonKiB float64 }
	fill := func(n int) error {
		reqs, err := b.requests(ctx, n-cached, "id", kvObjects(1))
		if err != nil {
			return err
		}
		if _, failed := mountAll(ctx, b.client, reqs, 32); failed > 0 {
			return fmt.Errorf("%d mounts failed filling the cache", failed)
		}
		cached = n
		if b.pid == 0 {
			return nil
		}
		time.Sleep(10 * time.Second) // let the collector and the scavenger settle
		m, err := rss(b.pid)
		if err != nil {
			return err
		}
		target := "≤ 40 MiB"
		if n > 1000 {
			target = "≤ 64 MiB"
		}
		scenario := fmt.Sprintf("%d cached identities", n)
		b.printMemStats(ctx, scenario)
		b.add(scenario, "provider RSS, 10 s after the last mount", m.String(), target)
		if first.anonKiB == 0 {
			first.anonKiB = m.anonKiB
			return nil
		}
		b.add(scenario, fmt.Sprintf("anonymous memory per identity (%d → %d)", counts[0], n),
			fmt.Sprintf("%.2f KiB", (m.anonKiB-first.anonKiB)/float64(n-counts[0])), "≤ 4 KiB")
		return nil
	}
	for _, n := range counts[:len(counts)-1] {
		if err := fill(n); err != nil {
			return err
		}
	}
	reqs, err := b.requests(ctx, b.o.burst, "burst", kvObjects(1))
	if err != nil {
		return err
	}
	if err := b.burst(ctx, reqs); err != nil {
		return err
	}
	cached += b.o.burst
	if err := fill(total); err != nil {
		return err
	}
	return b.fetchProfile(ctx, fmt.Sprintf("heap-%d", total), "heap?gc=1", "inuse_space")
}

// burst mounts new pods all at once.
func (b *bench) burst(ctx context.Context, reqs []*v1alpha1.MountRequest) error {
	logins := b.audit("auth/kubernetes/login")
	start := time.Now()
	lat, failed := mountAll(ctx, b.client, reqs, len(reqs))
	wall := time.Since(start)
	scenario := fmt.Sprintf("burst: %d new pods at once", len(reqs))
	b.add(scenario, "succeeded", fmt.Sprintf("%d/%d", len(reqs)-failed, len(reqs)), "all")
	b.add(scenario, "throughput", fmt.Sprintf("%.0f mounts/s (%s wall)", float64(len(reqs))/wall.Seconds(), wall.Round(time.Millisecond)), "")
	b.add(scenario, "mount latency", lat.summary(), "")
	b.add(scenario, "Vault logins (audit log)", fmt.Sprint(b.audit("auth/kubernetes/login")-logins), fmt.Sprintf("= new identities (%d)", len(reqs)))
	if most, err := b.r.AuditConcurrency("auth/kubernetes/login", start); err == nil {
		b.add(scenario, "most logins Vault served at once (audit log)", fmt.Sprint(most), fmt.Sprintf("≤ -login-concurrency (%d)", b.loginConcurrency()))
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d burst mounts failed", failed, len(reqs))
	}
	return nil
}

// loginConcurrency is the bound the provider under test was started with.
func (b *bench) loginConcurrency() int {
	n := config.DefaultLoginConcurrency
	for _, a := range b.o.providerArgs {
		if v, ok := strings.CutPrefix(a, "-login-concurrency="); ok {
			_, _ = fmt.Sscan(v, &n)
		}
	}
	return n
}

// rotation: pods poll a database secret every 2 minutes of simulated time.
func (b *bench) rotation(ctx context.Context) error {
	return b.rotate(ctx, b.client, "rotation", b.o.rotationPods, b.o.rotationPolls, true)
}

// rotationUncached runs a smaller rotation against the same provider with
// its caches off (-cache-size=0): every poll logs in and leases anew.
func (b *bench) rotationUncached(ctx context.Context) error {
	if b.o.socket != "" {
		return nil
	}
	client, _, stop, err := b.startAnother(ctx, "uncached", []string{"-cache-size=0"})
	if err != nil {
		return err
	}
	defer stop()
	return b.rotate(ctx, client, "baseline, -cache-size=0 (no caching)", min(50, b.o.rotationPods), min(5, b.o.rotationPolls), false)
}

func (b *bench) rotate(ctx context.Context, client v1alpha1.CSIDriverProviderClient, name string, pods, polls int, targets bool) error {
	target := func(t string) string {
		if targets {
			return t
		}
		return ""
	}
	reqs, err := b.requests(ctx, pods, "rotation", dbObjects)
	if err != nil {
		return err
	}
	logins, leases, renewals := b.audit("auth/kubernetes/login"), b.audit("database/creds/"+benchDBRole), b.audit("sys/leases/renew")
	interval := time.Duration(float64(2*time.Minute) / b.o.compression)
	failures := 0
	var lat latencies
	for range polls {
		start := time.Now()
		l, failed := mountAll(ctx, client, reqs, 32)
		lat = append(lat, l...)
		failures += failed
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(start.Add(interval))):
		}
	}
	created := b.audit("database/creds/"+benchDBRole) - leases
	scenario := fmt.Sprintf("%s: %d pods × %d polls (%s simulated)", name, pods, polls, time.Duration(polls)*2*time.Minute)
	b.add(scenario, "mounts failed", fmt.Sprintf("%d of %d", failures, pods*polls), "0")
	b.add(scenario, "mount latency", lat.summary(), "")
	b.add(scenario, "Vault logins (audit log)", fmt.Sprint(b.audit("auth/kubernetes/login")-logins), target(fmt.Sprintf("= distinct identities (%d)", pods)))
	b.add(scenario, "leases created (audit log)", fmt.Sprintf("%d (%.2f per pod)", created, float64(created)/float64(pods)), target("≤ 1 per pod per lease lifetime"))
	b.add(scenario, "lease renewals (audit log)", fmt.Sprint(b.audit("sys/leases/renew")-renewals), "")
	if failures > 0 {
		return errors.New("rotation mounts failed")
	}
	return nil
}

// tokenOf returns the service-account token a MountRequest carries.
func tokenOf(req *v1alpha1.MountRequest) (string, error) {
	var attrs map[string]string
	if err := jsonUnmarshal(req.Attributes, &attrs); err != nil {
		return "", err
	}
	var tokens map[string]rig.Token
	if err := jsonUnmarshal(attrs["csi.storage.k8s.io/serviceAccount.tokens"], &tokens); err != nil {
		return "", err
	}
	return tokens["vault"].Token, nil
}
