package integration

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vaultcsi/vault-csi-provider/test/rig"
)

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// TestMetrics: mounts, Vault calls and cache events are counted with
// bounded labels, and nothing identifying a pod, path or secret is a label.
func TestMetrics(t *testing.T) {
	port, err := rig.FreePort()
	require.NoError(t, err)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p := startProvider(t, "-metrics-addr="+addr)
	ok := mountCall{pod: createPod(t, appServiceAccount), params: map[string]string{"roleName": kubeRole, "objects": kvObjects}, tokenAudiences: []string{"vault"}}
	for range 2 {
		_, err := p.mount(t, ok)
		require.NoError(t, err)
	}
	bad := mountCall{pod: createPod(t, otherServiceAccount), params: map[string]string{"roleName": kubeRole, "objects": passwordObject}, tokenAudiences: []string{"vault"}}
	_, err = p.mount(t, bad)
	require.Error(t, err)

	text := scrape(t, addr)
	for _, want := range []string{
		`vault_csi_provider_mounts_total{code="OK",provider="vault",result="success"} 2`,
		`vault_csi_provider_mounts_total{code="PermissionDenied",provider="vault",result="error"} 1`,
		`vault_csi_provider_vault_requests_total{operation="login",status="2xx"} 1`,
		`vault_csi_provider_vault_requests_total{operation="login",status="4xx"} 1`,
		`vault_csi_provider_cache_events_total{cache="token",event="hit"} 1`,
		`vault_csi_provider_mounts_in_flight 0`,
		`vault_csi_provider_mount_duration_seconds_count{provider="vault",result="success"} 2`,
		`# HELP vault_csi_provider_object_bytes_total Bytes of file content returned to the driver.`,
	} {
		assert.Contains(t, text, want)
	}
	assert.Regexp(t, regexp.MustCompile(`vault_csi_provider_vault_requests_total\{operation="read",status="2xx"\} \d+`), text)
	for _, never := range []string{ok.pod.Name, appNamespace, "secret/data", kubeRole + `"`, plantedPassword, "eyJ"} {
		assert.NotContains(t, text, never)
	}
}

// TestReadinessFollowsVault: /health/ready says not ready while the Vault the
// operator configured is sealed, and ready again once it is unsealed, with
// no restart; /health/live stays up throughout.
func TestReadinessFollowsVault(t *testing.T) {
	v, err := rig.StartVault(env.Dir, rig.BinDir(), "vault-to-seal")
	require.NoError(t, err)
	t.Cleanup(v.Stop)
	port, err := rig.FreePort()
	require.NoError(t, err)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p := startProvider(t, "-vault-addr="+v.Addr, "-health-addr="+addr, "-vault-health-interval=200ms")
	status := func(path string) int {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Eventually(t, func() bool { return status("/health/ready") == http.StatusOK }, 10*time.Second, 50*time.Millisecond)

	key, err := v.UnsealKey()
	require.NoError(t, err)
	_, err = v.Root.Logical().Write("sys/seal", nil)
	require.NoError(t, err)
	assert.Eventually(t, func() bool { return status("/health/ready") == http.StatusServiceUnavailable }, 10*time.Second, 50*time.Millisecond, "not ready while sealed")
	assert.Equal(t, http.StatusOK, status("/health/live"))
	assert.Contains(t, p.logs.String(), ": not ready", "the log says why")

	_, err = v.Root.Sys().UnsealWithContext(context.Background(), key)
	require.NoError(t, err)
	assert.Eventually(t, func() bool { return status("/health/ready") == http.StatusOK }, 10*time.Second, 50*time.Millisecond, "ready again once unsealed")
}

// TestDashboardQueriesExportedMetrics: every metric the Grafana dashboard in
// charts/ queries is one the provider exports, so the dashboard cannot drift.
func TestDashboardQueriesExportedMetrics(t *testing.T) {
	port, err := rig.FreePort()
	require.NoError(t, err)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p := startProvider(t, "-metrics-addr="+addr)
	_, err = p.mount(t, mountCall{pod: createPod(t, appServiceAccount), params: map[string]string{"roleName": kubeRole, "objects": passwordObject}, tokenAudiences: []string{"vault"}})
	require.NoError(t, err)
	exported := map[string]bool{}
	for _, line := range strings.Split(scrape(t, addr), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			exported[f[2]] = true
		}
	}

	raw, err := os.ReadFile("../../charts/vault-csi-provider/dashboards/vault-csi-provider.json")
	require.NoError(t, err)
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(raw, &dash))
	require.NotEmpty(t, dash.Panels)
	metric := regexp.MustCompile(`\b(vault_csi_provider_[a-z_]+|process_[a-z_]+)`)
	for _, panel := range dash.Panels {
		for _, target := range panel.Targets {
			for _, name := range metric.FindAllString(target.Expr, -1) {
				assert.True(t, exported[strings.TrimSuffix(name, "_bucket")], "panel %q queries %s, which the provider does not export", panel.Title, name)
			}
		}
	}
}
