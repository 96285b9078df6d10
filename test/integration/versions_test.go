package integration

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
)

const versionObjects = `
- {objectName: user, secretPath: secret/data/versioned, secretKey: user}
- {objectName: pass, secretPath: secret/data/versioned, secretKey: pass}
- {objectName: whole, secretPath: secret/data/versioned}
`

func writeVersioned(t *testing.T, user, pass string) {
	t.Helper()
	_, err := env.Vault.Root.Logical().Write("secret/data/versioned", map[string]any{"data": map[string]any{"user": user, "pass": pass}})
	require.NoError(t, err)
}

// TestVersionsStable: an unchanged secret keeps its version across mounts
// and provider restarts (the HMAC key lives in a Secret); a changed one
// gets a new version, and only it.
func TestVersionsStable(t *testing.T) {
	writeVersioned(t, "alice", "pw-1")
	hmac := "-hmac-secret-name=vcp-versions-key"
	call := mountCall{pod: createPod(t, appServiceAccount), params: map[string]string{"roleName": kubeRole, "objects": versionObjects}, tokenAudiences: []string{"vault"}}
	mountVersions := func(p *runningProvider) map[string]string {
		resp, err := p.mount(t, call)
		require.NoError(t, err)
		return versions(resp)
	}

	first := startProvider(t, hmac)
	v1 := mountVersions(first)
	require.Len(t, v1, 3)
	assert.Equal(t, v1, mountVersions(first), "same secret, same versions (whole-response object included, despite its new request_id)")

	secret, err := env.Kube.AdminClient.CoreV1().Secrets(providerNamespace).Get(context.Background(), "vcp-versions-key", metav1.GetOptions{})
	require.NoError(t, err, "the provider created its HMAC key Secret")
	assert.Len(t, secret.Data["key"], 32)

	require.NoError(t, first.stop())
	second := startProvider(t, hmac)
	assert.Equal(t, v1, mountVersions(second), "a restarted provider reads the same key")

	writeVersioned(t, "alice", "pw-2")
	v2 := mountVersions(second)
	assert.Equal(t, v1["user"], v2["user"], "unchanged value keeps its version")
	assert.NotEqual(t, v1["pass"], v2["pass"], "changed value gets a new version")
	assert.NotEqual(t, v1["whole"], v2["whole"])

	// Deleting the Secret rotates the key of the running provider, and of
	// one started later.
	require.NoError(t, env.Kube.AdminClient.CoreV1().Secrets(providerNamespace).Delete(context.Background(), "vcp-versions-key", metav1.DeleteOptions{}))
	var v3 map[string]string
	require.Eventually(t, func() bool {
		v3 = mountVersions(second)
		return v3["user"] != v2["user"]
	}, 10*time.Second, 100*time.Millisecond, "the running provider follows the deleted Secret with a new key")
	assert.NotEqual(t, v2["pass"], v3["pass"])
	third := startProvider(t, hmac)
	assert.Equal(t, v3, mountVersions(third), "the new key was stored in a new Secret, which a new provider reads")
}

// TestHMACKeyCreationRace: providers starting together on several nodes
// agree on one key.
func TestHMACKeyCreationRace(t *testing.T) {
	writeVersioned(t, "bob", "pw")
	hmac := "-hmac-secret-name=vcp-race-key"
	providers := []*runningProvider{startProvider(t, hmac), startProvider(t, hmac), startProvider(t, hmac)}
	pod := createPod(t, appServiceAccount)
	reqs := make([]*v1alpha1.MountRequest, len(providers))
	for i := range providers {
		reqs[i] = mountCall{pod: pod, params: map[string]string{"roleName": kubeRole, "objects": versionObjects}, tokenAudiences: []string{"vault"}}.request(t)
	}
	got := make([]map[string]string, len(providers))
	var wg sync.WaitGroup
	for i, p := range providers {
		wg.Go(func() {
			resp, err := p.client.Mount(context.Background(), reqs[i])
			if assert.NoError(t, err) {
				got[i] = versions(resp)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, got[0], got[1])
	assert.Equal(t, got[0], got[2])
}
