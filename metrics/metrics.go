// Package metrics exposes what the provider does as Prometheus metrics.
// Every label has a small, fixed set of values: no pod names, no paths, no
// roles, nothing a pod author controls.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "vault_csi_provider"

// Metrics holds the provider's collectors on a registry of its own.
type Metrics struct {
	registry      *prometheus.Registry
	mounts        *prometheus.CounterVec
	mountDuration *prometheus.HistogramVec
	inFlight      prometheus.Gauge
	objectBytes   prometheus.Counter
	vaultRequests *prometheus.CounterVec
	cacheEvents   *prometheus.CounterVec
	panics        prometheus.Counter
}

// New registers the provider's metrics and the Go and process collectors.
func New() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		mounts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "mounts_total",
			Help: "Mount requests served, by provider name (vault or openbao: the socket called), result (success or error) and gRPC status code.",
		}, []string{"provider", "result", "code"}),
		mountDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "mount_duration_seconds",
			Help:    "Time to serve a mount request, by provider name and result.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 90},
		}, []string{"provider", "result"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "mounts_in_flight",
			Help: "Mount requests being served now.",
		}),
		objectBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "object_bytes_total",
			Help: "Bytes of file content returned to the driver.",
		}),
		vaultRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "vault_requests_total",
			Help: "Calls to Vault, by operation (login, read, mount_lookup, wrap, token_lookup, token_renew, token_revoke, lease_renew) and status class (2xx, 4xx, 5xx, or error when Vault did not answer).",
		}, []string{"operation", "status"}),
		cacheEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "cache_events_total",
			Help: "Token and lease cache events, by cache (token or lease) and event (hit, miss, renewal, eviction).",
		}, []string{"cache", "event"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "panics_total",
			Help: "Panics recovered while serving a mount (in the request or in a goroutine it started); each is a bug, answered Internal.",
		}),
	}
	m.registry.MustRegister(m.mounts, m.mountDuration, m.inFlight, m.objectBytes, m.vaultRequests, m.cacheEvents, m.panics,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// The methods below do nothing on a nil *Metrics, so components work without metrics.

// MountStarted counts a mount of provider (vault or openbao) in flight;
// call the returned function when it ends.
func (m *Metrics) MountStarted(provider string) func(code string, d time.Duration, bytes int) {
	if m == nil {
		return func(string, time.Duration, int) {}
	}
	m.inFlight.Inc()
	return func(code string, d time.Duration, bytes int) {
		m.inFlight.Dec()
		result := "success"
		if code != "OK" {
			result = "error"
		}
		m.mounts.WithLabelValues(provider, result, code).Inc()
		m.mountDuration.WithLabelValues(provider, result).Observe(d.Seconds())
		m.objectBytes.Add(float64(bytes))
	}
}

// VaultRequest counts one call to Vault.
func (m *Metrics) VaultRequest(operation, status string) {
	if m == nil {
		return
	}
	m.vaultRequests.WithLabelValues(operation, status).Inc()
}

// CacheEvent counts one cache event.
func (m *Metrics) CacheEvent(cache, event string) {
	if m == nil {
		return
	}
	m.cacheEvents.WithLabelValues(cache, event).Inc()
}

// Panic counts one recovered panic.
func (m *Metrics) Panic() {
	if m == nil {
		return
	}
	m.panics.Inc()
}
