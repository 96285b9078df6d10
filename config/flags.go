package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
)

// Process is the configuration the DaemonSet sets once, on the command line.
type Process struct {
	Endpoint       string
	HealthAddr     string
	MetricsAddr    string
	LogLevel       slog.Level
	LogFormat      string
	HMACSecretName string
	CacheSize      int
	Kubeconfig     string
	VaultTimeout   time.Duration
	// RenewInterval is how often cached tokens and leases are renewed in the
	// background (0: only when pods mount).
	RenewInterval time.Duration
	// AllowPodOverrides are the sensitive parameters pods may set in their
	// volumeAttributes ("*" for all).
	AllowPodOverrides []string
	// VaultHealthInterval is how often readiness asks Vault's sys/health.
	VaultHealthInterval time.Duration
	PrintVersion        bool
	// NodeName is this node; pods on it are watched so that their tokens
	// and leases are revoked when they are deleted.
	NodeName          string
	ReadConcurrency   int
	LeaseMinRemaining float64

	// Vault is the environment layer with the flag layer on top of it: the
	// defaults every SecretProviderClass starts from.
	Vault Vault
}

// Defaults of the process flags.
const (
	DefaultEndpoint          = "/var/run/secrets-store-csi-providers/vault.sock"
	DefaultHealthAddr        = ":8080"
	DefaultMetricsAddr       = ":8081"
	DefaultHMACSecretName    = "vault-csi-provider-hmac-key"
	DefaultCacheSize         = 1000
	DefaultVaultTimeout      = 20 * time.Second
	DefaultReadConcurrency   = 8
	DefaultLeaseMinRemaining = 0.33
)

