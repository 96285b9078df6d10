// Package app wires the provider's parts together from its flags: the process
// that cmd/vault-csi-provider runs, and that tests run in-process.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"runtime"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"time"

	"github.com/vaultcsi/vault-csi-provider/auth"
	"github.com/vaultcsi/vault-csi-provider/config"
	"github.com/vaultcsi/vault-csi-provider/fair"
	"github.com/vaultcsi/vault-csi-provider/health"
	"github.com/vaultcsi/vault-csi-provider/kube"
	"github.com/vaultcsi/vault-csi-provider/lease"
	"github.com/vaultcsi/vault-csi-provider/metrics"
	"github.com/vaultcsi/vault-csi-provider/provider"
	"github.com/vaultcsi/vault-csi-provider/provider/spc"
	"github.com/vaultcsi/vault-csi-provider/vault"
)

// Version is set at build time with -ldflags "-X github.com/vaultcsi/vault-csi-provider/app.Version=...".
var Version = "dev"

const (
	// mountTimeout keeps every mount well inside the kubelet's 2 minutes.
	mountTimeout = 90 * time.Second
	// drainTimeout is how long in-flight mounts may take after SIGTERM.
	drainTimeout = 30 * time.Second
	// leaseCacheFactor: leased responses kept per cached token.
	leaseCacheFactor = 8
)

// Run starts the provider with args and serves until ctx ends.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	proc, err := config.Parse(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if proc.PrintVersion {
		_, err := fmt.Fprintf(stdout, "%s %s (%s)\n", provider.RuntimeName, Version, runtime.Version())
		return err
	}
	log := newLogger(proc, stderr)
	log.Info("starting", "version", Version, "vault_addr", proc.Vault.Address, "auth_mount", proc.Vault.AuthMount)
	srv, m, clients, err := build(ctx, proc, getenv, log)
	if err != nil {
		return err
	}
	var serving atomic.Bool
	ready, err := readiness(ctx, proc, clients, &serving, log.With("component", "health"))
	if err != nil {
		return err
	}
	stop, err := listenHTTP(ctx, proc, ready, m, log)
	defer stop()
	if err != nil {
		return err
	}
	return provider.Serve(ctx, sockets(proc, srv), &serving, drainTimeout)
}

// sockets are the provider names served: each its own socket and dialect,
// one mount flow, cache and set of bounds behind them all.
func sockets(proc config.Process, srv *provider.Server) []provider.Socket {
	var out []provider.Socket
	for _, s := range []struct {
		path    string
		dialect spc.Dialect
	}{{proc.Endpoint, spc.Vault}, {proc.OpenBaoEndpoint, spc.OpenBao}} {
		if s.path == "" {
			continue
		}
		named := *srv
		named.Parser.Dialect = s.dialect
		out = append(out, provider.Socket{Path: s.path, Server: &named})
	}
	return out
}

