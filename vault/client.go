// Package vault talks to Vault through its API client: one client per
// connection configuration, logins, reads, errors classified.
package vault

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/vault/api"

	"github.com/vaultcsi/vault-csi-provider/config"
)

// Clients hands out one shared Conn per connection configuration.
type Clients struct {
	timeout time.Duration
	cache   *lru.Cache[string, *Conn]
	// Reach says which addresses a class may name.
	Reach Reach
	// TLSFileDirs confine the CA and client certificate files (-tls-file-dirs; empty: anywhere).
	TLSFileDirs []string
	// Log is told, once per address, of a connection that is not secure
	// (plain http://, TLS verification off); nil logs nothing.
	Log *slog.Logger

	mu     sync.Mutex
	warned map[string]bool // address and warning, bounded by maxWarned
}

// maxWarned bounds the warnings remembered (a tenant may cycle addresses).
const maxWarned = 1024

// maxConnectionConfigs bounds the distinct Vault connection settings kept.
const maxConnectionConfigs = 64

// NewClients returns a client cache whose clients give every call timeout.
func NewClients(timeout time.Duration) *Clients {
	cache, _ := lru.New[string, *Conn](maxConnectionConfigs) // only fails for size <= 0
	return &Clients{timeout: timeout, cache: cache, warned: map[string]bool{}}
}

// Conn is the Vault API client of one connection configuration, with no token.
type Conn struct {
	api *api.Client
}

// API is the connection's Vault API client; it must not be modified.
func (c *Conn) API() *api.Client { return c.api }

// Get returns the Conn for cfg, whose settings come only from cfg. It is
// rebuilt when its CA or client certificate files change (size or
// modification time): rotated certificates are used without a restart.
func (c *Clients) Get(cfg config.Vault) (*Conn, error) {
	key := cfg.ConnectionKey() + "\x00" + fileStamps(cfg.CACert, cfg.CADirectory, cfg.ClientCert, cfg.ClientKey)
	if client, ok := c.cache.Get(key); ok {
		return client, nil
	}
	client, err := c.build(cfg)
	if err != nil {
		return nil, err
	}
	c.warnInsecure(cfg)
	c.cache.Add(key, client)
	return client, nil
}

