package vault

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vaultcsi/vault-csi-provider/config"
)

// These tests put a server of their own in Vault's place: the faults they
// need (a kept connection closed under the client, an answer that never
// comes, an answer cut off) are ones a real Vault cannot be made to show on
// demand. The provider's integration and e2e tests run the same transport
// against real Vault servers.

// connCounter is a plain-http server that counts the connections made to it.
type connCounter struct {
	*httptest.Server
	opened, closed atomic.Int32
}

func newConnCounter(t *testing.T, h http.HandlerFunc) *connCounter {
	c := &connCounter{}
	c.Server = httptest.NewUnstartedServer(h)
	c.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			c.opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			c.closed.Add(1)
		}
	}
	c.Start()
	t.Cleanup(c.Close)
	return c
}

func secretAnswer(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"data":{"data":{"password":"p"}}}`)
}

// Reads one after another share one connection, and parallel reads no more
// connections than there are reads at once.
func TestInlineTransportReusesConnections(t *testing.T) {
	srv := newConnCounter(t, secretAnswer)
	client, err := NewClients(10 * time.Second).Get(config.Vault{Address: srv.URL})
	require.NoError(t, err)
	sess := Session{client: client, token: "t"}
	for range 50 {
		body, err := Do(context.Background(), sess, Request{Method: http.MethodGet, Path: "secret/data/app"})
		require.NoError(t, err)
		assert.JSONEq(t, `{"data":{"data":{"password":"p"}}}`, string(body))
	}
	assert.EqualValues(t, 1, srv.opened.Load(), "50 reads in a row, one connection")

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				_, err := Do(context.Background(), sess, Request{Method: http.MethodGet, Path: "secret/data/app"})
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
	assert.LessOrEqual(t, srv.opened.Load(), int32(9), "8 readers at once: at most 8 connections more")
}

// Vault closing kept connections (a restart, its idle timeout, a load
// balancer's) costs no failed request: reads and logins (a POST) go out on
// a new connection.
func TestInlineTransportSurvivesClosedConnections(t *testing.T) {
	srv := newConnCounter(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/login") {
			_, _ = io.Copy(io.Discard, r.Body)
			_, _ = io.WriteString(w, `{"auth":{"client_token":"s.new","lease_duration":60}}`)
			return
		}
		secretAnswer(w, r)
	})
	client, err := NewClients(10 * time.Second).Get(config.Vault{Address: srv.URL})
	require.NoError(t, err)
	for i := range 5 {
		start := time.Now()
		_, err := Do(context.Background(), Session{client: client, token: "t"}, Request{Method: http.MethodGet, Path: "secret/data/app"})
		require.NoError(t, err)
		sess, err := Login(context.Background(), client, "kubernetes", "app", "jwt")
		require.NoError(t, err)
		assert.Equal(t, "s.new", sess.Token())
		assert.Less(t, time.Since(start), 500*time.Millisecond, "no retry with back-off (round %d)", i)
		srv.CloseClientConnections()
		require.Eventually(t, func() bool { return srv.closed.Load() == srv.opened.Load() }, 5*time.Second, 5*time.Millisecond)
	}
	assert.EqualValues(t, 5, srv.opened.Load(), "one new connection after each close")
}

// A kept connection that Vault closes after taking the request but before
// answering (its idle timeout striking just then) is retried at once on a
// new connection, not after the API client's back-off of a second.
func TestInlineTransportRetriesAnAnswerCutOff(t *testing.T) {
	var served atomic.Int32
	srv := newConnCounter(t, func(w http.ResponseWriter, r *http.Request) {
		if served.Add(1) == 2 {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = conn.Close()
			}
			return
		}
		secretAnswer(w, r)
	})
	client, err := NewClients(10 * time.Second).Get(config.Vault{Address: srv.URL})
	require.NoError(t, err)
	sess := Session{client: client, token: "t"}
	_, err = Do(context.Background(), sess, Request{Method: http.MethodGet, Path: "secret/data/app"})
	require.NoError(t, err)
	start := time.Now()
	_, err = Do(context.Background(), sess, Request{Method: http.MethodGet, Path: "secret/data/app"})
	require.NoError(t, err)
	assert.Less(t, time.Since(start), 500*time.Millisecond)
	assert.EqualValues(t, 3, served.Load(), "the cut-off request was sent again")
	assert.EqualValues(t, 2, srv.opened.Load())
}

// A mount's deadline ends a read Vault does not answer, at the deadline,
// and the connection is not used again.
func TestInlineTransportKeepsDeadlines(t *testing.T) {
	release := make(chan struct{})
	srv := newConnCounter(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "slow") {
			<-release
		}
		secretAnswer(w, r)
	})
	defer close(release)
	client, err := NewClients(10 * time.Second).Get(config.Vault{Address: srv.URL})
	require.NoError(t, err)
	sess := Session{client: client, token: "t"}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = Do(ctx, sess, Request{Method: http.MethodGet, Path: "secret/data/slow"})
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 2*time.Second)

	cancelled, cancelNow := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancelNow)
	_, err = Do(cancelled, sess, Request{Method: http.MethodGet, Path: "secret/data/slow"})
	assert.ErrorIs(t, err, context.Canceled)

	_, err = Do(context.Background(), sess, Request{Method: http.MethodGet, Path: "secret/data/app"})
	require.NoError(t, err)
	assert.EqualValues(t, 3, srv.opened.Load(), "the two abandoned connections were not reused")
}

// Connections left idle are closed after the idle timeout, not kept open
// for the life of the process.
func TestInlineTransportClosesIdleConnections(t *testing.T) {
	srv := newConnCounter(t, secretAnswer)
	tr := newInlineTransport(&http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 200 * time.Millisecond})
	hc := &http.Client{Transport: tr}
	for range 3 {
		resp, err := hc.Get(srv.URL + "/v1/secret/data/app")
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		require.NoError(t, resp.Body.Close())
	}
	assert.EqualValues(t, 1, srv.opened.Load())
	assert.EqualValues(t, 0, srv.closed.Load())
	require.Eventually(t, func() bool { return srv.closed.Load() == 1 }, 3*time.Second, 10*time.Millisecond)
}

// https and proxied requests keep net/http's transport (HTTP/2 over TLS,
// the proxy from the environment).
func TestInlineTransportLeavesHTTPSAndProxies(t *testing.T) {
	var viaNext atomic.Int32
	next := &http.Transport{Proxy: func(r *http.Request) (*url.URL, error) {
		if r.URL.Hostname() == "proxied.example" {
			return url.Parse("http://proxy.example:3128")
		}
		return nil, nil
	}}
	tr := newInlineTransport(next)
	tr.next = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		viaNext.Add(1)
		return &http.Response{StatusCode: http.StatusNoContent, Body: http.NoBody, Request: r}, nil
	})
	for _, u := range []string{"https://vault.example:8200/v1/sys/health", "http://proxied.example:8200/v1/sys/health"} {
		req, err := http.NewRequest(http.MethodGet, u, nil)
		require.NoError(t, err)
		resp, err := tr.RoundTrip(req)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	}
	assert.EqualValues(t, 2, viaNext.Load())
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
