package integration

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vaultcsi/vault-csi-provider/test/rig"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
)

func TestVersionRPC(t *testing.T) {
	p := startProvider(t)
	resp, err := p.client.Version(context.Background(), &v1alpha1.VersionRequest{Version: "v1alpha1"})
	require.NoError(t, err)
	assert.Equal(t, "v1alpha1", resp.Version)
	assert.Equal(t, "vault-csi-provider", resp.RuntimeName)
	assert.NotEmpty(t, resp.RuntimeVersion)
}

// slowProxy forwards TCP to Vault, holding each connection's first request
// for delay: a real Vault, made slow.
type slowProxy struct {
	addr string
	seen chan struct{}
}

func startSlowProxy(t *testing.T, upstream string, delay time.Duration) *slowProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	p := &slowProxy{addr: "http://" + l.Addr().String(), seen: make(chan struct{}, 100)}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", upstream)
				if err != nil {
					return
				}
				defer up.Close()
				select {
				case p.seen <- struct{}{}:
				default:
				}
				go func() { _, _ = io.Copy(c, up) }()
				time.Sleep(delay)
				_, _ = io.Copy(up, c)
			}()
		}
	}()
	return p
}

// startDelayingProxy forwards HTTP to Vault, holding every request for
// delay: a real Vault, made slow for each call. It returns its address.
func startDelayingProxy(t *testing.T, upstream string, delay time.Duration) string {
	t.Helper()
	target, err := url.Parse(upstream)
	require.NoError(t, err)
	forward := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		forward.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestShutdownFinishesInFlightMounts: on SIGTERM (context end) the provider
// stops accepting, lets a running mount finish, and removes its socket.
func TestShutdownFinishesInFlightMounts(t *testing.T) {
	proxy := startSlowProxy(t, strings.TrimPrefix(env.Vault.Addr, "http://"), 1500*time.Millisecond)
	// Only the mount goes through the slow proxy (its class names it): the
	// readiness checks of -vault-addr must not be what the proxy sees first.
	p := startProvider(t, "-allow-pod-overrides=vaultAddress")
	req := mountCall{pod: createPod(t, appServiceAccount), params: map[string]string{"roleName": kubeRole, "objects": passwordObject, "vaultAddress": proxy.addr}, tokenAudiences: []string{"vault"}}.request(t)

	done := make(chan error, 1)
	go func() {
		_, err := p.client.Mount(context.Background(), req)
		done <- err
	}()
	select {
	case <-proxy.seen: // the mount is talking to Vault
	case err := <-done:
		t.Fatalf("the mount ended before it reached Vault: %v", err)
	}
	require.NoError(t, p.stop())
	assert.NoError(t, <-done, "the in-flight mount completed")
	_, err := os.Stat(p.socket)
	assert.True(t, errors.Is(err, os.ErrNotExist), "socket removed on shutdown")
	assert.Contains(t, p.logs.String(), "shutting down: finishing in-flight mounts")
}

func TestHealthEndpoints(t *testing.T) {
	port, err := rig.FreePort()
	require.NoError(t, err)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p := startProvider(t, "-health-addr="+addr)
	for _, path := range []string{"/health/ready", "/health/live"} {
		resp, err := http.Get("http://" + addr + path)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, path)
	}
	require.NoError(t, p.stop())
	resp, err := http.Get("http://" + addr + "/health/live")
	if err == nil {
		resp.Body.Close()
	}
	assert.Error(t, err, "the health listener closes with the process")
}

// TestBinary runs the real command: -version, then serving until SIGTERM.
func TestBinary(t *testing.T) {
	dir, err := os.MkdirTemp("", "vcp-bin-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "vault-csi-provider")
	build := exec.Command("go", "build", "-ldflags", "-X github.com/vaultcsi/vault-csi-provider/app.Version=v9.9.9-test", "-o", bin, "../../cmd/vault-csi-provider")
	out, err := build.CombinedOutput()
	require.NoError(t, err, string(out))

	out, err = exec.Command(bin, "-version").CombinedOutput()
	require.NoError(t, err)
	assert.Contains(t, string(out), "vault-csi-provider v9.9.9-test")

	out, err = exec.Command(bin, "-log-level=loud", "-cache-size=-2").CombinedOutput()
	assert.Error(t, err, "bad flags exit non-zero")
	assert.Contains(t, string(out), "-log-level")
	assert.Contains(t, string(out), "-cache-size")

	socket := filepath.Join(dir, "vault.sock")
	p := serveBinary(t, exec.Command(bin, "-endpoint="+socket, "-health-addr=", "-metrics-addr=", "-vault-addr="+env.Vault.Addr, "-kubeconfig="+env.Kube.AdminKubeconfig), socket)
	v, err := p.client.Version(context.Background(), &v1alpha1.VersionRequest{Version: "v1alpha1"})
	require.NoError(t, err)
	assert.Equal(t, "v9.9.9-test", v.RuntimeVersion)
	resp, err := p.client.Mount(context.Background(), mountCall{pod: createPod(t, appServiceAccount), params: map[string]string{"roleName": kubeRole, "objects": passwordObject}, tokenAudiences: []string{"vault"}}.request(t))
	require.NoError(t, err)
	assert.Equal(t, plantedPassword, string(resp.Files[0].Contents))

	p.stop(t)
	_, err = os.Stat(socket)
	assert.True(t, errors.Is(err, os.ErrNotExist), "socket removed")
}