// fileStamps is the size and modification time of each file (links followed).
func fileStamps(paths ...string) string {
	var b strings.Builder
	for _, p := range paths {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil {
			fmt.Fprintf(&b, "%s:%d:%d;", p, fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return b.String()
}

// warnInsecure logs, once per address, that a connection is not secure.
func (c *Clients) warnInsecure(cfg config.Vault) {
	if c.Log == nil {
		return
	}
	var warnings []string
	if strings.HasPrefix(strings.ToLower(cfg.Address), "http://") {
		warnings = append(warnings, "plain http: Vault tokens and secrets cross the network unencrypted; use https://")
	}
	if cfg.InsecureSkipVerify() {
		warnings = append(warnings, "TLS verification is off (vaultSkipTLSVerify or -vault-tls-skip-verify): anyone on the path can pose as Vault; give a CA instead")
	}
	for _, w := range warnings {
		c.mu.Lock()
		first := !c.warned[cfg.Address+w] && len(c.warned) < maxWarned
		if first {
			c.warned[cfg.Address+w] = true
		}
		c.mu.Unlock()
		if first {
			c.Log.Warn("insecure connection to vault", "addr", cfg.Address, "problem", w)
		}
	}
}

func (c *Clients) build(cfg config.Vault) (*Conn, error) {
	u, err := url.Parse(cfg.Address)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("vault address %q is not a URL such as https://vault:8200", cfg.Address)
	}
	if err := c.Reach.check(u); err != nil {
		return nil, err
	}
	files := tlsFiles{dirs: c.TLSFileDirs}
	roots, err := files.caPool(cfg)
	if err != nil {
		return nil, err
	}
	certs, err := files.clientCert(cfg)
	if err != nil {
		return nil, err
	}
	apiCfg, transport := clientConfig(cfg.Address, c.timeout, c.Reach)
	transport.TLSClientConfig.RootCAs = roots
	transport.TLSClientConfig.Certificates = certs
	transport.TLSClientConfig.ServerName = cfg.TLSServerName
	transport.TLSClientConfig.InsecureSkipVerify = cfg.InsecureSkipVerify() //nolint:gosec // only when the user turned verification off
	apiCfg.HttpClient.Transport = guarded{origin: u, reach: c.Reach, next: boundedBodies{next: transport}}
	client, err := api.NewClient(apiCfg)
	if err != nil {
		return nil, fmt.Errorf("vault client for %s: %w", cfg.Address, err)
	}
	// NewClient takes VAULT_TOKEN, VAULT_NAMESPACE and VAULT_HEADERS from the
	// process environment: none of them applies to a pod's mount. Only the
	// header the client sets itself stays: X-Vault-Request, which a Vault
	// Agent or Proxy with require_request_header demands.
	client.SetHeaders(http.Header{api.RequestHeaderName: []string{"true"}})
	client.ClearToken()
	if cfg.Namespace != "" {
		client.SetNamespace(cfg.Namespace)
	} else {
		client.ClearNamespace()
	}
	// Nor does VAULT_WRAP_TTL: a read is wrapped only when asked (Request.WrapTTL).
	client.SetWrappingLookupFunc(func(string, string) string { return "" })
	return &Conn{api: client}, nil
}

// MaxHeaderBytes bounds an answer's headers (net/http's default is 1 MiB).
const MaxHeaderBytes = 64 << 10

// IdleConnsPerVault is how many idle connections to one address are kept:
// over HTTP/1.1 a read in flight holds one, and a burst of new pods (48 of
// one namespace's mounts at once, 8 reads each) shook hands anew for every
// connection over 32 (bench: 301 mounts/s and 7.2 s to serve 1,000 pods
// again after a restart with 32, 370 and 5.0 s with 128). Bounded in all by
// the requests in flight.
const IdleConnsPerVault = 128

// clientConfig is api.DefaultConfig without the process environment: only
// the VAULT_* variables package config documents count, so that no other
// (VAULT_AGENT_ADDR, VAULT_HTTP_PROXY, ...) redirects a pod's token.
func clientConfig(address string, timeout time.Duration, reach Reach) (*api.Config, *http.Transport) {
	transport := cleanhttp.DefaultPooledTransport()
	transport.DialContext = reach.dial(&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second})
	transport.TLSHandshakeTimeout = 10 * time.Second
	transport.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	// HTTP/1.1 only, although Vault speaks HTTP/2 over TLS: measured on the
	// TLS bench, a one-object mount costs the provider 17% less CPU (no
	// frame reader goroutine, no flow-control frames) and its p99 is lower,
	// and a connection buffers 4 KiB of an answer not yet read, not an
	// HTTP/2 stream's window of 4 MiB that no budget would see.
	transport.Protocols = new(http.Protocols)
	transport.Protocols.SetHTTP1(true)
	transport.MaxIdleConnsPerHost = IdleConnsPerVault
	transport.MaxIdleConns = IdleConnsPerVault
	transport.MaxResponseHeaderBytes = MaxHeaderBytes
	return &api.Config{
		Address: address,
		HttpClient: &http.Client{
			Transport: transport,
			// The API client follows Vault's redirects itself.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		Timeout:      timeout,
		MinRetryWait: time.Second,
		MaxRetryWait: 1500 * time.Millisecond,
		MaxRetries:   2,
		Backoff:      retryablehttp.RateLimitLinearJitterBackoff,
		CheckRetry:   retryPolicy,
	}, transport
}

// retryPolicy is the API client's, except that a request that may change
// something (a PUT or POST: pki/issue, a login) is sent again only when
// Vault surely did not act on it: its connection was never made, or Vault
// answered 412, 429 or 503. A connection that died after the request was
// written, or a 502 from a proxy, may have issued a certificate already.
func retryPolicy(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if errors.Is(err, ErrNotAllowed) {
		return false, nil // refused here: asking again changes nothing
	}
	retry, perr := api.DefaultRetryPolicy(ctx, resp, err)
	if !retry || perr != nil || ctx.Value(mayChange{}) == nil {
		return retry, perr
	}
	var op *net.OpError
	if resp == nil {
		return errors.As(err, &op) && op.Op == "dial", nil
	}
	switch resp.StatusCode {
	case http.StatusPreconditionFailed, http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return true, nil
	}
	return false, nil
}

// mayChange marks a request whose method is not GET.
type mayChange struct{}
