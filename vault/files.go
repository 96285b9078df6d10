package vault

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vaultcsi/vault-csi-provider/config"
)

// Bounds of the TLS files a class names: read by us, before any TLS code
// sees them, so that /dev/zero or a FIFO costs a tenant an error, not the
// node's provider its memory or a goroutine.
const (
	MaxTLSFileBytes = 1 << 20
	MaxCAEntries    = 1000
)

// ErrTLSFile is a CA, certificate or key file that cannot be used.
var ErrTLSFile = errors.New("unusable TLS file")

// tlsFiles reads a connection's TLS files within dirs (none: anywhere).
type tlsFiles struct{ dirs []string }

// read returns the file at path: a regular file, once links are resolved,
// of at most MaxTLSFileBytes, inside one of the allowed directories.
func (f tlsFiles) read(param, path string) ([]byte, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %q: %w", ErrTLSFile, param, path, err)
	}
	if err := f.within(param, path, real); err != nil {
		return nil, err
	}
	// O_NONBLOCK: a FIFO swapped in after the check must not hang the open.
	file, err := os.OpenFile(real, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %q: %w", ErrTLSFile, param, path, err)
	}
	defer file.Close()
	info, err := file.Stat()
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %s %q: %w", ErrTLSFile, param, path, err)
	case !info.Mode().IsRegular():
		return nil, fmt.Errorf("%w: %s %q is not a regular file (%s): name a PEM file", ErrTLSFile, param, path, info.Mode().Type())
	case info.Size() > MaxTLSFileBytes:
		return nil, fmt.Errorf("%w: %s %q is %d bytes, over %d: name a PEM file", ErrTLSFile, param, path, info.Size(), MaxTLSFileBytes)
	}
	data, err := io.ReadAll(io.LimitReader(file, MaxTLSFileBytes+1))
	if err == nil && len(data) > MaxTLSFileBytes {
		err = fmt.Errorf("over %d bytes", MaxTLSFileBytes)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s %q: %w", ErrTLSFile, param, path, err)
	}
	return data, nil
}

// within checks that real (path, links resolved) is in an allowed directory.
func (f tlsFiles) within(param, path, real string) error {
	if len(f.dirs) == 0 {
		return nil
	}
	for _, d := range f.dirs {
		if rel, err := filepath.Rel(d, real); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			return nil
		}
	}
	return fmt.Errorf("%w: %s %q is outside the directories the provider reads TLS files from (-tls-file-dirs=%s): mount it into the provider's pod under one of them",
		ErrTLSFile, param, path, strings.Join(f.dirs, ","))
}

// caPool reads the CA file and the CA directory's files (at most
// MaxCAEntries entries, subdirectories included) into one pool.
func (f tlsFiles) caPool(cfg config.Vault) (*x509.CertPool, error) {
	if cfg.CACert == "" && cfg.CADirectory == "" {
		return nil, nil // the system's roots
	}
	pool := x509.NewCertPool()
	add := func(param, path string) error {
		pem, err := f.read(param, path)
		if err != nil {
			return err
		}
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%w: %s %q holds no PEM certificate", ErrTLSFile, param, path)
		}
		return nil
	}
	if cfg.CACert != "" {
		if err := add("vaultCACertPath", cfg.CACert); err != nil {
			return nil, err
		}
	}
	if cfg.CADirectory == "" {
		return pool, nil
	}
	real, err := filepath.EvalSymlinks(cfg.CADirectory)
	if err == nil {
		err = f.within("vaultCADirectory", cfg.CADirectory, real)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: vaultCADirectory %q: %w", ErrTLSFile, cfg.CADirectory, err)
	}
	// Counted before any is read.
	var files []string
	err = filepath.WalkDir(real, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if files = append(files, path); len(files) > MaxCAEntries {
			return fmt.Errorf("%w: vaultCADirectory %q has over %d entries: keep only the CA certificates there", ErrTLSFile, cfg.CADirectory, MaxCAEntries)
		}
		return nil
	})
	for _, path := range files {
		// Kubernetes' ConfigMap volumes link each file and a ..data directory.
		if info, serr := os.Stat(path); err != nil || serr == nil && info.IsDir() {
			continue
		}
		err = add("vaultCADirectory", path)
	}
	if err != nil {
		return nil, err
	}
	return pool, nil
}

// clientCert reads the client certificate and key, if either is set.
func (f tlsFiles) clientCert(cfg config.Vault) ([]tls.Certificate, error) {
	if cfg.ClientCert == "" && cfg.ClientKey == "" {
		return nil, nil
	}
	certPEM, err := f.read("vaultTLSClientCertPath", cfg.ClientCert)
	if err != nil {
		return nil, err
	}
	keyPEM, err := f.read("vaultTLSClientKeyPath", cfg.ClientKey)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: vaultTLSClientCertPath %q and vaultTLSClientKeyPath %q: %w", ErrTLSFile, cfg.ClientCert, cfg.ClientKey, err)
	}
	return []tls.Certificate{cert}, nil
}
