package integration

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vaultcsi/vault-csi-provider/test/rig"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestVaultCARotationWithoutRestart: Vault is served with a certificate
// from a new CA and the class's vaultCACertPath file is rewritten, as a
// cert-manager or Secret update does (TLS is terminated in front of the real
// Vault, see rig.VaultTLS). The running provider
// reads the new CA at the next mount, with the pod's cached token, without
// a restart; before the file changes, the new certificate fails with a
// message naming TLS verification.
func TestVaultCARotationWithoutRestart(t *testing.T) {
	p := startProvider(t, "-allow-pod-overrides=*") // the test sends the class's parameters as a pod would: no class object to check them against
	call := mountCall{pod: createPod(t, appServiceAccount), params: map[string]string{
		"roleName": kubeRole, "objects": passwordObject,
		"vaultAddress": env.Vault.TLS.Addr, "vaultCACertPath": env.Vault.TLS.CAFile,
	}, tokenAudiences: []string{"vault"}}
	resp, err := p.mount(t, call)
	require.NoError(t, err)
	assert.Equal(t, plantedPassword, string(resp.Files[0].Contents))
	logins := vaultRequests(t, "auth/kubernetes/login")

	oldCA := readFileString(t, env.Vault.TLS.CAFile)
	require.NoError(t, env.Vault.TLS.Rotate())
	newCA := readFileString(t, env.Vault.TLS.CAFile)
	writeFileString(t, env.Vault.TLS.CAFile, oldCA)
	_, err = p.mount(t, call)
	st := status.Convert(err)
	assert.NotEqual(t, codes.OK, st.Code())
	assert.Contains(t, st.Message(), "TLS verification of vault at "+env.Vault.TLS.Addr+" failed", "the failure names TLS verification")
	assert.Contains(t, st.Message(), "x509: certificate signed by unknown authority", "and Go's reason")
	assert.Contains(t, st.Message(), "set vaultCACertPath", "and the parameter to fix")

	writeFileString(t, env.Vault.TLS.CAFile, newCA)
	resp, err = p.mount(t, call)
	require.NoError(t, err, "the rotated CA file is read without a restart")
	assert.Equal(t, plantedPassword, string(resp.Files[0].Contents))
	assert.Zero(t, vaultRequests(t, "auth/kubernetes/login")-logins, "the pod's token is kept across the rotation")
}

// TestInsecureConnectionsWarnOnce: a plain http:// address and turned-off
// TLS verification work when a class asks for them, and each is logged as a
// warning once per address, not once per mount.
func TestInsecureConnectionsWarnOnce(t *testing.T) {
	p := startProvider(t, "-allow-pod-overrides=*") // the test sends the class's parameters as a pod would: no class object to check them against
	plain := mountCall{pod: createPod(t, appServiceAccount), params: map[string]string{"roleName": kubeRole, "objects": passwordObject, "vaultAddress": env.Vault.Addr}, tokenAudiences: []string{"vault"}}
	unverified := mountCall{pod: createPod(t, appServiceAccount), params: map[string]string{"roleName": kubeRole, "objects": passwordObject,
		"vaultAddress": env.Vault.TLS.Addr, "vaultSkipTLSVerify": "true"}, tokenAudiences: []string{"vault"}}
	for range 3 {
		for _, c := range []mountCall{plain, unverified} {
			_, err := p.mount(t, c)
			require.NoError(t, err)
		}
	}
	logs := p.logs.String()
	assert.Equal(t, 1, strings.Count(logs, "plain http: Vault tokens and secrets cross the network unencrypted"), logs)
	assert.Equal(t, 1, strings.Count(logs, "TLS verification is off"), logs)
	assert.Contains(t, logs, env.Vault.TLS.Addr)
}

func readFileString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

// writeFileString replaces path's content with a new file, as a Secret
// volume's update does, so that its modification time changes.
func writeFileString(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".new"
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

// TestThroughVaultProxyRequiringTheHeader: a real Vault Proxy whose
// listener sets require_request_header answers 412 to any request without
// X-Vault-Request. Every request the provider sends carries it: the login
// and the read through the proxy succeed.
func TestThroughVaultProxyRequiringTheHeader(t *testing.T) {
	proxy, err := rig.StartVaultProxy(t.TempDir(), rig.BinDir(), env.Vault.Addr)
	t.Cleanup(proxy.Stop)
	require.NoError(t, err)
	p := startProvider(t, "-allow-pod-overrides=*") // the test sends the class's parameters as a pod would
	resp, err := p.mount(t, mountCall{pod: createPod(t, appServiceAccount), params: map[string]string{
		"roleName": kubeRole, "objects": passwordObject, "vaultAddress": proxy.Addr,
	}, tokenAudiences: []string{"vault"}})
	require.NoError(t, err)
	assert.Equal(t, plantedPassword, string(resp.Files[0].Contents))
}
