package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vaultcsi/vault-csi-provider/test/rig"
)

// TestPodAttributesChecked: sessions, tokens and leases are kept per pod,
// so a request must speak only for a pod of this node. With the pod watcher
// on (-node-name), a request whose uid, namespace, name or service account
// is not the API's pod of this node is refused before any login.
func TestPodAttributesChecked(t *testing.T) {
	metricsAddr := freeAddr(t)
	p := startProvider(t, "-node-name=node-id", "-metrics-addr="+metricsAddr)
	ctx := context.Background()
	pod, err := env.CreatePod(ctx, dnsName(t.Name()), appServiceAccount, "node-id")
	require.NoError(t, err)
	elsewhere, err := env.CreatePod(ctx, dnsName(t.Name()), appServiceAccount, "node-other")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return strings.Contains(p.logs.String(), "watching this node's pods") }, 10*time.Second, 50*time.Millisecond)
	params := map[string]string{"roleName": kubeRole, "objects": passwordObject}

	resp, err := p.mount(t, mountCall{pod: pod, params: params, tokenAudiences: []string{"vault"}})
	require.NoError(t, err, "the node's own pod mounts")
	assert.Equal(t, plantedPassword, string(resp.Files[0].Contents))

	calls := vaultCalls(t, metricsAddr) // this provider's own, not other tests'

	token, err := env.KubeletToken(ctx, pod, "vault") // the pod's real token, sent with attributes that lie
	require.NoError(t, err)
	forged := []struct {
		name string
		edit func(*rig.Pod)
		says string
	}{
		{"another service account", func(p *rig.Pod) { p.ServiceAccount = otherServiceAccount }, `service account "` + otherServiceAccount + `"`},
		{"another name", func(p *rig.Pod) { p.Name = "not-" + p.Name }, `name "not-`},
		{"another namespace", func(p *rig.Pod) { p.Namespace = "kube-system" }, `namespace "kube-system"`},
		{"a uid of no pod", func(p *rig.Pod) { p.UID = "00000000-0000-0000-0000-000000000000" }, "is not a pod of this node"},
	}
	for _, f := range forged {
		t.Run(f.name, func(t *testing.T) {
			claimed := pod
			f.edit(&claimed)
			req, err := rig.MountRequest(claimed, params, map[string]rig.Token{"vault": token}, false, "")
			require.NoError(t, err)
			_, err = p.client.Mount(ctx, req)
			st := status.Convert(err)
			assert.Equal(t, codes.PermissionDenied, st.Code(), st.Message())
			assert.Contains(t, st.Message(), f.says)
		})
	}
	_, err = p.mount(t, mountCall{pod: elsewhere, params: params, tokenAudiences: []string{"vault"}})
	st := status.Convert(err)
	assert.Equal(t, codes.PermissionDenied, st.Code(), st.Message())
	assert.Contains(t, st.Message(), "is not a pod of this node", "another node's pod is not this provider's")
	assert.Equal(t, calls, vaultCalls(t, metricsAddr), "refused before any login or read")
}

// TestClassesReadFromTheWatch: the pod-override check reads
// SecretProviderClasses from a watch: warm mounts make no GET of the class
// (counted by the apiserver's own metrics), and a class's change is seen.
func TestClassesReadFromTheWatch(t *testing.T) {
	ctx := context.Background()
	class := map[string]string{"roleName": kubeRole, "vaultAddress": env.Vault.Addr, "objects": passwordObject}
	require.NoError(t, env.CreateClass(ctx, "watched", class))
	p := startProvider(t)
	require.Eventually(t, func() bool { return strings.Contains(p.logs.String(), "watching SecretProviderClasses") }, 10*time.Second, 50*time.Millisecond)
	params := map[string]string{"secretProviderClass": "watched"}
	for k, v := range class {
		params[k] = v
	}
	call := mountCall{pod: createPod(t, appServiceAccount), params: params, tokenAudiences: []string{"vault"}}
	_, err := p.mount(t, call)
	require.NoError(t, err)

	before := classGets(t)
	for range 20 {
		_, err := p.mount(t, call)
		require.NoError(t, err)
	}
	gets := classGets(t) - before
	t.Logf("apiserver GETs of SecretProviderClasses for 20 warm mounts that set vaultAddress: %d", gets)
	assert.Zero(t, gets)
}

// classGets is how many GETs of SecretProviderClasses the apiserver served.
func classGets(t *testing.T) int {
	t.Helper()
	counts, err := env.APIRequests(context.Background())
	require.NoError(t, err)
	return counts["GET secretproviderclasses"]
}
