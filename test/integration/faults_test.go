package integration

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/vaultcsi/vault-csi-provider/test/rig"
)

func deadAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return "http://" + addr
}

func kvCall(t *testing.T) mountCall {
	return mountCall{pod: createPod(t, appServiceAccount), params: map[string]string{"roleName": kubeRole, "objects": passwordObject}, tokenAudiences: []string{"vault"}}
}

// TestFailoverToNextVault: with several addresses, a dead first one costs a
// connection refusal and its retries, then the next one serves the mount.
func TestFailoverToNextVault(t *testing.T) {
	dead := deadAddress(t)
	p := startProvider(t, "-vault-addr="+dead+","+env.Vault.Addr)
	start := time.Now()
	resp, err := p.mount(t, kvCall(t))
	require.NoError(t, err)
	assert.Equal(t, plantedPassword, string(resp.Files[0].Contents))
	assert.Contains(t, p.logs.String(), "vault unavailable; trying the next address")
	t.Logf("reliability: first address down, mount served by the second in %s", time.Since(start).Round(time.Millisecond))
}

// TestSealedVault: a sealed Vault fails mounts with Unavailable and says it
// is sealed; once unsealed, mounts work again without a provider restart.
func TestSealedVault(t *testing.T) {
	v, err := rig.StartVault(env.Dir, rig.BinDir(), "vault-sealed")
	require.NoError(t, err)
	t.Cleanup(v.Stop)
	// This Vault needs the same kubernetes auth as the main one.
	require.NoError(t, configureKubernetesAuth(v))
	p := startProvider(t, "-vault-addr="+v.Addr)
	call := mountCall{pod: createPod(t, appServiceAccount), params: map[string]string{"roleName": "plain", "objects": "- {objectName: x, secretPath: secret/data/x, secretKey: k}"}, tokenAudiences: []string{"vault"}}
	_, err = p.mount(t, call)
	require.NoError(t, err)

	key, err := v.UnsealKey()
	require.NoError(t, err)
	_, err = v.Root.Logical().Write("sys/seal", nil)
	require.NoError(t, err)
	start := time.Now()
	_, err = p.mount(t, call)
	st := status.Convert(err)
	assert.Equal(t, codes.Unavailable, st.Code(), st.Message())
	assert.Contains(t, st.Message(), "Vault is sealed")
	t.Logf("reliability: sealed Vault answered Unavailable in %s", time.Since(start).Round(time.Millisecond))

	_, err = v.Root.Sys().UnsealWithContext(context.Background(), key)
	require.NoError(t, err)
	start = time.Now()
	require.Eventually(t, func() bool { _, err := p.mount(t, call); return err == nil }, 30*time.Second, 100*time.Millisecond)
	t.Logf("reliability: first successful mount %s after unseal", time.Since(start).Round(time.Millisecond))
}

// configureKubernetesAuth gives a second Vault the main one's kubernetes
// auth, a role "plain" and a KV secret.
func configureKubernetesAuth(v *rig.VaultServer) error {
	cfg, err := env.Vault.Root.Logical().Read("auth/kubernetes/config")
	if err != nil {
		return err
	}
	steps := []struct {
		path string
		data map[string]any
	}{
		{"sys/auth/kubernetes", map[string]any{"type": "kubernetes"}},
		{"auth/kubernetes/config", map[string]any{"kubernetes_host": cfg.Data["kubernetes_host"], "kubernetes_ca_cert": cfg.Data["kubernetes_ca_cert"], "token_reviewer_jwt": env.ReviewerJWT}},
		{"sys/policies/acl/plain", map[string]any{"policy": `path "secret/data/*" { capabilities = ["read"] }`}},
		{"auth/kubernetes/role/plain", map[string]any{"bound_service_account_names": appServiceAccount, "bound_service_account_namespaces": appNamespace, "audience": "vault", "token_policies": "plain"}},
		{"secret/data/x", map[string]any{"data": map[string]any{"k": "v"}}},
	}
	for _, s := range steps {
		if _, err := v.Root.Logical().Write(s.path, s.data); err != nil {
			return err
		}
	}
	return nil
}

