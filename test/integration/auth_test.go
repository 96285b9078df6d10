package integration

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vaultcsi/vault-csi-provider/test/rig"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const passwordObject = `
- objectName: password
  secretPath: secret/data/app
  secretKey: password
`

func TestJWTAuthWithValidationPubkeys(t *testing.T) {
	p := startProvider(t)
	pod := createPod(t, appServiceAccount)
	resp, err := p.mount(t, mountCall{
		pod:            pod,
		params:         map[string]string{"roleName": jwtRole, "vaultAuthMountPath": "jwt", "objects": passwordObject},
		tokenAudiences: []string{"vault"},
	})
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(writeFiles(t, resp), "password"))
	require.NoError(t, err)
	assert.Equal(t, plantedPassword, string(b))
}

func TestLoginFailuresExplainTheFix(t *testing.T) {
	p := startProvider(t)
	tests := []struct {
		name     string
		sa       string
		params   map[string]string
		wantCode codes.Code
		wantMsg  []string
	}{
		{
			name:     "service account not bound to the role",
			sa:       otherServiceAccount,
			params:   map[string]string{"roleName": kubeRole},
			wantCode: codes.PermissionDenied,
			wantMsg:  []string{`vault role "app" denied login for service account demo/intruder`, "bound_service_account_names", "bound_service_account_namespaces", `audience matches "vault"`},
		},
		{
			name:     "role that does not exist",
			sa:       appServiceAccount,
			params:   map[string]string{"roleName": "no-such-role"},
			wantCode: codes.PermissionDenied,
			wantMsg:  []string{`vault role "no-such-role" denied login`, "invalid role name", "check that roleName names a role"},
		},
		{
			name:     "auth mount that does not exist",
			sa:       appServiceAccount,
			params:   map[string]string{"roleName": kubeRole, "vaultAuthMountPath": "auth/nowhere"},
			wantCode: codes.PermissionDenied,
			wantMsg:  []string{"at auth/nowhere on", "vaultAuthMountPath is where the kubernetes or jwt auth method is mounted"},
		},
		{
			name:     "jwt role with a token of the wrong subject",
			sa:       otherServiceAccount,
			params:   map[string]string{"roleName": jwtRole, "vaultAuthMountPath": "jwt"},
			wantCode: codes.PermissionDenied,
			wantMsg:  []string{"invalid subject (sub) claim", "bound_subject"},
		},
		{
			name:     "policy does not allow the path",
			sa:       appServiceAccount,
			params:   map[string]string{"roleName": kubeRole, "objects": "- {objectName: x, secretPath: secret/metadata/app}"},
			wantCode: codes.PermissionDenied,
			wantMsg:  []string{`vault role "app" may not GET secret/metadata/app`, "policy"},
		},
		{
			name:     "missing secret",
			sa:       appServiceAccount,
			params:   map[string]string{"roleName": kubeRole, "objects": "- {objectName: x, secretPath: secret/data/does-not-exist, secretKey: k}"},
			wantCode: codes.NotFound,
			wantMsg:  []string{"secret/data/does-not-exist", "check secretPath"},
		},
		{
			name:     "missing key",
			sa:       appServiceAccount,
			params:   map[string]string{"roleName": kubeRole, "objects": "- {objectName: x, secretPath: secret/data/app, secretKey: pasword}"},
			wantCode: codes.NotFound,
			wantMsg:  []string{`no key "pasword"`, "blob, hexval, password, port, username"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			params := map[string]string{"objects": passwordObject}
			for k, v := range tc.params {
				params[k] = v
			}
			_, err := p.mount(t, mountCall{pod: createPod(t, tc.sa), params: params, tokenAudiences: []string{"vault"}})
			require.Error(t, err)
			st := status.Convert(err)
			assert.Equal(t, tc.wantCode, st.Code(), st.Message())
			for _, m := range tc.wantMsg {
				assert.Contains(t, st.Message(), m)
			}
		})
	}
}

// TestTokenRequestFallback: the CSIDriver does not request the class's
// audience. By default the mount fails and says both ways out; with
// -token-request-fallback the provider mints a token bound to the pod.
func TestTokenRequestFallback(t *testing.T) {
	pod := createPod(t, appServiceAccount)
	call := mountCall{
		pod:            pod,
		params:         map[string]string{"roleName": customAudRole, "audience": customAudience, "objects": passwordObject},
		tokenAudiences: []string{"vault"}, // the driver sent only the default audience
	}

	t.Run("off by default: the message says what to enable", func(t *testing.T) {
		p := startProvider(t)
		_, err := p.mount(t, call)
		st := status.Convert(err)
		assert.Equal(t, codes.FailedPrecondition, st.Code(), st.Message())
		assert.Contains(t, st.Message(), `no service-account token for audience "`+customAudience+`"`)
		assert.Contains(t, st.Message(), "add {audience: "+customAudience+"} to the CSIDriver's tokenRequests")
		assert.Contains(t, st.Message(), "-token-request-fallback (chart value tokenRequestFallback: true")
	})

	t.Run("minted with the provider's RBAC", func(t *testing.T) {
		p := startProvider(t, "-token-request-fallback")
		resp, err := p.mount(t, call)
		require.NoError(t, err)
		b, err := os.ReadFile(filepath.Join(writeFiles(t, resp), "password"))
		require.NoError(t, err)
		assert.Equal(t, plantedPassword, string(b))
	})

	t.Run("RBAC forbids it: the message names the permission", func(t *testing.T) {
		p := startProvider(t, "-token-request-fallback", "-kubeconfig="+env.Kube.NoRightsKubeconfig)
		_, err := p.mount(t, call)
		st := status.Convert(err)
		assert.Equal(t, codes.PermissionDenied, st.Code(), st.Message())
		assert.Contains(t, st.Message(), "create on resource serviceaccounts/token")
		assert.Contains(t, st.Message(), `namespace "demo"`)
	})
}

func TestVaultStoppedIsUnavailable(t *testing.T) {
	v, err := rig.StartVault(env.Dir, rig.BinDir(), "vault-to-stop")
	require.NoError(t, err)
	p := startProvider(t, "-vault-addr="+v.Addr, "-vault-timeout=5s")
	v.Stop()

	start := time.Now()
	_, err = p.mount(t, mountCall{pod: createPod(t, appServiceAccount), params: map[string]string{"roleName": kubeRole, "objects": passwordObject}, tokenAudiences: []string{"vault"}})
	st := status.Convert(err)
	assert.Equal(t, codes.Unavailable, st.Code(), st.Message())
	assert.Contains(t, st.Message(), v.Addr)
	assert.Contains(t, st.Message(), "check vaultAddress and that Vault is running and unsealed")
	assert.Less(t, time.Since(start), 30*time.Second, "a stopped Vault fails fast, well inside the kubelet's 2 minutes")
}
