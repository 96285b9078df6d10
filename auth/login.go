package auth

import (
	"context"
	"errors"
	"fmt"

	"github.com/vaultcsi/vault-csi-provider/vault"
)

// ErrLoginDenied means Vault refused the pod's login (HTTP 400 or 403):
// Vault answers 400 for an unknown role or a claim that does not match, and
// 403 for an unbound service account or an auth mount that does not exist.
var ErrLoginDenied = errors.New("vault denied login")

// Login is what a login needs besides the identity: the connection to log
// in on and the service-account tokens the driver sent, by audience.
type Login struct {
	Conn   *vault.Conn
	Tokens map[string]Token
	// Outlives, without a token cache (-cache-size=0), reports whether what
	// use read lives only as long as the token (leases, the token itself):
	// that token is left to its TTL, any other revoked when use returns.
	Outlives func() bool
}

// Use runs use with a Vault session for id: the cached one while it is
// good, else one from a new login. When use fails with a 403 on a cached
// token and lookup-self says the token is gone, it is dropped and use runs
// once more after a new login; a token Vault still knows is kept.
func (s *Sessions) Use(ctx context.Context, id Identity, l Login, use func(vault.Session) error) error {
	login := func(ctx context.Context) (vault.Session, error) { return s.logIn(ctx, id, l) }
	sess, fresh, err := s.get(ctx, id, login)
	if err != nil {
		return err
	}
	err = use(sess.On(l.Conn)) // On: rotated CA or client certificate files
	if s.cache == nil && (l.Outlives == nil || !l.Outlives()) {
		s.retire(sess) // nothing else will use it
	}
	if err == nil || fresh || !vault.IsPermissionDenied(err) {
		return err
	}
	lookupErr := vault.LookupSelf(ctx, sess.On(l.Conn))
	s.Metrics.VaultRequest("token_lookup", vault.StatusClass(lookupErr))
	if !vault.IsPermissionDenied(lookupErr) {
		return err
	}
	if s.Log != nil {
		s.Log.Info("vault refused the cached token; logging in again", "pod", id.Pod.String(), "role", id.Role, "reason", "lookup-self: the token is gone")
	}
	s.Forget(ctx, id)
	if sess, _, err = s.get(ctx, id, login); err != nil {
		return err
	}
	return use(sess.On(l.Conn))
}

// logIn exchanges the pod's service-account token for a Vault token.
func (s *Sessions) logIn(ctx context.Context, id Identity, l Login) (vault.Session, error) {
	tok, err := s.Tokens.Token(ctx, id.Pod, id.Audience, l.Tokens)
	if err != nil {
		return vault.Session{}, fmt.Errorf("pod %s: %w", id.Pod, err)
	}
	sess, err := vault.Login(ctx, l.Conn, id.Vault.AuthMount, id.Role, tok.Value)
	s.Metrics.VaultRequest("login", vault.StatusClass(err))
	if err != nil {
		return vault.Session{}, explainLogin(err, id)
	}
	if s.Log != nil {
		s.Log.Debug("logged in to vault", "pod", id.Pod.String(), "role", id.Role, "mount", id.Vault.AuthMount, "ttl", sess.TTL)
	}
	return sess, nil
}

// explainLogin says what a failed login means for this pod and role.
func explainLogin(err error, id Identity) error {
	sa := id.Pod.Namespace + "/" + id.Pod.ServiceAccount
	where := fmt.Sprintf("auth/%s on %s", id.Vault.AuthMount, id.Vault.Address)
	switch {
	case errors.Is(err, vault.ErrPermissionDenied), errors.Is(err, vault.ErrInvalidRequest):
		return kindError{kind: ErrLoginDenied, err: fmt.Errorf("vault role %q denied login for service account %s at %s (%w); check that roleName names a role of that auth method, "+
			"that the role's bound_service_account_names and bound_service_account_namespaces (kubernetes auth) or bound_subject and bound_audiences (jwt auth) admit this service account, "+
			"that its audience matches %q, and that vaultAuthMountPath is where the kubernetes or jwt auth method is mounted",
			id.Role, sa, where, err, id.Audience)}
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("login to vault at %s timed out: %w; check that Vault is reachable from the node", id.Vault.Address, err)
	case errors.Is(err, vault.ErrTLSVerify), errors.Is(err, vault.ErrTLSRefused):
		return ExplainTLS(err, id.Vault.Address)
	case errors.Is(err, vault.ErrNotAllowed):
		return fmt.Errorf("vaultAddress %s: %w", id.Vault.Address, err)
	case errors.Is(err, vault.ErrUnavailable):
		return fmt.Errorf("cannot log in to vault at %s: %w; check vaultAddress and that Vault is running and unsealed", id.Vault.Address, err)
	}
	return fmt.Errorf("login to vault at %s with role %q: %w", id.Vault.Address, id.Role, err)
}

// ExplainTLS says which TLS setting to look at: Vault's certificate did not
// verify (CA, server name), or Vault refused the handshake (it may require
// a client certificate).
func ExplainTLS(err error, address string) error {
	if errors.Is(err, vault.ErrTLSRefused) {
		return fmt.Errorf("vault at %s refused the TLS handshake: %w; if it requires client certificates, set vaultTLSClientCertPath and vaultTLSClientKeyPath "+
			"to a certificate and key its CA accepts (files in the provider's container)", address, err)
	}
	return fmt.Errorf("TLS verification of vault at %s failed: %w; set vaultCACertPath (or vaultCADirectory) to the CA that signed Vault's certificate "+
		"(a file in the provider's container), and vaultTLSServerName if the address is not a name in that certificate", address, err)
}

// kindError gives an error a kind for errors.Is without changing its message.
type kindError struct {
	err  error
	kind error
}

func (e kindError) Error() string   { return e.err.Error() }
func (e kindError) Unwrap() []error { return []error{e.kind, e.err} }
