package vault

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vaultcsi/vault-csi-provider/config"
)

// These tests put a recording server in Vault's place: they read what goes
// on the wire, and need answers (412, a standby's redirect, a 503 for one
// request only) that a single real Vault does not give on demand. The integration tests read through Do from real Vault
// servers, sealed and rate-limited ones among them.

// seen is one request as the server received it.
type seen struct {
	Method, Path, Query string
	Header              http.Header
	Body                string
}

type recorder struct {
	mu   sync.Mutex
	got  []seen
	next func(w http.ResponseWriter, r *http.Request) // nil: a secret
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.got = append(rec.got, seen{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: string(body)})
	next := rec.next
	rec.mu.Unlock()
	if next != nil {
		next(w, r)
		return
	}
	_, _ = io.WriteString(w, `{"data":{"password":"p"}}`)
}

func (rec *recorder) take() []seen {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	got := rec.got
	rec.got = nil
	return got
}

// What reaches the wire, over TLS as users run it: every request carries
// X-Vault-Request (a Vault Agent or Proxy with require_request_header
// refuses any without it), the token, the namespace and the wrapping TTL
// only when asked, and the body as JSON; nothing planted in the provider's
// environment (VAULT_HEADERS, VAULT_WRAP_TTL, VAULT_NAMESPACE) is sent.
func TestWhatReachesTheWire(t *testing.T) {
	t.Setenv("VAULT_WRAP_TTL", "5m")
	t.Setenv("VAULT_HEADERS", `{"X-Planted":"1"}`)
	t.Setenv("VAULT_NAMESPACE", "planted")
	rec := &recorder{}
	srv := httptest.NewTLSServer(rec)
	defer srv.Close()
	caFile := writeCA(t, srv)
	for _, ns := range []string{"", "team-a/"} {
		conn, err := NewClients(10 * time.Second).Get(config.Vault{Address: srv.URL + "/", Namespace: ns, CACert: caFile})
		require.NoError(t, err)
		sess := Session{client: conn, token: "hvs.test"}
		for _, tc := range []struct {
			r     Request
			path  string
			query string
			body  string
		}{
			{r: Request{Method: http.MethodGet, Path: "secret/data/app"}, path: "/v1/secret/data/app"},
			{r: Request{Method: http.MethodGet, Path: "secret/data/a b", Query: url.Values{"version": {"3"}, "x": {"a&b"}}}, path: "/v1/secret/data/a b", query: "version=3&x=a%26b"},
			{r: Request{Method: http.MethodPut, Path: "pki/issue/web", Body: map[string]any{"common_name": "web.example", "ttl": "1h"}}, path: "/v1/pki/issue/web", body: `{"common_name":"web.example","ttl":"1h"}`},
			{r: Request{Method: http.MethodPost, Path: "sys/wrapping/wrap", Body: map[string]any{"k": "v"}, WrapTTL: 90 * time.Second}, path: "/v1/sys/wrapping/wrap", body: `{"k":"v"}`},
		} {
			_, err := Do(context.Background(), sess, tc.r)
			require.NoError(t, err)
			got := rec.take()
			require.Len(t, got, 1, "one request, no retry")
			g := got[0]
			assert.Equal(t, tc.r.Method, g.Method)
			assert.Equal(t, tc.path, g.Path)
			assert.Equal(t, tc.query, g.Query)
			if tc.body == "" {
				assert.Empty(t, g.Body)
			} else {
				assert.JSONEq(t, tc.body, g.Body)
			}
			assert.Equal(t, "true", g.Header.Get("X-Vault-Request"))
			assert.Equal(t, "hvs.test", g.Header.Get("X-Vault-Token"))
			assert.Equal(t, ns, g.Header.Get("X-Vault-Namespace"))
			assert.Empty(t, g.Header.Get("X-Planted"))
			if tc.r.WrapTTL == 0 {
				assert.Empty(t, g.Header.Get("X-Vault-Wrap-TTL"), "VAULT_WRAP_TTL wraps nothing")
			} else {
				assert.Equal(t, "90s", g.Header.Get("X-Vault-Wrap-TTL"))
			}
		}
		rec.next = func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, `{"auth":{"client_token":"hvs.new","lease_duration":60}}`)
		}
		_, err = Login(context.Background(), conn, "kubernetes", "app", "jwt-value")
		rec.next = nil
		require.NoError(t, err)
		got := rec.take()
		require.Len(t, got, 1)
		assert.Equal(t, http.MethodPost, got[0].Method)
		assert.Equal(t, "/v1/auth/kubernetes/login", got[0].Path)
		assert.JSONEq(t, `{"role":"app","jwt":"jwt-value"}`, got[0].Body)
		assert.Equal(t, "true", got[0].Header.Get("X-Vault-Request"))
		assert.Empty(t, got[0].Header.Get("X-Vault-Token"))
	}
}

