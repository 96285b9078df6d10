package vault

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vaultcsi/vault-csi-provider/config"
)

// A server in place of Vault: a real Vault never answers a login with
// hundreds of megabytes, but a proxy, a load balancer's error page or a
// hostile address a class names can. No answer is read past its bound, for
// logins, errors and reads alike, and the error says so without quoting it.
func TestBodiesAreBounded(t *testing.T) {
	const huge = 256 << 20
	filler := strings.Repeat("<html>planted page ", 1024)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "refused") {
			w.WriteHeader(http.StatusForbidden)
		}
		for sent := 0; sent < huge; sent += len(filler) {
			if _, err := w.Write([]byte(filler)); err != nil {
				return // the client stopped reading
			}
		}
	}))
	defer srv.Close()
	base, err := NewClients(20 * time.Second).Get(config.Vault{Address: srv.URL})
	require.NoError(t, err)
	calls := map[string]func(ctx context.Context) error{
		"login": func(ctx context.Context) error {
			_, err := Login(ctx, base, "kubernetes", "app", "jwt")
			return err
		},
		"refused login": func(ctx context.Context) error {
			_, err := Login(ctx, base, "refused", "app", "jwt")
			return err
		},
		"read": func(ctx context.Context) error {
			_, err := Do(ctx, Session{client: base, token: "t"}, Request{Method: http.MethodGet, Path: "secret/data/app"})
			return err
		},
		"refused read": func(ctx context.Context) error {
			_, err := Do(ctx, Session{client: base, token: "t"}, Request{Method: http.MethodGet, Path: "refused/app"})
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := call(context.Background())
			runtime.ReadMemStats(&after)
			require.ErrorIs(t, err, ErrTooLarge)
			assert.NotContains(t, err.Error(), "planted page")
			assert.Less(t, len(err.Error()), 1024)
			assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(64<<20), "read at most its bound, not 256 MiB")
		})
	}
}

// A server in place of Vault that answers with one endless header (a real
// Vault cannot be made to), over plain http and over TLS: the read fails
// once MaxHeaderBytes are read, having held no more than that.
func TestHeadersAreBounded(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		c, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Endless: ")
		chunk := []byte(strings.Repeat("a", 64<<10))
		for sent := 0; sent < 256<<20; sent += len(chunk) {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}))
	for _, tls := range []bool{false, true} {
		addr, ca := "http://", ""
		if tls {
			srv = httptest.NewUnstartedServer(srv.Config.Handler)
			srv.StartTLS()
			addr, ca = "", writeCA(t, srv)
		} else {
			srv.Start()
		}
		base, err := NewClients(20 * time.Second).Get(config.Vault{Address: addr + strings.TrimPrefix(srv.URL, "http://"), CACert: ca})
		require.NoError(t, err)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err = Do(context.Background(), Session{client: base, token: "t"}, Request{Method: http.MethodGet, Path: "secret/data/app"})
		runtime.ReadMemStats(&after)
		require.Error(t, err, "tls %v", tls)
		assert.Contains(t, err.Error(), "header")
		assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(16<<20), "tls %v: read at most the header bound, not 256 MiB", tls)
		srv.Close()
	}
}

// writeCA writes srv's certificate as a CA file.
func writeCA(t *testing.T, srv *httptest.Server) string {
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))
	return caFile
}

// An answer's bytes are held before they are read: with or without a
// Content-Length, a read whose Hold says no stops there, having allocated
// about what was held, not the 8 MiB the server sends.
func TestAnswersAreHeldBeforeTheyAreRead(t *testing.T) {
	const size = 8 << 20
	for _, withLength := range []bool{true, false} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if withLength {
				w.Header().Set("Content-Length", strconv.Itoa(size))
			}
			chunk := []byte(strings.Repeat(" ", 64<<10))
			for sent := 0; sent < size; sent += len(chunk) {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}))
		conn, err := NewClients(10 * time.Second).Get(config.Vault{Address: srv.URL})
		require.NoError(t, err)
		var held int64
		refusal := errors.New("over the planted bound")
		hold := func(n int64) error {
			if held+n > 1<<20 {
				return refusal
			}
			held += n
			return nil
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err = Do(context.Background(), Session{client: conn, token: "t"}, Request{Method: http.MethodGet, Path: "secret/data/big", Hold: hold})
		runtime.ReadMemStats(&after)
		require.ErrorIs(t, err, refusal, "Content-Length %v", withLength)
		assert.LessOrEqual(t, held, int64(1<<20))
		assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(3<<20), "Content-Length %v", withLength)
		srv.Close()
	}
}
