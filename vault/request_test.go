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

// These tests put a recording server in Vault's place: they compare what
// goes on the wire byte for byte, and need answers (412, a standby's
// redirect, a 503 for one request only) that a single real Vault does not
// give on demand. The integration tests read through Do from real Vault
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

// A read sent straight to the transport is the request the Vault API client
// sends: method, path, query, token, namespace, wrapping TTL and body alike.
// VAULT_WRAP_TTL in the provider's environment wraps neither (only the
// documented VAULT_* variables count).
func TestDirectReadIsTheAPIClientsRequest(t *testing.T) {
	t.Setenv("VAULT_WRAP_TTL", "5m")
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	for _, ns := range []string{"", "team-a/"} {
		conn, err := NewClients(10 * time.Second).Get(config.Vault{Address: srv.URL + "/", Namespace: ns})
		require.NoError(t, err)
		sess := Session{client: conn, token: "hvs.test"}
		for _, r := range []Request{
			{Method: http.MethodGet, Path: "secret/data/app"},
			{Method: http.MethodGet, Path: "secret/data/a b", Query: url.Values{"version": {"3"}, "x": {"a&b"}}},
			{Method: http.MethodPut, Path: "pki/issue/web", Body: map[string]any{"common_name": "web.example", "ttl": "1h"}},
			{Method: http.MethodPost, Path: "sys/wrapping/wrap", Body: map[string]any{"k": "v"}, WrapTTL: 90 * time.Second},
		} {
			ctx := context.Background()
			body, err := marshalBody(r)
			require.NoError(t, err)
			resp, err := sess.direct(ctx, r, body)
			require.NoError(t, err)
			_ = resp.Body.Close()
			resp, err = sess.viaAPI(ctx, r, body)
			require.NoError(t, err)
			_ = resp.Body.Close()
			got := rec.take()
			require.Len(t, got, 2)
			direct, viaAPI := got[0], got[1]
			assert.Equal(t, viaAPI, direct, "namespace %q, %s %s", ns, r.Method, r.Path)
			assert.Equal(t, "hvs.test", direct.Header.Get("X-Vault-Token"))
			assert.Equal(t, ns, direct.Header.Get("X-Vault-Namespace"))
			if r.WrapTTL == 0 {
				assert.Empty(t, direct.Header.Get("X-Vault-Wrap-TTL"), "VAULT_WRAP_TTL wraps nothing")
			} else {
				assert.Equal(t, "90s", direct.Header.Get("X-Vault-Wrap-TTL"))
			}
		}
	}
}

// What Vault answers decides who sends the read: an answer the API client
// acts on (a standby's redirect, 412, 429, 5xx) sends it again through the
// client, and the read succeeds; any other error is Vault's, given at once
// with its message, after one request.
func TestReadFallsBackToTheAPIClient(t *testing.T) {
	active := &recorder{}
	activeSrv := httptest.NewServer(active)
	defer activeSrv.Close()
	for _, tc := range []struct {
		status   int
		requests int // to the first server
		active   int // to the redirect's target
		kind     error
	}{
		{status: http.StatusTemporaryRedirect, requests: 2, active: 1}, // a standby redirects every time
		{status: http.StatusPreconditionFailed, requests: 2},
		{status: http.StatusTooManyRequests, requests: 2},
		{status: http.StatusServiceUnavailable, requests: 2},
		{status: http.StatusBadGateway, requests: 2},
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
		start := time.Now()
		body, err := Do(context.Background(), Session{client: conn, token: "t"}, Request{Method: http.MethodPut, Path: "db/creds/app", Body: map[string]any{"a": 1}})
		if tc.kind == nil {
			require.NoError(t, err, "status %d", tc.status)
			assert.JSONEq(t, `{"data":{"password":"p"}}`, string(body))
			assert.Less(t, time.Since(start), 900*time.Millisecond, "status %d: the API client's first try has no back-off", tc.status)
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

// BenchmarkRead is a warm read's CPU on the provider's side and the server's
// (a recording server in Vault's place, on loopback): straight to the
// transport as Do sends it, and through the API client as before.
func BenchmarkRead(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"data":{"data":{"password":"p"}}}`)
	}))
	defer srv.Close()
	conn, err := NewClients(10 * time.Second).Get(config.Vault{Address: srv.URL})
	require.NoError(b, err)
	sess := Session{client: conn, token: "hvs.CAESIJ0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH"}
	r := Request{Method: http.MethodGet, Path: "secret/data/app"}
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Do(context.Background(), sess, r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("api", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			resp, err := sess.viaAPI(context.Background(), r, nil)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
	})
}
