package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"sigs.k8s.io/secrets-store-csi-driver/pkg/util/fileutil"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/vaultcsi/vault-csi-provider/app"
	"github.com/vaultcsi/vault-csi-provider/test/rig"
)

// syncBuffer collects the provider's log output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runningProvider is the provider process, in-process, serving a unix socket.
type runningProvider struct {
	socket string
	client v1alpha1.CSIDriverProviderClient
	// openbao is the openbao.sock client: the provider serves both names,
	// as the chart does with providers.openbao on.
	openbao v1alpha1.CSIDriverProviderClient
	logs    *syncBuffer
	stop    func() error
}

// startProvider runs app.Run with the flags a DaemonSet would pass, plus extra.
func startProvider(t *testing.T, extra ...string) *runningProvider {
	t.Helper()
	// Unix socket paths are limited to 108 bytes: keep the directory short.
	dir, err := os.MkdirTemp("", "vcp-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "vault.sock")
	args := append([]string{
		"-endpoint=" + socket,
		"-openbao-endpoint=" + filepath.Join(dir, "openbao.sock"),
		"-health-addr=",
		"-metrics-addr=",
		"-kubeconfig=" + env.Kube.AdminKubeconfig,
		"-vault-addr=" + env.Vault.Addr,
		"-log-level=debug",
		"-hmac-secret-name=" + dnsName("hmac-"+t.Name()),
	}, extra...)
	getenv := func(k string) string {
		if k == "POD_NAMESPACE" {
			return providerNamespace
		}
		return "" // the host's VAULT_* variables must not leak into a test
	}
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, args, getenv, logs, logs) }()

	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	baoConn, err := grpc.NewClient("unix://"+filepath.Join(dir, "openbao.sock"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	p := &runningProvider{socket: socket, client: v1alpha1.NewCSIDriverProviderClient(conn), openbao: v1alpha1.NewCSIDriverProviderClient(baoConn), logs: logs}
	var once sync.Once
	var stopErr error
	p.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(45 * time.Second):
				t.Errorf("provider did not stop within 45s")
			}
			conn.Close()
			baoConn.Close()
		})
		return stopErr
	}
	t.Cleanup(func() { _ = p.stop() })

	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := p.client.Version(ctx, &v1alpha1.VersionRequest{Version: "v1alpha1"})
		if err == nil {
			_, err = p.openbao.Version(ctx, &v1alpha1.VersionRequest{Version: "v1alpha1"})
		}
		cancel()
		if err == nil {
			return p
		}
		select {
		case err := <-done:
			t.Fatalf("provider exited: %v\n%s", err, logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("provider socket not served: %v\n%s", err, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freeAddr is 127.0.0.1 and a free port, for a provider's -metrics-addr.
func freeAddr(t *testing.T) string {
	t.Helper()
	port, err := rig.FreePort()
	require.NoError(t, err)
	return "127.0.0.1:" + strconv.Itoa(port)
}

func createPod(t *testing.T, serviceAccount string) rig.Pod {
	t.Helper()
	pod, err := env.CreatePod(context.Background(), dnsName(t.Name()), serviceAccount, "")
	require.NoError(t, err)
	return pod
}

// mountCall is one MountRequest as the driver builds it.
type mountCall struct {
	pod    rig.Pod
	params map[string]string
	// tokenAudiences are the audiences the CSIDriver requests tokens for.
	tokenAudiences []string
	// tokensInSecrets sends the tokens in the secrets field (driver v1.6,
	// Kubernetes 1.35+ with serviceAccountTokenInSecrets).
	tokensInSecrets bool
	permission      string
}

func (c mountCall) request(t *testing.T) *v1alpha1.MountRequest {
	t.Helper()
	tokens := map[string]rig.Token{}
	for _, aud := range c.tokenAudiences {
		tok, err := env.KubeletToken(context.Background(), c.pod, aud)
		require.NoError(t, err)
		tokens[aud] = tok
	}
	req, err := rig.MountRequest(c.pod, c.params, tokens, c.tokensInSecrets, c.permission)
	require.NoError(t, err)
	return req
}

func (p *runningProvider) mount(t *testing.T, c mountCall) (*v1alpha1.MountResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // the kubelet's budget
	defer cancel()
	return p.client.Mount(ctx, c.request(t))
}

// writeFiles writes a response into a fresh volume directory with the
// driver's own writer, as the driver does after Mount.
func writeFiles(t *testing.T, resp *v1alpha1.MountResponse) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, fileutil.WritePayloads(dir, resp.GetFiles()))
	return dir
}

func versions(resp *v1alpha1.MountResponse) map[string]string {
	out := map[string]string{}
	for _, v := range resp.GetObjectVersion() {
		out[v.Id] = v.Version
	}
	return out
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

var nonDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// dnsName turns a test name into a Kubernetes object name.
func dnsName(s string) string {
	s = strings.Trim(nonDNS.ReplaceAllString(strings.ToLower(s), "-"), "-")
	if len(s) > 50 {
		s = strings.TrimRight(s[:50], "-")
	}
	return s
}