// What Vault answers decides what happens to a PUT (pki/issue, db/creds):
// a standby's redirect to its own host is followed, carrying the token and
// the body; 412, 429 and 503, which Vault sends without acting, are sent
// again and the read succeeds; a 502, which a proxy may send after Vault
// acted, is not (a second certificate); any other error is Vault's, given
// at once with its message, after one request.
func TestReadRetriesAndRedirects(t *testing.T) {
	active := &recorder{}
	activeSrv := httptest.NewServer(active)
	defer activeSrv.Close()
	for _, tc := range []struct {
		status   int
		requests int // to the first server
		active   int // to the redirect's target
		kind     error
	}{
		{status: http.StatusTemporaryRedirect, requests: 1, active: 1},
		{status: http.StatusPreconditionFailed, requests: 2},
		{status: http.StatusTooManyRequests, requests: 2},
		{status: http.StatusServiceUnavailable, requests: 2},
		{status: http.StatusBadGateway, requests: 1, kind: ErrUnavailable},
		{status: http.StatusNotFound, requests: 1, kind: ErrNotFound},
		{status: http.StatusForbidden, requests: 1, kind: ErrPermissionDenied},
		{status: http.StatusBadRequest, requests: 1, kind: ErrInvalidRequest},
	} {
		var answered atomic.Int32
		rec := &recorder{next: func(w http.ResponseWriter, r *http.Request) {
			if tc.status == http.StatusTemporaryRedirect {
				w.Header().Set("Location", activeSrv.URL+r.URL.RequestURI())
				w.WriteHeader(tc.status)
				return
			}
			if answered.Add(1) == 1 {
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, `{"errors":["1 error occurred:\n\t* planted failure\n\n"]}`)
				return
			}
			_, _ = io.WriteString(w, `{"data":{"password":"p"}}`)
		}}
		srv := httptest.NewServer(rec)
		conn, err := NewClients(10 * time.Second).Get(config.Vault{Address: srv.URL})
		require.NoError(t, err)
		body, err := Do(context.Background(), Session{client: conn, token: "t"}, Request{Method: http.MethodPut, Path: "db/creds/app", Body: map[string]any{"a": 1}})
		if tc.kind == nil {
			require.NoError(t, err, "status %d", tc.status)
			assert.JSONEq(t, `{"data":{"password":"p"}}`, string(body))
		} else {
			require.ErrorIs(t, err, tc.kind, "status %d", tc.status)
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, tc.status, e.Status)
			assert.Equal(t, "planted failure", e.Detail)
		}
		got := rec.take()
		assert.Len(t, got, tc.requests, "status %d", tc.status)
		for _, g := range got {
			assert.JSONEq(t, `{"a":1}`, g.Body, "status %d: the body is sent whole every time", tc.status)
		}
		redirected := active.take()
		assert.Len(t, redirected, tc.active, "status %d", tc.status)
		for _, g := range redirected {
			assert.JSONEq(t, `{"a":1}`, g.Body, "the body follows the redirect")
			assert.Equal(t, "t", g.Header.Get("X-Vault-Token"))
		}
		srv.Close()
	}
}

// BenchmarkRead is a warm read's CPU on the provider's side and the
// server's (a recording server in Vault's place, on loopback).
func BenchmarkRead(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"data":{"data":{"password":"p"}}}`)
	}))
	defer srv.Close()
	conn, err := NewClients(10 * time.Second).Get(config.Vault{Address: srv.URL})
	require.NoError(b, err)
	sess := Session{client: conn, token: "hvs.CAESIJ0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH"}
	r := Request{Method: http.MethodGet, Path: "secret/data/app"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Do(context.Background(), sess, r); err != nil {
			b.Fatal(err)
		}
	}
}
