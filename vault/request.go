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
	// Hold, if set, reserves n more bytes of the answer before they are
	// read; its error ends the read.
	Hold func(n int64) error
	// Small bounds the answer to MaxErrorBodyBytes (a lookup of Vault's own).
	Small bool
}

// Session is a Vault token obtained by a login, sent on each request through
// the shared connection: a cached identity costs a token, not a client.
type Session struct {
	// TTL is the token's lease duration as Vault granted it.
	TTL       time.Duration
	Renewable bool
	Accessor  string
	// Serial tells this login from every other of the process (auth.Sessions
	// numbers them): what is cached under a token, its leases, is cached
	// under its serial, since Vault revokes a token's leases with it.
	Serial uint64

	token  string
	client *Conn // the connection the session was made on
}

// Token is the session's Vault token.
func (s Session) Token() string { return s.token }

// On returns the session's token on base (rotated CA or client certificate files).
func (s Session) On(base *Conn) Session {
	s.client = base
	return s
}

// request is a request to path (without /v1/) with the session's token.
func (s Session) request(method, path string) *api.Request {
	r := s.client.api.NewRequest(method, "/v1/"+path)
	r.ClientToken = s.token
	return r
}

// call sends a small request (login, renewal, revocation, lookup) and
// parses the answer as a secret (nil for 204); redact is kept out of errors.
func (s Session) call(ctx context.Context, op, method, path string, body map[string]any, redact string) (*api.Secret, error) {
	r := s.request(method, path)
	if body != nil {
		if err := r.SetJSONBody(body); err != nil {
			return nil, fmt.Errorf("%s %s: %w", op, path, err)
		}
	}
	resp, err := s.client.api.RawRequestWithContext(expectSmallAnswer(marked(ctx, method)), r) //nolint:staticcheck // the only client call that takes a request with its own token
	if resp != nil {
		defer resp.Body.Close()
	}
	var secret *api.Secret
	if err == nil && resp.StatusCode != http.StatusNoContent {
		secret, err = api.ParseSecret(resp.Body)
	}
	if err != nil {
		return nil, classify(ctx, op, method, path, resp, err, redact)
	}
	return secret, nil
}

// Login logs in with a JWT (kubernetes or jwt auth method) at auth/<mount>/login.
func Login(ctx context.Context, base *Conn, mount, role, jwt string) (Session, error) {
	path := "auth/" + mount + "/login"
	secret, err := Session{client: base}.call(ctx, "login", http.MethodPost, path, map[string]any{"role": role, "jwt": jwt}, jwt)
	if err != nil {
		return Session{}, err
	}
	if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
		return Session{}, &Error{Op: "login", Method: http.MethodPost, Path: path, Kind: ErrEmptyResponse, Detail: "the response has no auth.client_token"}
	}
	return Session{
		client:    base,
		token:     secret.Auth.ClientToken,
		TTL:       time.Duration(secret.Auth.LeaseDuration) * time.Second,
		Renewable: secret.Auth.Renewable,
		Accessor:  secret.Auth.Accessor,
	}, nil
}

// Do sends r with the session's token through the Vault API client
// (X-Vault-Request, redirects, retries) and returns the bounded body.
func Do(ctx context.Context, s Session, r Request) ([]byte, error) {
	req := s.request(r.Method, r.Path)
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
	if r.Small {
		ctx = expectSmallAnswer(ctx)
	}
	resp, err := s.client.api.RawRequestWithContext(marked(ctx, r.Method), req) //nolint:staticcheck // the only client call that takes a method, query parameters, a body and a token together
	if resp != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		return nil, classify(ctx, "read", r.Method, r.Path, resp, err, "")
	}
	if resp.StatusCode == http.StatusNoContent {
		return nil, &Error{Op: "read", Method: r.Method, Path: r.Path, Status: resp.StatusCode, Kind: ErrEmptyResponse,
			Detail: "the path answered with no data: check that it is a path that returns a secret"}
	}
	answer, err := readBody(resp.Body, resp.ContentLength, r.Hold)
	if why := (refused{}); errors.As(err, &why) {
		return nil, why.err
	}
	if err != nil {
		return nil, classify(ctx, "read", r.Method, r.Path, resp, err, "")
	}
	if len(answer) > MaxResponseBytes {
		return nil, &Error{Op: "read", Method: r.Method, Path: r.Path, Status: resp.StatusCode, Kind: ErrTooLarge,
			Detail: fmt.Sprintf("the response is over %d bytes", MaxResponseBytes)}
	}
	if !json.Valid(answer) {
		return nil, &Error{Op: "read", Method: r.Method, Path: r.Path, Status: resp.StatusCode, Kind: ErrInvalidRequest,
			Detail: "the response is not JSON: check vaultAddress points at Vault's API"}
	}
	return answer, nil
}

