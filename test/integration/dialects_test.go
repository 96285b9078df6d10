package integration

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/vaultcsi/vault-csi-provider/test/rig"
)

// dialectObjects use a key, a whole secret, an old version and a template.
const dialectObjects = `
- objectName: password
  secretPath: secret/data/app
  secretKey: password
- objectName: app.json
  secretPath: secret/data/app
- objectName: old-password
  secretPath: secret/data/app?version=1
  secretKey: password
- objectName: dsn
  template: '{{ with secret "secret/data/app" }}{{ .Data.data.username }}:{{ .Data.data.password }}{{ end }}'
`

// mountOn sends c to one of the provider's sockets.
func (p *runningProvider) mountOn(t *testing.T, client v1alpha1.CSIDriverProviderClient, c mountCall) (*v1alpha1.MountResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return client.Mount(ctx, c.request(t))
}

// TestOneClassInEveryDialect: the same class written for hashicorp's
// provider (vault.sock), for openbao-csi-provider 2.x with bao* names and
// with the older openbao* names (openbao.sock, its default audience
// "openbao", a role bound to it), against the same https Vault, gives the
// same files, modes and versions.
func TestOneClassInEveryDialect(t *testing.T) {
	metrics := freeAddr(t)
	p := startProvider(t, "-allow-pod-overrides=*", "-metrics-addr="+metrics) // the classes are sent as a pod would: no class object to check them against
	pod := createPod(t, appServiceAccount)
	classes := []struct {
		name   string
		client v1alpha1.CSIDriverProviderClient
		call   mountCall
	}{
		{"hashicorp", p.client, mountCall{pod: pod, tokenAudiences: []string{"vault"}, params: map[string]string{
			"roleName": kubeRole, "objects": dialectObjects,
			"vaultAddress": env.Vault.TLS.Addr, "vaultCACertPath": env.Vault.TLS.CAFile, "vaultAuthMountPath": "kubernetes",
		}}},
		{"openbao bao*", p.openbao, mountCall{pod: pod, tokenAudiences: []string{"openbao"}, params: map[string]string{
			"roleName": rig.OpenBaoRole, "objects": dialectObjects,
			"baoAddress": env.Vault.TLS.Addr, "baoCACertPath": env.Vault.TLS.CAFile, "baoAuthMountPath": "kubernetes",
		}}},
		{"openbao openbao*", p.openbao, mountCall{pod: pod, tokenAudiences: []string{"openbao"}, params: map[string]string{
			"openbaoRoleName": rig.OpenBaoRole, "objects": dialectObjects,
			"openbaoAddress": env.Vault.TLS.Addr, "openbaoCACertPath": env.Vault.TLS.CAFile, "openbaoKubernetesMountPath": "kubernetes",
		}}},
	}
	type file struct {
		mode     int32
		contents string
	}
	var first map[string]file
	var firstVersions map[string]string
	for _, c := range classes {
		resp, err := p.mountOn(t, c.client, c.call)
		require.NoError(t, err, c.name)
		files := map[string]file{}
		for _, f := range resp.GetFiles() {
			files[f.GetPath()] = file{f.GetMode(), string(f.GetContents())}
		}
		// The whole secret is Vault's answer: its request_id is each read's own.
		var whole map[string]any
		require.NoError(t, json.Unmarshal([]byte(files["app.json"].contents), &whole), c.name)
		assert.NotEmpty(t, whole["request_id"])
		delete(whole, "request_id")
		files["app.json"] = file{files["app.json"].mode, mustJSON(t, whole)}
		require.Len(t, files, 4, c.name)
		assert.Equal(t, plantedPassword, files["password"].contents, c.name)
		assert.Equal(t, oldPassword, files["old-password"].contents, c.name)
		assert.Equal(t, "demo-user:"+plantedPassword, files["dsn"].contents, c.name)
		if first == nil {
			first, firstVersions = files, versions(resp)
			continue
		}
		assert.Equal(t, first, files, "%s: the same files as hashicorp's class", c.name)
		assert.Equal(t, firstVersions, versions(resp), "%s: the same versions as hashicorp's class", c.name)
	}
	text := scrape(t, metrics)
	assert.Contains(t, text, `vault_csi_provider_mounts_total{code="OK",provider="vault",result="success"} 1`)
	assert.Contains(t, text, `vault_csi_provider_mounts_total{code="OK",provider="openbao",result="success"} 2`)
}

// TestOpenBaoErrorsNameTheClassesParameters: on openbao.sock a class is
// answered in its own words, and mixing prefixes is refused naming both.
func TestOpenBaoErrorsNameTheClassesParameters(t *testing.T) {
	p := startProvider(t, "-allow-pod-overrides=*")
	pod := createPod(t, appServiceAccount)
	for name, tc := range map[string]struct {
		params map[string]string
		code   codes.Code
		want   []string
	}{
		"untrusted CA": {
			map[string]string{"baoAddress": env.Vault.TLS.Addr},
			codes.Unavailable, []string{"set baoCACertPath (or baoCADirectory)"},
		},
		"not an address": {
			map[string]string{"openbaoAddress": "bao.example:8200"},
			codes.InvalidArgument, []string{`openbaoAddress: "bao.example:8200" is not a Vault address`},
		},
		"mixed prefixes": {
			map[string]string{"baoAddress": env.Vault.TLS.Addr, "vaultCACertPath": env.Vault.TLS.CAFile},
			codes.InvalidArgument, []string{"baoAddress and vaultCACertPath mix parameter prefixes"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			params := map[string]string{"roleName": rig.OpenBaoRole, "objects": passwordObject}
			for k, v := range tc.params {
				params[k] = v
			}
			_, err := p.mountOn(t, p.openbao, mountCall{pod: pod, tokenAudiences: []string{"openbao"}, params: params})
			st := status.Convert(err)
			assert.Equal(t, tc.code.String(), st.Code().String(), st.Message())
			for _, w := range tc.want {
				assert.Contains(t, st.Message(), w)
			}
			assert.NotContains(t, st.Message(), "vaultAddress")
		})
	}
}
