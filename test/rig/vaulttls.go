package rig

import (
	"crypto/tls"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// VaultTLS serves the dev server's API over TLS from a CA of its own, whose
// certificate a test can rotate. Vault's own TLS listener reloads its
// certificate only on SIGHUP, which Vault 1.21's dev mode answers with a
// panic: so TLS is terminated in front of the real Vault, by this proxy.
type VaultTLS struct {
	// Addr is https://127.0.0.1:<port>.
	Addr string
	// CAFile is the CA a client verifies Vault with; Rotate rewrites it.
	CAFile string

	dir    string
	cert   atomic.Pointer[tls.Certificate]
	server *http.Server
}

// startTLS serves vaultAddr over TLS.
func startTLS(dir, name, vaultAddr string) (*VaultTLS, error) {
	target, err := url.Parse(vaultAddr)
	if err != nil {
		return nil, err
	}
	t := &VaultTLS{dir: filepath.Join(dir, name+"-tls")} // one per server: StartVault runs several in one directory
	if err := os.MkdirAll(t.dir, 0o700); err != nil {
		return nil, err
	}
	t.CAFile = filepath.Join(t.dir, "ca.pem")
	if err := t.issue(); err != nil {
		return nil, err
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return t.cert.Load(), nil },
	})
	if err != nil {
		return nil, err
	}
	t.server = &http.Server{Handler: httputil.NewSingleHostReverseProxy(target), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = t.server.Serve(ln) }()
	t.Addr = "https://" + ln.Addr().String()
	return t, nil
}

// issue makes a new CA and a serving certificate from it, serves the
// certificate and writes the CA.
func (t *VaultTLS) issue() error {
	pki, err := newPKI()
	if err != nil {
		return err
	}
	certFile, keyFile, err := pki.issue(t.dir, "vault", "localhost", nil, true)
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return err
	}
	t.cert.Store(&cert)
	return os.WriteFile(t.CAFile, pki.CAPEM, 0o600)
}

// Rotate serves a certificate from a new CA and writes the new CA to
// CAFile, as an operator rotating Vault's CA does.
func (t *VaultTLS) Rotate() error { return t.issue() }

// Stop closes the listener.
func (t *VaultTLS) Stop() {
	if t != nil && t.server != nil {
		_ = t.server.Close()
	}
}
