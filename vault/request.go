package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/hashicorp/vault/api"
)

// MaxResponseBytes bounds what is read of one Vault response.
const MaxResponseBytes = 8 << 20

// Request is one call to Vault's logical API.
type Request struct {
	Method string // GET, PUT or POST
	Path   string // without /v1/
	Query  url.Values
	Body   map[string]any // sent as JSON with PUT and POST
	// WrapTTL asks Vault to response-wrap the answer for this long.
	WrapTTL time.Duration
}

// Session is a Vault token obtained by a login.
type Session struct {
	// Client carries the token; it is a clone of the base client.
	Client *api.Client
	// TTL is the token's lease duration as Vault granted it.
	TTL       time.Duration
	Renewable bool
	Accessor  string
	// Serial tells this login from every other of the process (auth.Sessions
	// numbers them): what is cached under a token, its leases, is cached
	// under its serial, since Vault revokes a token's leases with it.
	Serial uint64

	base *api.Client // Client is its clone
}

// On returns the session on base: the same token through base's connection
// when the session was made on another client (its CA or client
// certificate files changed since the login), else s itself.
func (s Session) On(base *api.Client) (Session, error) {
	if s.base == base || s.Client == nil {
		return s, nil
	}
	client, err := base.Clone()
	if err != nil {
		return s, err
	}
	client.SetToken(s.Client.Token())
	client.SetNamespace(s.Client.Namespace())
	if s.Client.Namespace() == "" {
		client.ClearNamespace()
	}
	s.Client, s.base = client, base
	return s, nil
}

// Login logs in with a JWT (kubernetes or jwt auth method) at auth/<mount>/login.
func Login(ctx context.Context, base *api.Client, mount, role, jwt string) (Session, error) {
	path := "auth/" + mount + "/login"
	client, err := base.Clone()
	if err != nil {
		return Session{}, fmt.Errorf("login %s: %w", path, err)
	}
	client.SetNamespace(base.Namespace())
	if base.Namespace() == "" {
		client.ClearNamespace()
	}
	client.ClearToken()
	secret, err := client.Logical().WriteWithContext(expectSmallAnswer(ctx), path, map[string]any{"role": role, "jwt": jwt})
	if err != nil {
		return Session{}, classify(ctx, "login", http.MethodPost, path, 0, err, jwt)
	}
	if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
		return Session{}, &Error{Op: "login", Method: http.MethodPost, Path: path, Kind: ErrEmptyResponse, Detail: "the response has no auth.client_token"}
	}
	client.SetToken(secret.Auth.ClientToken)
	return Session{
		base:      base,
		Client:    client,
		TTL:       time.Duration(secret.Auth.LeaseDuration) * time.Second,
		Renewable: secret.Auth.Renewable,
		Accessor:  secret.Auth.Accessor,
	}, nil
}

// Do sends r with the session's token and returns the response body.
func Do(ctx context.Context, client *api.Client, r Request) ([]byte, error) {
	req := client.NewRequest(r.Method, "/v1/"+r.Path)
	if len(r.Query) > 0 {
		req.Params = r.Query
	}
	if r.WrapTTL > 0 {
		req.WrapTTL = fmt.Sprintf("%ds", int(r.WrapTTL/time.Second))
	}
	if r.Method != http.MethodGet && r.Body != nil {
		if err := req.SetJSONBody(r.Body); err != nil {
			return nil, fmt.Errorf("read %s %s: secretArgs cannot be sent as JSON: %w", r.Method, r.Path, err)
		}
	}
	// The only client call that takes a method, query parameters and a body together.
	resp, err := client.RawRequestWithContext(ctx, req) //nolint:staticcheck // see above
	if resp != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		return nil, classify(ctx, "read", r.Method, r.Path, 0, err, "")
	}
	if resp.StatusCode == http.StatusNoContent {
		return nil, &Error{Op: "read", Method: r.Method, Path: r.Path, Status: resp.StatusCode, Kind: ErrEmptyResponse,
			Detail: "the path answered with no data: check that it is a path that returns a secret"}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return nil, classify(ctx, "read", r.Method, r.Path, resp.StatusCode, err, "")
	}
	if len(body) > MaxResponseBytes {
		return nil, &Error{Op: "read", Method: r.Method, Path: r.Path, Status: resp.StatusCode, Kind: ErrTooLarge,
			Detail: fmt.Sprintf("the response is over %d bytes", MaxResponseBytes)}
	}
	if !json.Valid(body) {
		return nil, &Error{Op: "read", Method: r.Method, Path: r.Path, Status: resp.StatusCode, Kind: ErrInvalidRequest,
			Detail: "the response is not JSON: check vaultAddress points at Vault's API"}
	}
	return body, nil
}

// IsPermissionDenied reports whether err is Vault's 403.
func IsPermissionDenied(err error) bool { return errors.Is(err, ErrPermissionDenied) }

// RenewSelf renews the session's token by its original TTL and returns the
// TTL Vault granted (less than asked for when the token's max TTL is near).
func RenewSelf(ctx context.Context, s Session) (time.Duration, error) {
	secret, err := s.Client.Auth().Token().RenewSelfWithContext(ctx, int(s.TTL/time.Second))
	if err != nil {
		return 0, classify(ctx, "renew", http.MethodPut, "auth/token/renew-self", 0, err, "")
	}
	if secret == nil || secret.Auth == nil {
		return 0, &Error{Op: "renew", Method: http.MethodPut, Path: "auth/token/renew-self", Kind: ErrEmptyResponse, Detail: "the response has no auth"}
	}
	return time.Duration(secret.Auth.LeaseDuration) * time.Second, nil
}

// RevokeSelf revokes the session's token and, with it, every lease it created.
func RevokeSelf(ctx context.Context, s Session) error {
	if err := s.Client.Auth().Token().RevokeSelfWithContext(ctx, ""); err != nil {
		return classify(ctx, "revoke", http.MethodPut, "auth/token/revoke-self", 0, err, "")
	}
	return nil
}

// RenewLease extends a lease by increment and returns the TTL Vault granted.
func RenewLease(ctx context.Context, client *api.Client, leaseID string, increment time.Duration) (time.Duration, error) {
	secret, err := client.Sys().RenewWithContext(ctx, leaseID, int(increment/time.Second))
	if err != nil {
		return 0, classify(ctx, "renew", http.MethodPut, "sys/leases/renew", 0, err, "")
	}
	if secret == nil {
		return 0, &Error{Op: "renew", Method: http.MethodPut, Path: "sys/leases/renew", Kind: ErrEmptyResponse, Detail: "the response is empty"}
	}
	return time.Duration(secret.LeaseDuration) * time.Second, nil
}

// LookupSelf asks Vault whether the session's token is still valid: nil
// when it is, ErrPermissionDenied when Vault no longer knows it.
func LookupSelf(ctx context.Context, s Session) error {
	if _, err := s.Client.Auth().Token().LookupSelfWithContext(ctx); err != nil {
		return classify(ctx, "lookup", http.MethodGet, "auth/token/lookup-self", 0, err, "")
	}
	return nil
}
