package integration

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/vaultcsi/vault-csi-provider/test/rig"
)

// TestSecretsNeverLogged plants secret values and tokens, drives the mount
// down its success and failure paths at debug level, and checks that no log
// line, no error returned to the driver (which the kubelet turns into the
// pod's events) and no metric contains any of them, nor the HMAC key.
func TestSecretsNeverLogged(t *testing.T) {
	hmacName := "vcp-planted-key"
	port, err := rig.FreePort()
	require.NoError(t, err)
	metricsAddr := "127.0.0.1:" + strconv.Itoa(port)
	p := startProvider(t, "-hmac-secret-name="+hmacName, "-metrics-addr="+metricsAddr, "-token-request-fallback")
	app := createPod(t, appServiceAccount)
	intruder := createPod(t, otherServiceAccount)
	role := map[string]string{"roleName": kubeRole}
	with := func(extra map[string]string) map[string]string {
		out := map[string]string{}
		for _, m := range []map[string]string{role, extra} {
			for k, v := range m {
				out[k] = v
			}
		}
		return out
	}
	calls := map[string]mountCall{
		"success":               {pod: app, params: with(map[string]string{"objects": kvObjects}), tokenAudiences: []string{"vault"}},
		"unbound account":       {pod: intruder, params: with(map[string]string{"objects": passwordObject}), tokenAudiences: []string{"vault"}},
		"missing key":           {pod: app, params: with(map[string]string{"objects": "- {objectName: x, secretPath: secret/data/app, secretKey: nope}"}), tokenAudiences: []string{"vault"}},
		"value not base64":      {pod: app, params: with(map[string]string{"objects": "- {objectName: x, secretPath: secret/data/app, secretKey: password, encoding: base64}"}), tokenAudiences: []string{"vault"}},
		"minted token":          {pod: app, params: with(map[string]string{"roleName": customAudRole, "audience": customAudience, "objects": passwordObject})},
		"tokens in secrets":     {pod: app, params: with(map[string]string{"objects": passwordObject}), tokenAudiences: []string{"vault"}, tokensInSecrets: true},
		"bad objects yaml":      {pod: app, params: with(map[string]string{"objects": "- {objectName: ../x"}), tokenAudiences: []string{"vault"}},
		"jwt auth wrong person": {pod: intruder, params: with(map[string]string{"roleName": jwtRole, "vaultAuthMountPath": "jwt", "objects": passwordObject}), tokenAudiences: []string{"vault"}},
		"template ranges over a value": {pod: app, params: with(map[string]string{"objects": templateObjects(
			`{{ range (secret "secret/data/app").Data.data.password }}{{ end }}`)}), tokenAudiences: []string{"vault"}},
		"template indexes with a value": {pod: app, params: with(map[string]string{"objects": templateObjects(
			`{{ with secret "secret/data/app" }}{{ index .Data.data .Data.data.password }}{{ slice .Data.data.password 9 2 }}{{ end }}`)}), tokenAudiences: []string{"vault"}},
		"template over its budget": {pod: app, params: with(map[string]string{"objects": templateObjects(
			`{{ with secret "secret/data/app" }}{{ printf "%999999999s" .Data.data.password }}{{ end }}`)}), tokenAudiences: []string{"vault"}},
		"jsonPath into a value": {pod: app, params: with(map[string]string{"objects": "- {objectName: x, secretPath: secret/data/app, jsonPath: .data.data.password.x}"}), tokenAudiences: []string{"vault"}},
		"layout of a value":     {pod: app, params: with(map[string]string{"objects": "- {objectName: x, secretPath: secret/data/app, jsonPath: .data.data.password, layout: directory}"}), tokenAudiences: []string{"vault"}},
		"value not hex":         {pod: app, params: with(map[string]string{"objects": "- {objectName: x, secretPath: secret/data/app, secretKey: password, encoding: hex}"}), tokenAudiences: []string{"vault"}},
	}
	planted := []string{plantedPassword, oldPassword, legacyPassword, "hex-decoded", "binary\x00bytes"}
	var errs []string
	for name, c := range calls {
		req := c.request(t)
		planted = append(planted, tokensIn(t, req)...)
		_, err := p.client.Mount(context.Background(), req)
		if err != nil {
			errs = append(errs, name+": "+err.Error())
		}
	}
	// A malformed token attribute with a token inside it.
	bad := calls["success"].request(t)
	var attrs map[string]string
	require.NoError(t, json.Unmarshal([]byte(bad.Attributes), &attrs))
	attrs["csi.storage.k8s.io/serviceAccount.tokens"] = `{"vault": "eyJhbGciOiJSUzI1NiJ9.planted-token-in-bad-json"`
	bad.Attributes = mustJSON(t, attrs)
	_, err = p.client.Mount(context.Background(), bad)
	require.Error(t, err)
	errs = append(errs, err.Error())
	planted = append(planted, "planted-token-in-bad-json")

	key, err := env.Kube.AdminClient.CoreV1().Secrets(providerNamespace).Get(context.Background(), hmacName, metav1.GetOptions{})
	require.NoError(t, err)
	k := key.Data["key"]
	planted = append(planted, string(k), hex.EncodeToString(k), base64.StdEncoding.EncodeToString(k))

	require.Len(t, errs, 12, "every failure path was taken: %v", errs)
	logs := p.logs.String()
	require.Contains(t, logs, "mount succeeded")
	// Events are the kubelet's copies of these errors; metrics are scraped.
	everything := logs + "\n" + strings.Join(errs, "\n") + "\n" + scrape(t, metricsAddr)
	for _, s := range planted {
		assert.NotContains(t, everything, s)
	}
	// Every Kubernetes token is a JWT ("eyJ...") and every Vault token starts hvs.
	assert.NotContains(t, everything, "eyJ")
	assert.NotContains(t, everything, "hvs.")
}

// templateObjects is an objects parameter of one template object.
func templateObjects(text string) string {
	return "- objectName: x\n  template: |\n    " + text + "\n"
}

// tokensIn returns the service-account tokens a request carries.
func tokensIn(t *testing.T, req *v1alpha1.MountRequest) []string {
	t.Helper()
	var out []string
	for _, raw := range []string{req.Attributes, req.Secrets} {
		var m map[string]string
		if json.Unmarshal([]byte(raw), &m) != nil {
			continue
		}
		var tokens map[string]struct {
			Token string `json:"token"`
		}
		if json.Unmarshal([]byte(m["csi.storage.k8s.io/serviceAccount.tokens"]), &tokens) == nil {
			for _, tok := range tokens {
				out = append(out, tok.Token)
			}
		}
	}
	return out
}
