package vault

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vaultcsi/vault-csi-provider/config"
)

// A class names a TLS file the provider's pod can open: what is not a
// regular file of at most 1 MiB, or lies outside -tls-file-dirs, is refused
// before any TLS code reads it, quickly and holding almost nothing; a CA
// directory laid out as a Kubernetes ConfigMap volume works.
func TestTLSFilesAreBounded(t *testing.T) {
	srv := httptest.NewTLSServer(&recorder{})
	defer srv.Close()
	ca := writeCA(t, srv)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	big := filepath.Join(dir, "big.pem")
	require.NoError(t, os.WriteFile(big, make([]byte, MaxTLSFileBytes+1), 0o600))
	many := filepath.Join(dir, "many")
	require.NoError(t, os.Mkdir(many, 0o700))
	pemBytes, err := os.ReadFile(ca)
	require.NoError(t, err)
	for i := range MaxCAEntries + 1 {
		require.NoError(t, os.WriteFile(filepath.Join(many, fmt.Sprint(i)), pemBytes, 0o600))
	}
	for _, tc := range []struct {
		name string
		cfg  config.Vault
		want string
	}{
		{"zero device", config.Vault{CACert: "/dev/zero"}, "vaultCACertPath \"/dev/zero\" is not a regular file"},
		{"FIFO", config.Vault{CACert: fifo}, "is not a regular file"},
		{"directory", config.Vault{CACert: dir}, "is not a regular file"},
		{"over 1 MiB", config.Vault{CACert: big}, "over 1048576"},
		{"client key from /dev/zero", config.Vault{ClientCert: ca, ClientKey: "/dev/zero"}, "vaultTLSClientKeyPath"},
		{"device in a CA directory", config.Vault{CADirectory: "/dev"}, "vaultCADirectory"},
		{"CA directory of 1001 entries", config.Vault{CADirectory: many}, "over 1000 entries"},
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		tc.cfg.Address = srv.URL
		_, err := NewClients(5 * time.Second).Get(tc.cfg)
		runtime.ReadMemStats(&after)
		require.ErrorIs(t, err, ErrTLSFile, tc.name)
		assert.Contains(t, err.Error(), tc.want, tc.name)
		assert.Less(t, time.Since(start), 2*time.Second, tc.name)
		assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(8<<20), tc.name)
	}

	// A ConfigMap volume: files linked through ..data to a dated directory.
	cm := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(cm, "..2026_12_07"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(cm, "..2026_12_07", "ca.crt"), pemBytes, 0o600))
	require.NoError(t, os.Symlink("..2026_12_07", filepath.Join(cm, "..data")))
	require.NoError(t, os.Symlink("..data/ca.crt", filepath.Join(cm, "ca.crt")))
	clients := NewClients(5 * time.Second)
	clients.TLSFileDirs = []string{cm}
	for _, cfg := range []config.Vault{{CADirectory: cm}, {CACert: filepath.Join(cm, "ca.crt")}} {
		cfg.Address = srv.URL
		conn, err := clients.Get(cfg)
		require.NoError(t, err)
		_, err = Do(context.Background(), Session{client: conn, token: "t"}, Request{Method: http.MethodGet, Path: "secret/data/app"})
		require.NoError(t, err, "the CA verifies the server")
	}
	// Outside -tls-file-dirs, directly or through a link from inside.
	require.NoError(t, os.Symlink(ca, filepath.Join(cm, "elsewhere.pem")))
	for _, path := range []string{ca, filepath.Join(cm, "elsewhere.pem")} {
		_, err := clients.Get(config.Vault{Address: srv.URL, CACert: path})
		require.ErrorIs(t, err, ErrTLSFile)
		assert.Contains(t, err.Error(), "-tls-file-dirs")
	}
}