// Parse reads the process flags. getenv supplies the VAULT_* fallbacks and
// KUBECONFIG. Usage and errors are written to out.
func Parse(args []string, getenv func(string) string, out io.Writer) (Process, error) {
	var p Process
	var flagVault Vault
	var logLevel, skipVerify string
	var debug bool

	fs := flag.NewFlagSet("vault-csi-provider", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&p.Endpoint, "endpoint", DefaultEndpoint, "path of the unix socket the secrets-store-csi-driver calls (<providers dir>/vault.sock)")
	fs.StringVar(&p.HealthAddr, "health-addr", DefaultHealthAddr, "address of the HTTP listener serving /health/ready and /health/live; empty disables it")
	fs.StringVar(&p.MetricsAddr, "metrics-addr", DefaultMetricsAddr, "address of the HTTP listener serving Prometheus metrics on /metrics; empty disables it")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&debug, "debug", false, "same as -log-level=debug (kept for compatibility)")
	fs.StringVar(&p.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&p.HMACSecretName, "hmac-secret-name", DefaultHMACSecretName, "Kubernetes Secret, in the provider's namespace, holding the key for object versions (created if missing)")
	fs.IntVar(&p.CacheSize, "cache-size", DefaultCacheSize, "maximum number of Vault tokens kept in memory, one per pod identity; 0 logs in on every mount")
	fs.StringVar(&p.Kubeconfig, "kubeconfig", getenv("KUBECONFIG"), "kubeconfig to use when running outside a cluster (default: $KUBECONFIG, else in-cluster config)")
	fs.DurationVar(&p.VaultTimeout, "vault-timeout", DefaultVaultTimeout, "deadline of each call to Vault")
	fs.BoolVar(&p.PrintVersion, "version", false, "print the version and exit")
	fs.DurationVar(&p.RenewInterval, "renew-interval", 30*time.Second, "how often Vault tokens and leases of this node's pods past half their TTL are renewed in the background, so that pods that mount once keep their credentials (needs -node-name; 0 renews only when pods mount)")
	fs.DurationVar(&p.VaultHealthInterval, "vault-health-interval", 10*time.Second, "how often /health/ready asks Vault's sys/health (only when -vault-addr or VAULT_ADDR is set); not ready after three intervals without a healthy answer")
	fs.StringVar(&p.NodeName, "node-name", getenv("NODE_NAME"), "this node's name (downward API spec.nodeName): its pods are watched so that their Vault tokens and leases are revoked when they are deleted; empty turns that off (env NODE_NAME)")
	fs.IntVar(&p.ReadConcurrency, "read-concurrency", DefaultReadConcurrency, "Vault reads one mount makes in parallel")
	fs.Float64Var(&p.LeaseMinRemaining, "lease-min-remaining", DefaultLeaseMinRemaining, "a leased secret (database credentials, PKI certificate) is returned again while more than this fraction of its TTL is left; below it the lease is renewed, or the secret read anew")

	fs.StringVar(&flagVault.Address, "vault-addr", "", "default Vault address (env "+EnvAddress+", default "+DefaultVaultAddress+")")
	fs.StringVar(&flagVault.AuthMount, "vault-mount", "", "default Vault auth mount for login (default "+DefaultAuthMount+")")
	fs.StringVar(&flagVault.Namespace, "vault-namespace", "", "default Vault namespace (env "+EnvNamespace+")")
	fs.StringVar(&flagVault.CACert, "vault-tls-ca-cert", "", "PEM CA certificate to trust for Vault (env "+EnvCACert+")")
	fs.StringVar(&flagVault.CADirectory, "vault-tls-ca-directory", "", "directory of PEM CA certificates to trust for Vault (env "+EnvCAPath+")")
	fs.StringVar(&flagVault.TLSServerName, "vault-tls-server-name", "", "server name to verify in Vault's certificate (env "+EnvTLSServerName+")")
	fs.StringVar(&flagVault.ClientCert, "vault-tls-client-cert", "", "client certificate for mutual TLS with Vault (env "+EnvClientCert+")")
	fs.StringVar(&flagVault.ClientKey, "vault-tls-client-key", "", "client key for mutual TLS with Vault (env "+EnvClientKey+")")
	fs.StringVar(&skipVerify, "vault-tls-skip-verify", "", "turn off verification of Vault's TLS certificate: true or false (env "+EnvSkipVerify+")")

	fs.Func("allow-pod-overrides", "comma-separated parameters pods may set in their volumeAttributes although they differ from the SecretProviderClass: vaultAddress, vaultCACertPath, vaultCADirectory, vaultTLSServerName, vaultSkipTLSVerify, vaultTLSClientCertPath, vaultTLSClientKeyPath, or * for all (default: none)", func(v string) error {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				p.AllowPodOverrides = append(p.AllowPodOverrides, f)
			}
		}
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return Process{}, err
	}
	if fs.NArg() > 0 {
		return Process{}, fmt.Errorf("unexpected arguments %q: every setting is a -flag", fs.Args())
	}

	var problems []error
	if err := p.LogLevel.UnmarshalText([]byte(logLevel)); err != nil {
		problems = append(problems, fmt.Errorf("-log-level: %q is not a level: use debug, info, warn or error", logLevel))
	}
	if debug {
		p.LogLevel = slog.LevelDebug
	}
	p.LogFormat = strings.ToLower(p.LogFormat)
	if p.LogFormat != "text" && p.LogFormat != "json" {
		problems = append(problems, fmt.Errorf("-log-format: %q is not a format: use text or json", p.LogFormat))
	}
	if p.CacheSize < 0 {
		problems = append(problems, fmt.Errorf("-cache-size: %d is negative: use 0 to turn the cache off", p.CacheSize))
	}
	if p.VaultTimeout <= 0 || p.VaultTimeout > 90*time.Second {
		problems = append(problems, fmt.Errorf("-vault-timeout: %s is out of range: use a duration above 0 and at most 90s (the kubelet gives a mount 2 minutes)", p.VaultTimeout))
	}
	if p.RenewInterval < 0 {
		problems = append(problems, fmt.Errorf("-renew-interval: %s: use 0 (off) or a positive duration", p.RenewInterval))
	}
	if p.VaultHealthInterval <= 0 {
		problems = append(problems, fmt.Errorf("-vault-health-interval: %s: use a positive duration", p.VaultHealthInterval))
	}
	if p.ReadConcurrency < 1 {
		problems = append(problems, fmt.Errorf("-read-concurrency: %d: use 1 or more", p.ReadConcurrency))
	}
	if p.LeaseMinRemaining <= 0 || p.LeaseMinRemaining >= 1 {
		problems = append(problems, fmt.Errorf("-lease-min-remaining: %g: use a fraction between 0 and 1, e.g. 0.33", p.LeaseMinRemaining))
	}
	if p.Endpoint == "" {
		problems = append(problems, errors.New("-endpoint: empty: give the socket path, e.g. "+DefaultEndpoint))
	}
	if skipVerify != "" {
		b, err := ParseBool("-vault-tls-skip-verify", skipVerify)
		if err != nil {
			problems = append(problems, err)
		}
		flagVault.SkipVerify = &b
	}
	env, err := FromEnv(getenv)
	if err != nil {
		problems = append(problems, err)
	}
	if err := errors.Join(problems...); err != nil {
		return Process{}, err
	}
	flagVault.AuthMount = NormalizeMount(flagVault.AuthMount)
	p.Vault = Layers(Defaults(), env, flagVault)
	return p, nil
}
