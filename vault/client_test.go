package vault

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vaultcsi/vault-csi-provider/config"
)

// TestUndocumentedEnvironmentIsIgnored: variables the Vault API client reads
// by itself must not redirect a pod's login or weaken TLS; only the ones
// package config documents count, and they arrive through config.Vault.
func TestUndocumentedEnvironmentIsIgnored(t *testing.T) {
	for k, v := range map[string]string{
		"VAULT_AGENT_ADDR": "http://127.0.0.1:1", "VAULT_SKIP_VERIFY": "true", "VAULT_TOKEN": "planted-token",
		"VAULT_HEADERS": `{"X-Planted":"1"}`, "VAULT_MAX_RETRIES": "50", "VAULT_HTTP_PROXY": "http://127.0.0.1:2",
		"VAULT_NAMESPACE": "planted-ns",
	} {
		t.Setenv(k, v)
	}
	conn, err := NewClients(5 * time.Second).Get(config.Vault{Address: "https://vault.example:8200"})
	require.NoError(t, err)
	client := conn.API()
	assert.Equal(t, "https://vault.example:8200", client.Address(), "VAULT_AGENT_ADDR does not redirect")
	assert.Empty(t, client.Token())
	assert.Empty(t, client.Headers().Get("X-Planted"))
	assert.Empty(t, client.Namespace())
	assert.Equal(t, 2, client.MaxRetries())
	guard, ok := client.CloneConfig().HttpClient.Transport.(guarded)
	require.True(t, ok)
	bounded, ok := guard.next.(boundedBodies)
	require.True(t, ok)
	tr, ok := bounded.next.(*http.Transport)
	require.True(t, ok)
	assert.False(t, tr.TLSClientConfig.InsecureSkipVerify, "VAULT_SKIP_VERIFY does not turn verification off")
	assert.Equal(t, int64(MaxHeaderBytes), tr.MaxResponseHeaderBytes, "response headers are bounded")
	t.Setenv("HTTPS_PROXY", "")
	req, err := http.NewRequest(http.MethodGet, "https://vault.example:8200/v1/sys/health", nil)
	require.NoError(t, err)
	proxy, err := tr.Proxy(req)
	require.NoError(t, err)
	assert.Nil(t, proxy, "VAULT_HTTP_PROXY does not send traffic through a proxy (Go's standard HTTPS_PROXY still does)")
}
