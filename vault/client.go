// Package vault talks to Vault's HTTP API: one client per connection
// configuration, login to a JWT-based auth method, raw reads and writes, and
// errors classified by what the user has to do about them.
package vault

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/vault/api"

	"github.com/vaultcsi/vault-csi-provider/config"
)

// Clients hands out one base client (no token) per connection configuration.
// It is safe for concurrent use; the clients it returns are shared and must
// not be modified (Clone them to set a token).
type Clients struct {
	timeout time.Duration
	cache   *lru.Cache[string, *api.Client]
}

// maxConnectionConfigs bounds the distinct Vault connection settings kept.
const maxConnectionConfigs = 64

// NewClients returns a client cache whose clients give every call timeout.
func NewClients(timeout time.Duration) *Clients {
	cache, _ := lru.New[string, *api.Client](maxConnectionConfigs) // only fails for size <= 0
	return &Clients{timeout: timeout, cache: cache}
}

// Get returns the base client for cfg. Settings come only from cfg (which
// already holds the environment layer); the Vault library's own reading of
// VAULT_TOKEN and VAULT_NAMESPACE is undone.
func (c *Clients) Get(cfg config.Vault) (*api.Client, error) {
	key := cfg.ConnectionKey()
	if client, ok := c.cache.Get(key); ok {
		return client, nil
	}
	client, err := c.build(cfg)
	if err != nil {
		return nil, err
	}
	c.cache.Add(key, client)
	return client, nil
}

func (c *Clients) build(cfg config.Vault) (*api.Client, error) {
	u, err := url.Parse(cfg.Address)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("vault address %q is not a URL such as https://vault:8200", cfg.Address)
	}
	apiCfg := clientConfig(cfg.Address, c.timeout)
	tls := &api.TLSConfig{
		CACert:        cfg.CACert,
		CAPath:        cfg.CADirectory,
		ClientCert:    cfg.ClientCert,
		ClientKey:     cfg.ClientKey,
		TLSServerName: cfg.TLSServerName,
		Insecure:      cfg.InsecureSkipVerify(),
	}
	if err := apiCfg.ConfigureTLS(tls); err != nil {
		return nil, fmt.Errorf("vault TLS settings (CA %q, CA directory %q, client cert %q): %w", cfg.CACert, cfg.CADirectory, cfg.ClientCert, err)
	}
	apiCfg.HttpClient.Transport = boundedBodies{next: apiCfg.HttpClient.Transport} // after ConfigureTLS, which needs the *http.Transport
	client, err := api.NewClient(apiCfg)
	if err != nil {
		return nil, fmt.Errorf("vault client for %s: %w", cfg.Address, err)
	}
	// NewClient takes VAULT_TOKEN, VAULT_NAMESPACE and VAULT_HEADERS from the
	// process environment: none of them applies to a pod's mount.
	client.SetHeaders(http.Header{})
	client.ClearToken()
	if cfg.Namespace != "" {
		client.SetNamespace(cfg.Namespace)
	} else {
		client.ClearNamespace()
	}
	return client, nil
}

// clientConfig is the Vault client's configuration as api.DefaultConfig
// makes it, but without reading the process environment: the provider reads
// only the VAULT_* variables it documents (package config), so that none of
// the others (VAULT_AGENT_ADDR, VAULT_HTTP_PROXY, VAULT_SKIP_VERIFY, ...)
// can redirect a pod's token or weaken TLS behind a class's back.
func clientConfig(address string, timeout time.Duration) *api.Config {
	transport := cleanhttp.DefaultPooledTransport()
	transport.TLSHandshakeTimeout = 10 * time.Second
	transport.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	transport.ForceAttemptHTTP2 = true
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
	}
}