// Where a class may send the provider: an address off the operator's list
// is refused before any connection; a link-local or metadata address is
// refused at the dial, whatever name leads there, unless an entry names it;
// and a redirect to another host is never followed with the token. The
// "other host" is 127.0.0.2, a loopback address like the server's.
func TestReach(t *testing.T) {
	other := &recorder{}
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	require.NoError(t, err)
	otherSrv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: other}}
	otherSrv.Start()
	defer otherSrv.Close()
	redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", otherSrv.URL+"/latest/meta-data/iam")
		w.WriteHeader(http.StatusTemporaryRedirect)
	}))
	defer redirecting.Close()

	read := func(c *Clients, addr string) error {
		conn, err := c.Get(config.Vault{Address: addr})
		if err != nil {
			return err
		}
		_, err = Do(context.Background(), Session{client: conn, token: "hvs.tenant"}, Request{Method: http.MethodGet, Path: "secret/data/app"})
		return err
	}
	err = read(NewClients(5*time.Second), redirecting.URL)
	require.ErrorIs(t, err, ErrNotAllowed)
	assert.Contains(t, err.Error(), "redirected to "+otherSrv.URL)
	assert.Empty(t, other.take(), "the other host saw no request, no token")

	listed := NewClients(5 * time.Second)
	listed.Reach = Reach{Allowed: []string{redirecting.URL, "127.0.0.2"}}
	require.NoError(t, read(listed, redirecting.URL), "a redirect to a listed host is followed")
	assert.Len(t, other.take(), 1)

	onlyOne := NewClients(5 * time.Second)
	onlyOne.Reach = Reach{Allowed: []string{"https://vault.example:8200", "*.vault.example"}}
	err = read(onlyOne, otherSrv.URL)
	require.ErrorIs(t, err, ErrNotAllowed)
	assert.Contains(t, err.Error(), "-allowed-vault-addresses")
	assert.Empty(t, other.take())

	// The control refuses before connect(2): nothing leaves the machine.
	for _, addr := range []string{"http://169.254.169.254", "http://[fe80::1%25lo]:8200", "http://[fd00:ec2::254]"} {
		start := time.Now()
		err := read(NewClients(5*time.Second), addr)
		assert.Less(t, time.Since(start), 500*time.Millisecond, "%s: refused once, not retried", addr)
		require.ErrorIs(t, err, ErrNotAllowed, addr)
		assert.Contains(t, err.Error(), "link-local or cloud metadata", addr)
	}
}

// An error answer that is not Vault's JSON is described, never quoted: a
// server a tenant points the provider at cannot put text into the pod's
// events and the provider's log.
func TestForeignErrorsAreNotQuoted(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, "db_password=hunter2")
	}))
	defer srv.Close()
	conn, err := NewClients(5 * time.Second).Get(config.Vault{Address: srv.URL})
	require.NoError(t, err)
	for _, call := range []func() error{
		func() error {
			_, err := Do(context.Background(), Session{client: conn, token: "t"}, Request{Method: http.MethodGet, Path: "secret/data/app"})
			return err
		},
		func() error { _, err := Login(context.Background(), conn, "kubernetes", "app", "jwt"); return err },
	} {
		err := call()
		require.ErrorIs(t, err, ErrInvalidRequest)
		assert.NotContains(t, fmt.Sprintf("%v %+v", err, err), "hunter2")
		assert.Contains(t, err.Error(), `answered 400: an answer that is not Vault's ("text/plain", 19 bytes)`)
	}
}

// A request that may change something (a PUT to pki/issue) whose connection
// dies after it was sent is not sent again: Vault may have issued already.
// A GET is. (A real Vault cannot be made to drop a connection on demand.)
func TestChangesAreNotResent(t *testing.T) {
	rec := &recorder{next: func(w http.ResponseWriter, _ *http.Request) {
		c, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			c.Close()
		}
	}}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	conn, err := NewClients(10 * time.Second).Get(config.Vault{Address: srv.URL})
	require.NoError(t, err)
	for method, want := range map[string]int{http.MethodPut: 1, http.MethodPost: 1, http.MethodGet: 3} {
		_, err := Do(context.Background(), Session{client: conn, token: "t"}, Request{Method: method, Path: "pki/issue/web", Body: map[string]any{"common_name": "a"}})
		require.ErrorIs(t, err, ErrUnavailable, method)
		assert.Len(t, rec.take(), want, method)
	}
	assert.False(t, strings.Contains(fmt.Sprint(err), "hvs"))
}

// An interim answer (1xx) before the final one is not taken for it: each
// read on a kept connection gets its own final answer, not the one before.
// (A real Vault sends no 1xx; a raw server on 127.0.0.1 stands in.)
func TestInterimAnswersAreSkipped(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for n := 1; ; n++ {
					req, err := http.ReadRequest(r)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					body := fmt.Sprintf(`{"data":{"n":%d}}`, n)
					_, _ = fmt.Fprintf(c, "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
				}
			}()
		}
	}()
	conn, err := NewClients(5 * time.Second).Get(config.Vault{Address: "http://" + ln.Addr().String()})
	require.NoError(t, err)
	for n := 1; n <= 3; n++ {
		body, err := Do(context.Background(), Session{client: conn, token: "t"}, Request{Method: http.MethodGet, Path: "secret/data/app"})
		require.NoError(t, err)
		assert.JSONEq(t, fmt.Sprintf(`{"data":{"n":%d}}`, n), string(body), "read %d on one connection", n)
	}
}
