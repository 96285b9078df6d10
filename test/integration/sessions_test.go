package integration

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vaultcsi/vault-csi-provider/test/rig"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
)

// vaultRequests counts the requests to path in Vault's own audit log.
func vaultRequests(t *testing.T, path string) int {
	t.Helper()
	n, err := env.AuditRequests(path)
	require.NoError(t, err)
	return n
}

// TestOneLoginForConcurrentMounts: a burst of mounts for one pod logs in
// once, and later mounts reuse the token.
func TestOneLoginForConcurrentMounts(t *testing.T) {
	p := startProvider(t)
	pod := createPod(t, appServiceAccount)
	call := mountCall{pod: pod, params: map[string]string{"roleName": kubeRole, "objects": passwordObject}, tokenAudiences: []string{"vault"}}
	before := vaultRequests(t, "auth/kubernetes/login")

	const burst = 100
	reqs := make([]*v1alpha1.MountRequest, burst)
	for i := range reqs {
		reqs[i] = call.request(t) // each with its own kubelet token, as on re-mounts
	}
	errs := make([]error, burst)
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Go(func() { _, errs[i] = p.client.Mount(context.Background(), req) })
	}
	wg.Wait()
	for _, err := range errs {
		assert.NoError(t, err)
	}
	_, err := p.mount(t, call)
	require.NoError(t, err)
	assert.Equal(t, 1, vaultRequests(t, "auth/kubernetes/login")-before, "one login for %d concurrent mounts and a later one", burst+1)

	other := createPod(t, appServiceAccount)
	_, err = p.mount(t, mountCall{pod: other, params: call.params, tokenAudiences: []string{"vault"}})
	require.NoError(t, err)
	assert.Equal(t, 2, vaultRequests(t, "auth/kubernetes/login")-before, "another pod is another identity")
}

// TestReloginAfterTokenRevoked: when Vault no longer accepts the cached token
// the provider logs in once more and the mount succeeds.
func TestReloginAfterTokenRevoked(t *testing.T) {
	p := startProvider(t)
	call := mountCall{pod: createPod(t, appServiceAccount), params: map[string]string{"roleName": kubeRole, "objects": passwordObject}, tokenAudiences: []string{"vault"}}
	before := vaultRequests(t, "auth/kubernetes/login")
	_, err := p.mount(t, call)
	require.NoError(t, err)

	_, err = env.Vault.Root.Logical().Write("sys/leases/revoke-prefix/auth/kubernetes/login", nil)
	require.NoError(t, err)

	_, err = p.mount(t, call)
	require.NoError(t, err)
	assert.Equal(t, 2, vaultRequests(t, "auth/kubernetes/login")-before)
	assert.Contains(t, p.logs.String(), "vault refused the cached token; logging in again")
}

// TestExpiringTokenIsReplaced: a cached token is used while it has more than
// a fifth of its TTL left, then a new login replaces it.
func TestExpiringTokenIsReplaced(t *testing.T) {
	p := startProvider(t)
	call := mountCall{pod: createPod(t, appServiceAccount), params: map[string]string{"roleName": shortTTLRole, "objects": passwordObject}, tokenAudiences: []string{"vault"}}
	before := vaultRequests(t, "auth/kubernetes/login")
	for range 2 {
		_, err := p.mount(t, call)
		require.NoError(t, err)
	}
	assert.Equal(t, 1, vaultRequests(t, "auth/kubernetes/login")-before, "reused within its TTL")
	time.Sleep(2600 * time.Millisecond) // past 4/5 of the 3s TTL
	_, err := p.mount(t, call)
	require.NoError(t, err)
	assert.Equal(t, 2, vaultRequests(t, "auth/kubernetes/login")-before, "replaced before it expires")
}

// TestCacheSizeZeroLogsInEveryMount keeps hashicorp's meaning of -cache-size=0.
func TestCacheSizeZeroLogsInEveryMount(t *testing.T) {
	p := startProvider(t, "-cache-size=0")
	call := mountCall{pod: createPod(t, appServiceAccount), params: map[string]string{"roleName": kubeRole, "objects": passwordObject}, tokenAudiences: []string{"vault"}}
	before := vaultRequests(t, "auth/kubernetes/login")
	for range 3 {
		_, err := p.mount(t, call)
		require.NoError(t, err)
	}
	assert.Equal(t, 3, vaultRequests(t, "auth/kubernetes/login")-before)
}

// TestCacheSizeZeroRevokesEachToken: with no token cache, a mount's token
// is revoked when the mount ends, unless the mount returned what Vault
// revokes with it: database credentials keep working.
func TestCacheSizeZeroRevokesEachToken(t *testing.T) {
	p := startProvider(t, "-cache-size=0")
	pod := createPod(t, appServiceAccount)
	revokes := vaultRequests(t, "auth/token/revoke-self")
	for range 3 {
		_, err := p.mount(t, mountCall{pod: pod, params: map[string]string{"roleName": kubeRole, "objects": passwordObject}, tokenAudiences: []string{"vault"}})
		require.NoError(t, err)
	}
	assert.Eventually(t, func() bool { return vaultRequests(t, "auth/token/revoke-self")-revokes == 3 }, 10*time.Second, 50*time.Millisecond, "each KV mount's token revoked")
	user, pass, _ := credentials(t, p, mountCall{pod: pod, params: map[string]string{"roleName": kubeRole, "objects": dbObjects(rig.DBRole)}, tokenAudiences: []string{"vault"}})
	time.Sleep(500 * time.Millisecond)
	assert.Equal(t, 3, vaultRequests(t, "auth/token/revoke-self")-revokes, "the database mount's token is left to its TTL")
	assert.NoError(t, env.Postgres.Login(user, pass), "its credentials still work")
}

// liveTokens counts the tokens Vault holds (auth/token/accessors).
func liveTokens(t *testing.T) int {
	t.Helper()
	s, err := env.Vault.Root.Logical().List("auth/token/accessors")
	require.NoError(t, err)
	keys, _ := s.Data["keys"].([]any)
	return len(keys)
}

// TestRefusedReadsKeepTheToken: a read the role's policy refuses (403) with
// a valid cached token is a policy problem: lookup-self says the token is
// fine, so five refused mounts log in no more and leave no extra live token.
func TestRefusedReadsKeepTheToken(t *testing.T) {
	p := startProvider(t)
	pod := createPod(t, appServiceAccount)
	ok := mountCall{pod: pod, params: map[string]string{"roleName": kubeRole, "objects": passwordObject}, tokenAudiences: []string{"vault"}}
	_, err := p.mount(t, ok)
	require.NoError(t, err)
	logins, tokens := vaultRequests(t, "auth/kubernetes/login"), liveTokens(t)

	refused := ok
	refused.params = map[string]string{"roleName": kubeRole, "objects": "- {objectName: meta, secretPath: secret/metadata/app}\n"}
	for range 5 {
		_, err := p.mount(t, refused)
		assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	}
	assert.Equal(t, logins, vaultRequests(t, "auth/kubernetes/login"), "no new login for a policy refusal")
	assert.Equal(t, tokens, liveTokens(t), "no token left behind")
	_, err = p.mount(t, ok)
	require.NoError(t, err, "the cached token still serves")
}