// build connects to Kubernetes, starts the watches, assembles the server.
func build(ctx context.Context, proc config.Process, getenv func(string) string, log *slog.Logger) (*provider.Server, *metrics.Metrics, *vault.Clients, error) {
	overrides, err := provider.NewOverridePolicy(proc.AllowPodOverrides)
	if err != nil {
		return nil, nil, nil, err
	}
	kubeClients, namespace, err := kube.Connect(proc.Kubeconfig, getenv)
	kubeClient := kubeClients.Core
	switch {
	case errors.Is(err, kube.ErrNoKubernetes):
		log.Warn("running without Kubernetes access: no TokenRequest fallback, per-process version key", "reason", err)
	case err != nil:
		return nil, nil, nil, err
	}
	keys, err := kube.NewHMACKey(kubeClient, namespace, proc.HMACSecretName, log.With("component", "hmac-key"))
	if err != nil {
		return nil, nil, nil, err
	}
	if err := keys.Watch(ctx); err != nil {
		return nil, nil, nil, err
	}
	m := metrics.New()
	sessions, leases := newCaches(proc, kubeClient, m, log)
	clients := vault.NewClients(proc.VaultTimeout)
	clients.Log = log.With("component", "vault")
	clients.Reach = vault.Reach{Allowed: proc.AllowedVaultAddresses}
	clients.TLSFileDirs = proc.TLSFileDirs
	directory, err := watch(ctx, proc, kubeClients, sessions, leases, &overrides, log)
	if err != nil {
		return nil, nil, nil, err
	}
	srv := &provider.Server{
		Mounter: &provider.Mounter{
			Defaults:        proc.Vault,
			Clients:         clients,
			Sessions:        sessions,
			Keys:            keys,
			Leases:          leases,
			Metrics:         m,
			Overrides:       overrides,
			AnswersMaxBytes: answersMaxBytes(proc.AnswersMaxBytes),
			Pods:            directory,
			Log:             log.With("component", "mount"),
			ReadConcurrency: proc.ReadConcurrency,
			MountMaxBytes:   proc.MountMaxBytes,
		},
		Log:              log.With("component", "server"),
		BuildVersion:     Version,
		MountTimeout:     mountTimeout,
		Parser:           spc.NewParser(proc.MaxObjects),
		MountConcurrency: proc.MountConcurrency,
		Mounts:           fair.NewSlots(proc.MountConcurrency, fair.Share(proc.MountConcurrency)),
	}
	return srv, m, clients, nil
}

// newCaches makes the token and lease caches (none when -cache-size is 0).
func newCaches(proc config.Process, kubeClient *kube.Core, m *metrics.Metrics, log *slog.Logger) (*auth.Sessions, *lease.Cache) {
	sessions := auth.NewSessions(proc.CacheSize, proc.VaultTimeout)
	sessions.Metrics = m
	sessions.Tokens = auth.TokenSource{Kube: minter(kubeClient), Fallback: proc.TokenRequestFallback}
	sessions.Log = log.With("component", "auth")
	sessions.LimitLogins(proc.LoginConcurrency)
	var leases *lease.Cache
	if proc.CacheSize > 0 {
		leases = lease.NewCache(proc.CacheSize*leaseCacheFactor, proc.LeaseCacheMaxBytes, proc.LeaseMinRemaining)
		leases.Metrics = m
	}
	return sessions, leases
}

// watch starts the watches of this node's pods and of the classes.
func watch(ctx context.Context, proc config.Process, kc kube.Clients, sessions *auth.Sessions, leases *lease.Cache, overrides *provider.OverridePolicy, log *slog.Logger) (provider.PodDirectory, error) {
	var directory provider.PodDirectory
	pods, err := watchPods(ctx, proc, kc.Core, sessions, leases, log.With("component", "pods"))
	if err != nil {
		return nil, err
	}
	if pods != nil {
		directory = podDirectory{pods}
		if proc.RenewInterval > 0 {
			go renewInBackground(ctx, proc.RenewInterval, proc.VaultTimeout, sessions, leases)
		}
	}
	if kc.Dynamic != nil {
		classes, err := kube.WatchClasses(ctx, kc.Dynamic, log.With("component", "classes"))
		if err != nil {
			return nil, err
		}
		overrides.Classes = classes.Parameters
	}
	return directory, nil
}

// listenHTTP serves health and metrics (empty address: off) until stop.
func listenHTTP(ctx context.Context, proc config.Process, ready func() bool, m *metrics.Metrics, log *slog.Logger) (stop func(), err error) {
	var stops []func()
	stop = func() {
		for _, s := range stops {
			s()
		}
	}
	for _, l := range []struct{ name, addr string }{{"health", proc.HealthAddr}, {"metrics", proc.MetricsAddr}} {
		if l.addr == "" {
			continue
		}
		mux := http.NewServeMux()
		if l.name == "health" {
			mux.Handle("/health/", health.Handler(ready))
		} else {
			mux.Handle("/metrics", m.Handler())
		}
		listenCtx, stopListener := context.WithCancel(ctx)
		stopped, err := health.Listen(listenCtx, l.addr, mux, log.With("component", l.name))
		if err != nil {
			stopListener()
			return stop, err
		}
		stops = append(stops, func() { stopListener(); <-stopped })
	}
	return stop, nil
}

