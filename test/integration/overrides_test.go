package integration

import (
	"context"
	"maps"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vaultcsi/vault-csi-provider/test/rig"
)

// TestPodOverrides: the driver lets a pod's volumeAttributes override the
// class's parameters. A pod must not choose the Vault that gets its token,
// the files the provider reads, or turn off TLS checks — unless the operator
// allows it.
func TestPodOverrides(t *testing.T) {
	class := map[string]string{"roleName": kubeRole, "vaultAddress": env.Vault.Addr, "objects": passwordObject}
	require.NoError(t, env.CreateClass(context.Background(), "guarded", class))
	pod := createPod(t, appServiceAccount)
	call := func(podAttrs map[string]string) mountCall {
		params := map[string]string{"secretProviderClass": "guarded"}
		for k, v := range class {
			params[k] = v
		}
		for k, v := range podAttrs {
			params[k] = v
		}
		return mountCall{pod: pod, params: params, tokenAudiences: []string{"vault"}}
	}

	strict := startProvider(t)
	tests := []struct {
		name     string
		pod      map[string]string
		wantCode codes.Code
		wantMsg  []string
	}{
		{name: "the class's own vaultAddress", wantCode: codes.OK},
		{name: "pod redirects to another Vault", pod: map[string]string{"vaultAddress": "https://attacker.example:8200"},
			wantCode: codes.PermissionDenied, wantMsg: []string{"sets vaultAddress in its volumeAttributes", `only the SecretProviderClass "guarded" may set them`, "-allow-pod-overrides=vaultAddress"}},
		{name: "pod turns off TLS verification", pod: map[string]string{"vaultSkipTLSVerify": "true"},
			wantCode: codes.PermissionDenied, wantMsg: []string{"vaultSkipTLSVerify"}},
		{name: "pod points the provider at node files", pod: map[string]string{"vaultCACertPath": "/etc/shadow", "vaultTLSClientKeyPath": "/var/lib/kubelet/pki/kubelet.key"},
			wantCode: codes.PermissionDenied, wantMsg: []string{"vaultCACertPath, vaultTLSClientKeyPath"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := strict.mount(t, call(tc.pod))
			st := status.Convert(err)
			assert.Equal(t, tc.wantCode, st.Code(), st.Message())
			for _, m := range tc.wantMsg {
				assert.Contains(t, st.Message(), m)
			}
		})
	}

	t.Run("the operator allows a parameter", func(t *testing.T) {
		lenient := startProvider(t, "-allow-pod-overrides=vaultTLSServerName")
		_, err := lenient.mount(t, call(map[string]string{"vaultTLSServerName": "vault.internal"}))
		assert.NoError(t, err)
		_, err = lenient.mount(t, call(map[string]string{"vaultSkipTLSVerify": "true"}))
		assert.Equal(t, codes.PermissionDenied, status.Code(err), "only what is allowed")
	})

	t.Run("the class cannot be read: refuse and say which permission", func(t *testing.T) {
		blind := startProvider(t, "-kubeconfig="+env.Kube.NoRightsKubeconfig)
		_, err := blind.mount(t, call(nil))
		st := status.Convert(err)
		assert.Equal(t, codes.PermissionDenied, st.Code(), st.Message())
		assert.Contains(t, st.Message(), "grant the provider get on secretproviderclasses.secrets-store.csi.x-k8s.io")
	})
}

// TestPodOverridesOfOpenBaoClasses: on openbao.sock the same rule holds
// for bao* names: the class's own baoAddress mounts, a pod's other one (or
// its openbaoCACertPath) is refused, named as the pod wrote it.
func TestPodOverridesOfOpenBaoClasses(t *testing.T) {
	class := map[string]string{"roleName": rig.OpenBaoRole, "baoAddress": env.Vault.Addr, "objects": passwordObject}
	require.NoError(t, env.CreateClass(context.Background(), "guarded-bao", class))
	pod := createPod(t, appServiceAccount)
	p := startProvider(t)
	for name, tc := range map[string]struct {
		pod      map[string]string
		wantCode codes.Code
		wantMsg  string
	}{
		"the class's own baoAddress": {wantCode: codes.OK},
		"pod redirects to another OpenBao": {pod: map[string]string{"baoAddress": "https://attacker.example:8200"},
			wantCode: codes.PermissionDenied, wantMsg: "sets baoAddress in its volumeAttributes"},
		"pod names node files under the class's prefix": {pod: map[string]string{"baoCACertPath": "/etc/shadow"},
			wantCode: codes.PermissionDenied, wantMsg: "sets baoCACertPath in its volumeAttributes"},
	} {
		t.Run(name, func(t *testing.T) {
			params := map[string]string{"secretProviderClass": "guarded-bao"}
			maps.Copy(params, class)
			maps.Copy(params, tc.pod)
			_, err := p.mountOn(t, p.openbao, mountCall{pod: pod, params: params, tokenAudiences: []string{"openbao"}})
			st := status.Convert(err)
			assert.Equal(t, tc.wantCode, st.Code(), st.Message())
			assert.Contains(t, st.Message(), tc.wantMsg)
		})
	}
}
