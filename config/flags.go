package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Process is the configuration the DaemonSet sets once, on the command
// line; each field is the flag of its name (register says what it means).
type Process struct {
	Endpoint, OpenBaoEndpoint, HealthAddr, MetricsAddr, LogFormat, HMACSecretName, Kubeconfig, NodeName string
	LogLevel                                                                                            slog.Level
	CacheSize, ReadConcurrency, LoginConcurrency, MountConcurrency, MaxObjects                          int
	VaultTimeout, RenewInterval, VaultHealthInterval                                                    time.Duration
	AllowPodOverrides, AllowedVaultAddresses, TLSFileDirs                                               []string
	PrintVersion, TokenRequestFallback                                                                  bool
	LeaseMinRemaining                                                                                   float64
	MountMaxBytes, LeaseCacheMaxBytes, AnswersMaxBytes                                                  int64

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
	DefaultLoginConcurrency  = 16
	DefaultMountConcurrency  = 64
	DefaultMaxObjects        = 256 // spc.DefaultMaxObjects; config imports no provider package
	DefaultMountMaxBytes     = 16 << 20
	DefaultLeaseCacheBytes   = 16 << 20
	DefaultLeaseMinRemaining = 0.33
)

// Parse reads the process flags, with getenv's VAULT_* and KUBECONFIG under them.
func Parse(args []string, getenv func(string) string, out io.Writer) (Process, error) {
	var p Process
	var raw rawFlags
	fs := flag.NewFlagSet("vault-csi-provider", flag.ContinueOnError)
	fs.SetOutput(out)
	p.register(fs, getenv)
	raw.register(fs, &p)
	if err := fs.Parse(args); err != nil {
		return Process{}, err
	}
	if fs.NArg() > 0 {
		return Process{}, fmt.Errorf("unexpected arguments %q: every setting is a -flag", fs.Args())
	}
	problems := append(raw.apply(&p), p.validate()...)
	env, err := FromEnv(getenv)
	problems = append(problems, err)
	if err := errors.Join(problems...); err != nil {
		return Process{}, err
	}
	raw.vault.AuthMount = NormalizeMount(raw.vault.AuthMount)
	p.Vault = Layers(Defaults(), env, raw.vault)
	return p, nil
}

// byteSize parses a size as Kubernetes writes memory: 16Mi, 1Gi, 500k.
func byteSize(to *int64) func(string) error {
	return func(v string) error {
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return fmt.Errorf("%q is not a size: write it like 16Mi", v)
		}
		*to = q.Value()
		return nil
	}
}

// rawFlags are parsed after flag.Parse: log level, the Vault layer, its TLS switch.
type rawFlags struct {
	vault      Vault
	logLevel   string
	skipVerify string
	debug      bool
}

