// Command bench measures a Secrets Store CSI provider the way the driver
// uses it, against a real Vault dev server (on its own TLS listener unless
// -vault-tls=false), a real kube-apiserver (pod-bound
// service-account tokens, TokenReview logins) and a real PostgreSQL, and
// prints one table. Vault logins, leases and reads are counted from Vault's
// own audit log; memory and CPU from /proc, Vault's CPU too, so that the
// provider's CPU per read is also given as a share of Vault's.
//
// By default it builds and starts this repository's provider; -socket points
// it at any other provider's socket instead (then RSS and CPU are not
// measured unless -pid names the process).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	var o options
	flag.StringVar(&o.socket, "socket", "", "an already running provider's socket (default: build and start this repository's provider)")
	flag.IntVar(&o.pid, "pid", 0, "with -socket: the provider's process id, for RSS and CPU")
	flag.IntVar(&o.reads, "reads", 10000, "Vault reads per warm-latency row and run: a row of n objects times reads/n mounts (at least 200), and its floor as many rounds of reads")
	flag.IntVar(&o.runs, "runs", 5, "warm-latency runs (each times every size, provider and floor)")
	flag.IntVar(&o.block, "block", 50, "warm mounts timed before as many rounds of the floor's reads, in turn through a run, so that a slow moment of the machine falls on both (0: all of a run's mounts, then all of its reads)")
	flag.IntVar(&o.burst, "burst", 5000, "new pods mounting at once in the burst")
	o.identities = []int{1000, 10000}
	flag.Func("identities", "distinct pod identities cached when RSS is read, comma-separated and increasing; the burst's pods count towards the last (default 1000,10000)", func(v string) error {
		o.identities = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 || len(o.identities) > 0 && n <= o.identities[len(o.identities)-1] {
				return fmt.Errorf("%q: want increasing counts, e.g. 1000,10000", v)
			}
			o.identities = append(o.identities, n)
		}
		return nil
	})
	flag.IntVar(&o.rotationPods, "rotation-pods", 200, "pods in the rotation simulation")
	flag.IntVar(&o.rotationPolls, "rotation-polls", 15, "rotation polls per pod (one every 2 minutes of simulated time)")
	flag.IntVar(&o.restartPods, "restart-pods", 1000, "pods rotating while the provider restarts (0: no restart row)")
	flag.Float64Var(&o.compression, "compression", 60, "simulated seconds per real second in the rotation simulation")
	flag.Func("provider-arg", "extra flag for the provider this bench starts (repeatable), e.g. -provider-arg=-memory-limit=48MiB", func(v string) error {
		o.providerArgs = append(o.providerArgs, v)
		return nil
	})
	names := scenarioNames()
	flag.Func("scenarios", "the rows to run, comma-separated, from "+strings.Join(names, ",")+" (default all)", func(v string) error {
		o.scenarios = map[string]bool{}
		for _, f := range strings.Split(v, ",") {
			f = strings.TrimSpace(f)
			if !slices.Contains(names, f) {
				return fmt.Errorf("%q: want names from %s", f, strings.Join(names, ","))
			}
			o.scenarios[f] = true
		}
		return nil
	})
	flag.Func("provider-env", "environment variable for the providers this bench starts (repeatable), e.g. -provider-env=GODEBUG=gctrace=1", func(v string) error {
		if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
			return fmt.Errorf("%q: want NAME=VALUE", v)
		}
		o.providerEnv = append(o.providerEnv, v)
		return nil
	})
	flag.BoolVar(&o.vaultTLS, "vault-tls", true, "serve Vault on its own TLS listener, as production Vaults are (false: plain http)")
	flag.BoolVar(&o.keep, "keep", false, "keep the bench's directory (the providers' logs, Vault's audit log, every warm sample with its time in warm-samples.csv) and print its path")
	flag.StringVar(&o.profile, "profile", "", "build the provider with its profiles served and save heap, CPU and allocation profiles in this directory (printing their top entries)")
	flag.DurationVar(&o.profileFor, "profile-for", 10*time.Second, "how long each CPU and allocation profile of -profile runs (back-to-back warm mounts)")
	flag.Parse()
	if last := o.identities[len(o.identities)-1]; len(o.identities) < 2 || o.identities[len(o.identities)-2]+o.burst > last {
		fmt.Fprintf(os.Stderr, "bench: -identities needs two or more counts, the last at least the one before it plus -burst (%d)\n", o.burst)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
