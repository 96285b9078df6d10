// Package health serves the provider's liveness and readiness endpoints.
package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"
)

// Paths served.
const (
	ReadyPath = "/health/ready"
	LivePath  = "/health/live"
)

// Handler answers /health/live while the process runs and /health/ready
// while ready reports true.
func Handler(ready func() bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(LivePath, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc(ReadyPath, func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "not serving the provider socket", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	return mux
}

// Listen binds addr now (so a bad address fails at start-up) and serves h
// until ctx ends. It serves the metrics too.
func Listen(ctx context.Context, addr string, h http.Handler, log *slog.Logger) (stopped <-chan struct{}, err error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("health listener on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("health server stopped", "error", err)
		}
	}()
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	log.Info("serving health endpoints", "addr", lis.Addr().String())
	return done, nil
}

// VaultProbe asks Vault's sys/health every interval and remembers when Vault
// last answered initialized and unsealed.
type VaultProbe struct {
	client   *api.Client
	interval time.Duration
	log      *slog.Logger
	lastGood atomic.Int64 // unix nanoseconds; 0: never
	healthy  atomic.Bool  // the last answer's verdict, to log changes once
}

// NewVaultProbe probes the Vault client talks to.
func NewVaultProbe(client *api.Client, interval time.Duration, log *slog.Logger) *VaultProbe {
	return &VaultProbe{client: client, interval: interval, log: log}
}

// Run probes until ctx ends.
func (p *VaultProbe) Run(ctx context.Context) {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		p.check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *VaultProbe) check(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, max(p.interval, time.Second))
	defer cancel()
	resp, err := p.client.Sys().HealthWithContext(ctx)
	good := err == nil && resp.Initialized && !resp.Sealed
	if good {
		p.lastGood.Store(time.Now().UnixNano())
	}
	if was := p.healthy.Swap(good); was != good || (!good && p.lastGood.Load() == 0 && err != nil) {
		switch {
		case good:
			p.log.Info("vault is healthy", "addr", p.client.Address())
		case err != nil:
			p.log.Warn("vault health check failed: not ready", "addr", p.client.Address(), "error", err)
		default:
			p.log.Warn("vault is sealed or not initialized: not ready", "addr", p.client.Address(), "sealed", resp.Sealed, "initialized", resp.Initialized)
		}
	}
}

// Healthy reports whether Vault answered healthy within maxAge.
func (p *VaultProbe) Healthy(maxAge time.Duration) bool {
	last := p.lastGood.Load()
	return last != 0 && time.Since(time.Unix(0, last)) <= maxAge
}