// readiness is true while the socket is served and, when the operator set a
// Vault address, Vault answered healthy recently.
func readiness(ctx context.Context, proc config.Process, clients *vault.Clients, serving *atomic.Bool, log *slog.Logger) (func() bool, error) {
	if proc.Vault.Address == config.DefaultVaultAddress {
		return serving.Load, nil
	}
	var probes []*health.VaultProbe
	for _, addr := range config.SplitAddresses(proc.Vault.Address) {
		cfg := proc.Vault
		cfg.Address = addr
		client, err := clients.Get(cfg)
		if err != nil {
			return nil, err
		}
		probe := health.NewVaultProbe(client.API(), proc.VaultHealthInterval, log)
		go probe.Run(ctx)
		probes = append(probes, probe)
	}
	return func() bool {
		return serving.Load() && slices.ContainsFunc(probes, func(p *health.VaultProbe) bool { return p.Healthy(3 * proc.VaultHealthInterval) })
	}, nil
}

// watchPods revokes deleted pods' Vault tokens, and so their leases.
func watchPods(ctx context.Context, proc config.Process, client *kube.Core, sessions *auth.Sessions, leases *lease.Cache, log *slog.Logger) (*kube.Pods, error) {
	switch {
	case proc.NodeName == "":
		log.Warn("no -node-name (NODE_NAME): Vault tokens and leases of deleted pods are left to expire instead of being revoked, none is renewed in the background, and mount requests' pod attributes are not checked")
		return nil, nil
	case client == nil:
		log.Warn("no Kubernetes access: Vault tokens and leases of deleted pods are left to expire instead of being revoked, none is renewed in the background, and mount requests' pod attributes are not checked")
		return nil, nil
	}
	gone := func(uid string) {
		n := sessions.RetirePod(uid) // revoked by a few workers, not on the watch's goroutine
		if leases != nil {
			leases.ForgetPod(uid)
		}
		if n > 0 {
			log.Info("revoking the Vault tokens and leases of a deleted pod (failures count in vault_requests_total{operation=\"token_revoke\"})", "pod_uid", uid, "tokens", n)
		}
	}
	return kube.WatchPods(ctx, client, proc.NodeName, gone, log)
}

// minter is core as the token source's minter: nil without Kubernetes
// access (an interface holding a nil *kube.Core would not be nil).
func minter(core *kube.Core) auth.Minter {
	if core == nil {
		return nil
	}
	return core
}

// podDirectory is kube.Pods as the mount flow reads it.
type podDirectory struct{ pods *kube.Pods }

func (d podDirectory) Synced() bool { return d.pods.Synced() }

func (d podDirectory) Lookup(uid string) (auth.Pod, bool) {
	p, ok := d.pods.Lookup(uid)
	return auth.Pod{Namespace: p.Namespace, Name: p.Name, UID: p.UID, ServiceAccount: p.ServiceAccount}, ok
}

// renewInBackground keeps live pods' tokens and leases renewed.
func renewInBackground(ctx context.Context, every, timeout time.Duration, sessions *auth.Sessions, leases *lease.Cache) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		passCtx, cancel := context.WithTimeout(ctx, timeout)
		sessions.RenewDue(passCtx)
		if leases != nil {
			leases.RenewDue(passCtx)
		}
		cancel()
	}
}

func newLogger(proc config.Process, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: proc.LogLevel}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if proc.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(h)
}

// answersMaxBytes is -answers-max-bytes, by default a quarter of the
// memory limit the chart gives the runtime (GOMEMLIMIT).
func answersMaxBytes(flag int64) int64 {
	if limit := debug.SetMemoryLimit(-1); flag == 0 && limit < math.MaxInt64 {
		return max(limit/4, 2<<20)
	}
	return flag // 0: provider.DefaultAnswersMaxBytes
}