// readBody reads up to MaxResponseBytes and one byte more, to tell a larger
// answer, holding each buffer before it is allocated: the Content-Length at
// once, else 4 KiB, doubled as the answer arrives.
func readBody(r io.Reader, length int64, hold func(int64) error) ([]byte, error) {
	if hold == nil {
		hold = func(int64) error { return nil }
	}
	size := int64(4 << 10)
	if length >= 0 && length <= MaxResponseBytes {
		size = length + 1
	}
	if err := hold(size); err != nil {
		return nil, refused{err}
	}
	buf := make([]byte, 0, size)
	for {
		if len(buf) == cap(buf) {
			more := min(int64(cap(buf)), MaxResponseBytes+1-int64(cap(buf)))
			if more <= 0 {
				return buf, nil // Do tells the answer is over MaxResponseBytes
			}
			if err := hold(more); err != nil {
				return nil, refused{err}
			}
			grown := make([]byte, len(buf), int64(cap(buf))+more)
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// refused is Hold's error.
type refused struct{ err error }

func (r refused) Error() string { return r.err.Error() }

// IsPermissionDenied reports whether err is Vault's 403.
func IsPermissionDenied(err error) bool { return errors.Is(err, ErrPermissionDenied) }

// RenewSelf renews the session's token by its TTL and returns what Vault granted.
func RenewSelf(ctx context.Context, s Session) (time.Duration, error) {
	const path = "auth/token/renew-self"
	secret, err := s.call(ctx, "renew", http.MethodPut, path, map[string]any{"increment": int(s.TTL / time.Second)}, "")
	if err != nil {
		return 0, err
	}
	if secret == nil || secret.Auth == nil {
		return 0, &Error{Op: "renew", Method: http.MethodPut, Path: path, Kind: ErrEmptyResponse, Detail: "the response has no auth"}
	}
	return time.Duration(secret.Auth.LeaseDuration) * time.Second, nil
}

// RevokeSelf revokes the session's token and, with it, every lease it created.
func RevokeSelf(ctx context.Context, s Session) error {
	_, err := s.call(ctx, "revoke", http.MethodPut, "auth/token/revoke-self", nil, "")
	return err
}

// RenewLease extends a lease by increment and returns the TTL Vault granted.
func RenewLease(ctx context.Context, s Session, leaseID string, increment time.Duration) (time.Duration, error) {
	const path = "sys/leases/renew"
	secret, err := s.call(ctx, "renew", http.MethodPut, path, map[string]any{"lease_id": leaseID, "increment": int(increment / time.Second)}, "")
	if err != nil {
		return 0, err
	}
	if secret == nil {
		return 0, &Error{Op: "renew", Method: http.MethodPut, Path: path, Kind: ErrEmptyResponse, Detail: "the response is empty"}
	}
	return time.Duration(secret.LeaseDuration) * time.Second, nil
}

// LookupSelf is nil while the token is valid, ErrPermissionDenied when Vault forgot it.
func LookupSelf(ctx context.Context, s Session) error {
	_, err := s.call(ctx, "lookup", http.MethodGet, "auth/token/lookup-self", nil, "")
	return err
}

// MaxErrorBodyBytes bounds what is read of an error answer (400 and above)
// and of a login's: Vault's own are at most a few KiB.
const MaxErrorBodyBytes = 64 << 10

// smallAnswer marks a request whose answer is small however it ends (a login).
type smallAnswer struct{}

func expectSmallAnswer(ctx context.Context) context.Context {
	return context.WithValue(ctx, smallAnswer{}, true)
}

// errBodyTooLarge is the error reading past a body's bound.
var errBodyTooLarge = errors.New("vault response body over its bound")

// boundedBodies is the Vault client's transport: no body is read past its
// bound, whichever code reads it, the API client's or ours.
type boundedBodies struct {
	next http.RoundTripper
}

func (b boundedBodies) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := b.next.RoundTrip(r)
	if err != nil || resp.Body == nil {
		return resp, err
	}
	limit := int64(MaxResponseBytes) + 1 // Do says which read was over MaxResponseBytes
	if resp.StatusCode >= 400 || r.Context().Value(smallAnswer{}) != nil {
		limit = MaxErrorBodyBytes
	}
	resp.Body = &boundedBody{body: resp.Body, left: limit}
	return resp, nil
}

// boundedBody fails a read past its bound instead of returning more.
type boundedBody struct {
	body io.ReadCloser
	left int64
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		if n, _ := b.body.Read(one[:]); n > 0 {
			return 0, fmt.Errorf("%w: stopped reading it", errBodyTooLarge)
		}
		return b.body.Read(p[:0]) // EOF or the body's own error
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.body.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *boundedBody) Close() error { return b.body.Close() }

// marked tells the retry policy that a request may change something.
func marked(ctx context.Context, method string) context.Context {
	if method == http.MethodGet {
		return ctx
	}
	return context.WithValue(ctx, mayChange{}, true)
}
