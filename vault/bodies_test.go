package vault

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
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
