// Command bench measures a Secrets Store CSI provider the way the driver
// uses it, against a real Vault dev server, a real kube-apiserver (pod-bound
// service-account tokens, TokenReview logins) and a real PostgreSQL, and
// prints one table. Vault logins, leases and reads are counted from Vault's
// own audit log; memory and CPU from /proc.
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
	"syscall"
)

func main() {
	var o options
	flag.StringVar(&o.socket, "socket", "", "an already running provider's socket (default: build and start this repository's provider)")
	flag.IntVar(&o.pid, "pid", 0, "with -socket: the provider's process id, for RSS and CPU")
	flag.IntVar(&o.iterations, "iterations", 200, "timed mounts per warm-latency row")
	flag.IntVar(&o.burst, "burst", 500, "pods mounting at once in the burst")
	flag.IntVar(&o.identities, "identities", 1000, "distinct pod identities cached before RSS is read")
	flag.IntVar(&o.rotationPods, "rotation-pods", 200, "pods in the rotation simulation")
	flag.IntVar(&o.rotationPolls, "rotation-polls", 15, "rotation polls per pod (one every 2 minutes of simulated time)")
	flag.Float64Var(&o.compression, "compression", 60, "simulated seconds per real second in the rotation simulation")
	flag.Func("provider-arg", "extra flag for the provider this bench starts (repeatable), e.g. -provider-arg=-memory-limit=48MiB", func(v string) error {
		o.providerArgs = append(o.providerArgs, v)
		return nil
	})
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