// register adds the process's own flags.
func (p *Process) register(fs *flag.FlagSet, getenv func(string) string) {
	fs.StringVar(&p.Endpoint, "endpoint", DefaultEndpoint, "path of the unix socket the secrets-store-csi-driver calls for provider: vault classes (<providers dir>/vault.sock); empty: not served")
	fs.StringVar(&p.OpenBaoEndpoint, "openbao-endpoint", "", "path of the unix socket for provider: openbao classes, written for openbao-csi-provider (<providers dir>/openbao.sock); empty: not served")
	fs.StringVar(&p.HealthAddr, "health-addr", DefaultHealthAddr, "address of the HTTP listener serving /health/ready and /health/live; empty disables it")
	fs.StringVar(&p.MetricsAddr, "metrics-addr", DefaultMetricsAddr, "address of the HTTP listener serving Prometheus metrics on /metrics; empty disables it")
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
	fs.IntVar(&p.LoginConcurrency, "login-concurrency", DefaultLoginConcurrency, "Vault logins in flight at once, all pods together, at most three quarters of them of one namespace (each is a TokenReview for Vault too): a burst of new pods or a provider restart queues its logins instead of storming Vault and the apiserver")
	fs.IntVar(&p.MountConcurrency, "mount-concurrency", DefaultMountConcurrency, "mounts served at once, all pods together, at most three quarters of them of one namespace; up to 4 times as many wait their turn in the provider with their request read, and the driver's further calls wait on its side (HTTP/2 streams)")
	p.MountMaxBytes, p.LeaseCacheMaxBytes = DefaultMountMaxBytes, DefaultLeaseCacheBytes
	fs.Func("mount-max-bytes", "the Vault answers one mount may hold together, e.g. 16Mi (default 16Mi); over it the mount fails ResourceExhausted", byteSize(&p.MountMaxBytes))
	fs.Func("answers-max-bytes", "the Vault answers all mounts may hold at once, e.g. 32Mi, one namespace half of it; bytes are held before they are read, and a mount over it fails ResourceExhausted (default: a quarter of GOMEMLIMIT, which the chart sets to the container's memory limit, else 32Mi)", byteSize(&p.AnswersMaxBytes))
	fs.Func("lease-cache-max-bytes", "the leased answers (database credentials, certificates) kept for reuse, all pods together, e.g. 16Mi (default 16Mi); the least recently used go first", byteSize(&p.LeaseCacheMaxBytes))
	fs.BoolVar(&p.TokenRequestFallback, "token-request-fallback", false, "when the driver sent no token for a class's audience, mint one with the TokenRequest API (needs create on serviceaccounts/token for every service account); off, such a mount fails and says to add the audience to the CSIDriver's tokenRequests")
	fs.IntVar(&p.MaxObjects, "max-objects", DefaultMaxObjects, "objects one mount may list; a longer list is refused before any Vault call")
	fs.Float64Var(&p.LeaseMinRemaining, "lease-min-remaining", DefaultLeaseMinRemaining, "a leased secret (database credentials, PKI certificate) is returned again while more than this fraction of its TTL is left; below it the lease is renewed, or the secret read anew")
	fs.Func("allow-pod-overrides", "comma-separated sensitive parameters pods may set in their volumeAttributes although they differ from the SecretProviderClass (vaultAddress and the TLS parameters, listed in docs/security.md), or * for all (default: none)", list(&p.AllowPodOverrides))
	fs.Func("allowed-vault-addresses", "comma-separated Vault addresses classes may name and Vault may redirect to: https://host[:port], host or *.domain (default: any, but never a link-local or cloud metadata address unless an entry names it)", list(&p.AllowedVaultAddresses))
	fs.Func("tls-file-dirs", "comma-separated directories the CA, CA directory and client certificate files classes name must lie in, links resolved (default: anywhere in the provider's container)", list(&p.TLSFileDirs))
}

// list appends a flag's comma-separated values to to.
func list(to *[]string) func(string) error {
	return func(v string) error {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				*to = append(*to, f)
			}
		}
		return nil
	}
}

// register adds the flags read into r: the Vault layer and the log level.
func (r *rawFlags) register(fs *flag.FlagSet, p *Process) {
	fs.StringVar(&r.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&r.debug, "debug", false, "same as -log-level=debug (kept for compatibility)")
	fs.StringVar(&r.vault.Address, "vault-addr", "", "default Vault address (env "+EnvAddress+", default "+DefaultVaultAddress+")")
	fs.StringVar(&r.vault.AuthMount, "vault-mount", "", "default Vault auth mount for login (default "+DefaultAuthMount+")")
	fs.StringVar(&r.vault.Namespace, "vault-namespace", "", "default Vault namespace (env "+EnvNamespace+")")
	fs.StringVar(&r.vault.CACert, "vault-tls-ca-cert", "", "PEM CA certificate to trust for Vault (env "+EnvCACert+")")
	fs.StringVar(&r.vault.CADirectory, "vault-tls-ca-directory", "", "directory of PEM CA certificates to trust for Vault (env "+EnvCAPath+")")
	fs.StringVar(&r.vault.TLSServerName, "vault-tls-server-name", "", "server name to verify in Vault's certificate (env "+EnvTLSServerName+")")
	fs.StringVar(&r.vault.ClientCert, "vault-tls-client-cert", "", "client certificate for mutual TLS with Vault (env "+EnvClientCert+")")
	fs.StringVar(&r.vault.ClientKey, "vault-tls-client-key", "", "client key for mutual TLS with Vault (env "+EnvClientKey+")")
	fs.StringVar(&r.skipVerify, "vault-tls-skip-verify", "", "turn off verification of Vault's TLS certificate: true or false (env "+EnvSkipVerify+")")
}

