package provider

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"

	"github.com/vaultcsi/vault-csi-provider/auth"
	"github.com/vaultcsi/vault-csi-provider/provider/render"
	"github.com/vaultcsi/vault-csi-provider/provider/spc"
	"github.com/vaultcsi/vault-csi-provider/vault"
)

// ErrLoginDenied means Vault refused the pod's login (HTTP 400 or 403):
// Vault answers 400 for an unknown role or a claim that does not match, and
// 403 for an unbound service account or an auth mount that does not exist.
var ErrLoginDenied = errors.New("vault denied login")

// explainLogin says what a failed login means for this pod and role.
func explainLogin(err error, mt *mount) error {
	sa := mt.params.Pod.Namespace + "/" + mt.params.Pod.ServiceAccount
	where := fmt.Sprintf("auth/%s on %s", mt.cfg.AuthMount, mt.cfg.Address)
	switch {
	case errors.Is(err, vault.ErrPermissionDenied), errors.Is(err, vault.ErrInvalidRequest):
		return withKind(ErrLoginDenied, fmt.Errorf("vault role %q denied login for service account %s at %s (%w); check that roleName names a role of that auth method, "+
			"that the role's bound_service_account_names and bound_service_account_namespaces (kubernetes auth) or bound_subject and bound_audiences (jwt auth) admit this service account, "+
			"that its audience matches %q, and that vaultAuthMountPath is where the kubernetes or jwt auth method is mounted",
			mt.params.Role, sa, where, err, mt.params.Audience))
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("login to vault at %s timed out: %w; check that Vault is reachable from the node", mt.cfg.Address, err)
	case errors.Is(err, vault.ErrTLSVerify), errors.Is(err, vault.ErrTLSRefused):
		return explainTLS(err, mt)
	case errors.Is(err, vault.ErrUnavailable):
		return fmt.Errorf("cannot log in to vault at %s: %w; check vaultAddress and that Vault is running and unsealed", mt.cfg.Address, err)
	}
	return fmt.Errorf("login to vault at %s with role %q: %w", mt.cfg.Address, mt.params.Role, err)
}

// explainTLS says which TLS setting to look at: Vault's certificate did not
// verify (CA, server name), or Vault refused the handshake (it may require
// a client certificate).
func explainTLS(err error, mt *mount) error {
	if errors.Is(err, vault.ErrTLSRefused) {
		return fmt.Errorf("vault at %s refused the TLS handshake: %w; if it requires client certificates, set vaultTLSClientCertPath and vaultTLSClientKeyPath "+
			"to a certificate and key its CA accepts (files in the provider's container)", mt.cfg.Address, err)
	}
	return fmt.Errorf("TLS verification of vault at %s failed: %w; set vaultCACertPath (or vaultCADirectory) to the CA that signed Vault's certificate "+
		"(a file in the provider's container), and vaultTLSServerName if the address is not a name in that certificate", mt.cfg.Address, err)
}

// kindError gives an error a kind for errors.Is without changing its message.
type kindError struct {
	err  error
	kind error
}

func withKind(kind, err error) error { return kindError{err: err, kind: kind} }
func (e kindError) Error() string    { return e.err.Error() }
func (e kindError) Unwrap() []error  { return []error{e.kind, e.err} }

// explainRead says what a failed read means for this role and path.
func explainRead(err error, mt *mount, r spc.Call) error {
	switch {
	case errors.Is(err, vault.ErrPermissionDenied):
		return fmt.Errorf("vault role %q may not %s %s: %w; grant it in a policy attached to the role", mt.params.Role, r.Method, r.Path, err)
	case errors.Is(err, vault.ErrNotFound):
		return fmt.Errorf("nothing in vault at %s: %w; check secretPath (KV version 2 paths read as <mount>/data/<name>)", r.Path, err)
	case errors.Is(err, vault.ErrEmptyResponse):
		return fmt.Errorf("vault returned no data for %s %s: %w", r.Method, r.Path, err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("reading %s from vault at %s timed out: %w", r.Path, mt.cfg.Address, err)
	case errors.Is(err, vault.ErrTLSVerify), errors.Is(err, vault.ErrTLSRefused):
		return explainTLS(err, mt)
	case errors.Is(err, vault.ErrUnavailable):
		return fmt.Errorf("cannot read %s from vault at %s: %w; check that Vault is running and unsealed", r.Path, mt.cfg.Address, err)
	}
	return fmt.Errorf("reading %s from vault: %w", r.Path, err)
}

// Code is the gRPC status code for a mount error.
func Code(err error) codes.Code {
	switch {
	case err == nil:
		return codes.OK
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, ErrLoginDenied):
		return codes.PermissionDenied
	case errors.Is(err, spc.ErrInvalidParameters), errors.Is(err, vault.ErrInvalidRequest), errors.Is(err, render.ErrDecode):
		return codes.InvalidArgument
	case errors.Is(err, vault.ErrPermissionDenied), errors.Is(err, auth.ErrTokenRequestForbidden), errors.Is(err, ErrPodOverride), errors.Is(err, ErrPodIdentity):
		return codes.PermissionDenied
	case errors.Is(err, vault.ErrNotFound), errors.Is(err, render.ErrSecretKeyNotFound), errors.Is(err, vault.ErrEmptyResponse):
		return codes.NotFound
	case errors.Is(err, vault.ErrUnavailable):
		return codes.Unavailable
	case errors.Is(err, auth.ErrNoToken):
		return codes.FailedPrecondition
	case errors.Is(err, render.ErrTooLarge), errors.Is(err, vault.ErrTooLarge), errors.Is(err, render.ErrBudget):
		return codes.ResourceExhausted
	}
	return codes.Internal
}