// TestRateLimitedVault: Vault's own rate-limit quota answers 429; the client
// retries after Vault's Retry-After and the mount succeeds.
func TestRateLimitedVault(t *testing.T) {
	_, err := env.Vault.Root.Logical().Write("secret/data/ratelimited", map[string]any{"data": map[string]any{"k": "v"}})
	require.NoError(t, err)
	_, err = env.Vault.Root.Logical().Write("sys/quotas/rate-limit/tight", map[string]any{"path": "secret/data/ratelimited", "rate": 1, "interval": "3s"})
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = env.Vault.Root.Logical().Delete("sys/quotas/rate-limit/tight") })

	p := startProvider(t)
	call := mountCall{pod: createPod(t, appServiceAccount), params: map[string]string{"roleName": kubeRole, "objects": "- {objectName: x, secretPath: secret/data/ratelimited, secretKey: k}"}, tokenAudiences: []string{"vault"}}
	_, err = p.mount(t, call)
	require.NoError(t, err)
	start := time.Now()
	_, err = p.mount(t, call)
	require.NoError(t, err, "retried past the 429")
	// Vault refuses before auditing, so the retry shows as the wait for its Retry-After.
	assert.Greater(t, time.Since(start), time.Second, "the mount waited for the quota instead of failing")
	t.Logf("reliability: 429 from a rate-limit quota, mount succeeded after retrying in %s", time.Since(start).Round(time.Millisecond))
}

// TestSlowVault: a Vault slower than -vault-timeout gives DeadlineExceeded
// well inside the kubelet's 2 minutes, naming the address.
func TestSlowVault(t *testing.T) {
	proxy := startSlowProxy(t, strings.TrimPrefix(env.Vault.Addr, "http://"), 5*time.Second)
	p := startProvider(t, "-vault-addr="+proxy.addr, "-vault-timeout=1s")
	start := time.Now()
	_, err := p.mount(t, kvCall(t))
	st := status.Convert(err)
	assert.Equal(t, codes.DeadlineExceeded, st.Code(), st.Message())
	assert.Contains(t, st.Message(), "timed out")
	assert.Contains(t, st.Message(), proxy.addr)
	assert.Less(t, time.Since(start), 10*time.Second)
	t.Logf("reliability: Vault slower than -vault-timeout=1s answered DeadlineExceeded in %s", time.Since(start).Round(time.Millisecond))
}

// TestKubernetesAPIUnavailable: with the apiserver gone, mounts that carry
// the driver's token still work; one that needs a minted token says why not.
func TestKubernetesAPIUnavailable(t *testing.T) {
	cfg, err := clientcmd.LoadFromFile(env.Kube.AdminKubeconfig)
	require.NoError(t, err)
	for _, c := range cfg.Clusters {
		c.Server = strings.Replace(deadAddress(t), "http://", "https://", 1)
	}
	path := filepath.Join(t.TempDir(), "dead.kubeconfig")
	require.NoError(t, clientcmd.WriteToFile(*cfg, path))
	p := startProvider(t, "-kubeconfig="+path, "-token-request-fallback")

	start := time.Now()
	resp, err := p.mount(t, kvCall(t))
	require.NoError(t, err, "the driver's token is enough")
	assert.Equal(t, plantedPassword, string(resp.Files[0].Contents))
	assert.Contains(t, p.logs.String(), "cannot read or create the HMAC key Secret; using a per-process key")
	t.Logf("reliability: apiserver down, mount with the driver's token served in %s", time.Since(start).Round(time.Millisecond))

	_, err = p.mount(t, mountCall{pod: createPod(t, appServiceAccount), params: map[string]string{"roleName": customAudRole, "audience": customAudience, "objects": passwordObject}, tokenAudiences: []string{"vault"}})
	st := status.Convert(err)
	assert.Equal(t, codes.FailedPrecondition, st.Code(), st.Message())
	assert.Contains(t, st.Message(), "TokenRequest for service account demo/app failed")
	assert.Contains(t, st.Message(), "connection refused")
	_ = os.Remove(path)
}