// apply parses the raw flags into p and the Vault layer.
func (r *rawFlags) apply(p *Process) []error {
	var problems []error
	if err := p.LogLevel.UnmarshalText([]byte(r.logLevel)); err != nil {
		problems = append(problems, fmt.Errorf("-log-level: %q is not a level: use debug, info, warn or error", r.logLevel))
	}
	if r.debug {
		p.LogLevel = slog.LevelDebug
	}
	if r.skipVerify != "" {
		b, err := ParseBool("-vault-tls-skip-verify", r.skipVerify)
		problems = append(problems, err)
		r.vault.SkipVerify = &b
	}
	return problems
}

// validate checks the ranges of the process flags.
func (p *Process) validate() []error {
	var problems []error
	bad := func(cond bool, format string, a ...any) {
		if cond {
			problems = append(problems, fmt.Errorf(format, a...))
		}
	}
	p.LogFormat = strings.ToLower(p.LogFormat)
	bad(p.LogFormat != "text" && p.LogFormat != "json", "-log-format: %q is not a format: use text or json", p.LogFormat)
	bad(p.CacheSize < 0, "-cache-size: %d is negative: use 0 to turn the cache off", p.CacheSize)
	bad(p.VaultTimeout <= 0 || p.VaultTimeout > 90*time.Second, "-vault-timeout: %s is out of range: use a duration above 0 and at most 90s (the kubelet gives a mount 2 minutes)", p.VaultTimeout)
	bad(p.RenewInterval < 0, "-renew-interval: %s: use 0 (off) or a positive duration", p.RenewInterval)
	bad(p.VaultHealthInterval <= 0, "-vault-health-interval: %s: use a positive duration", p.VaultHealthInterval)
	bad(p.ReadConcurrency < 1, "-read-concurrency: %d: use 1 or more", p.ReadConcurrency)
	bad(p.LoginConcurrency < 1 || p.LoginConcurrency > 1024, "-login-concurrency: %d: use 1 to 1024", p.LoginConcurrency)
	bad(p.MountConcurrency < 1 || p.MountConcurrency > 10_000, "-mount-concurrency: %d: use 1 to 10000", p.MountConcurrency)
	bad(p.MountMaxBytes < 1<<20, "-mount-max-bytes: %d: use 1Mi or more", p.MountMaxBytes)
	bad(p.AnswersMaxBytes != 0 && p.AnswersMaxBytes < 2<<20, "-answers-max-bytes: %d: use 2Mi or more", p.AnswersMaxBytes)
	bad(p.LeaseCacheMaxBytes < 1<<20, "-lease-cache-max-bytes: %d: use 1Mi or more", p.LeaseCacheMaxBytes)
	bad(p.MaxObjects < 1 || p.MaxObjects > 10_000, "-max-objects: %d: use 1 to 10000", p.MaxObjects)
	bad(p.LeaseMinRemaining <= 0 || p.LeaseMinRemaining >= 1, "-lease-min-remaining: %g: use a fraction between 0 and 1, e.g. 0.33", p.LeaseMinRemaining)
	bad(p.Endpoint == "" && p.OpenBaoEndpoint == "", "-endpoint and -openbao-endpoint: both empty: give a socket path, e.g. -endpoint=%s", DefaultEndpoint)
	bad(p.Endpoint != "" && p.Endpoint == p.OpenBaoEndpoint, "-endpoint and -openbao-endpoint: both %s: give each provider name its own socket", p.Endpoint)
	return problems
}
