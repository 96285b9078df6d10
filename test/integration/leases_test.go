package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/vaultcsi/vault-csi-provider/test/rig"
)

func dbObjects(role string) string {
	return `
- {objectName: username, secretPath: database/creds/` + role + `, secretKey: username}
- {objectName: password, secretPath: database/creds/` + role + `, secretKey: password}
`
}

// credentials mounts and returns the database user and password it got.
func credentials(t *testing.T, p *runningProvider, c mountCall) (user, pass string, resp *v1alpha1.MountResponse) {
	t.Helper()
	resp, err := p.mount(t, c)
	require.NoError(t, err)
	files := map[string]string{}
	for _, f := range resp.Files {
		files[f.Path] = string(f.Contents)
	}
	require.NotEmpty(t, files["username"])
	return files["username"], files["password"], resp
}

// TestDatabaseLeaseReusedAcrossRotation: rotation polls of one pod's
// database secret return the same credentials from one lease.
func TestDatabaseLeaseReusedAcrossRotation(t *testing.T) {
	p := startProvider(t)
	call := mountCall{pod: createPod(t, appServiceAccount), params: map[string]string{"roleName": kubeRole, "objects": dbObjects(rig.DBRole)}, tokenAudiences: []string{"vault"}}
	before := vaultRequests(t, "database/creds/"+rig.DBRole)

	user, pass, first := credentials(t, p, call)
	require.NoError(t, env.Postgres.Login(user, pass), "the credentials log into Postgres")
	for range 4 {
		u, pw, resp := credentials(t, p, call)
		assert.Equal(t, user, u)
		assert.Equal(t, pass, pw)
		assert.Equal(t, versions(first), versions(resp), "unchanged credentials keep their versions")
	}
	assert.Equal(t, 1, vaultRequests(t, "database/creds/"+rig.DBRole)-before, "one lease for 5 mounts")

	other := mountCall{pod: createPod(t, appServiceAccount), params: call.params, tokenAudiences: []string{"vault"}}
	u, _, _ := credentials(t, p, other)
	assert.NotEqual(t, user, u, "another pod gets its own credentials")
}

// TestDatabaseLeaseRenewed: below the threshold a renewable lease is
// renewed: same credentials, still valid past their first expiry.
func TestDatabaseLeaseRenewed(t *testing.T) {
	p := startProvider(t)
	call := mountCall{pod: createPod(t, appServiceAccount), params: map[string]string{"roleName": kubeRole, "objects": dbObjects(rig.DBRenewableRole)}, tokenAudiences: []string{"vault"}}
	reads, renewals := vaultRequests(t, "database/creds/"+rig.DBRenewableRole), vaultRequests(t, "sys/leases/renew")

	user, pass, _ := credentials(t, p, call)
	time.Sleep(4500 * time.Millisecond) // 1.5s of the 6s lease left: under a third
	u, pw, _ := credentials(t, p, call)
	assert.Equal(t, user, u)
	assert.Equal(t, pass, pw)
	assert.Equal(t, 1, vaultRequests(t, "sys/leases/renew")-renewals, "renewed once")
	assert.Equal(t, 1, vaultRequests(t, "database/creds/"+rig.DBRenewableRole)-reads, "no new lease")

	time.Sleep(2500 * time.Millisecond) // past the first 6s
	assert.NoError(t, env.Postgres.Login(user, pass), "the renewed credentials still log in")
}

// TestDatabaseNewLeaseWhenNotExtendable: a lease at its max TTL is replaced
// by a new secret, and the versions change.
func TestDatabaseNewLeaseWhenNotExtendable(t *testing.T) {
	p := startProvider(t)
	call := mountCall{pod: createPod(t, appServiceAccount), params: map[string]string{"roleName": kubeRole, "objects": dbObjects(rig.DBFixedRole)}, tokenAudiences: []string{"vault"}}
	reads := vaultRequests(t, "database/creds/"+rig.DBFixedRole)

	user, _, first := credentials(t, p, call)
	time.Sleep(3 * time.Second) // 1s of the 4s lease left, and it cannot be extended
	u, pass, second := credentials(t, p, call)
	assert.NotEqual(t, user, u)
	assert.NotEqual(t, versions(first)["username"], versions(second)["username"])
	assert.Equal(t, 2, vaultRequests(t, "database/creds/"+rig.DBFixedRole)-reads)
	assert.NoError(t, env.Postgres.Login(u, pass))
}

// TestTokenRenewedBeforeExpiry: a renewable token past half its TTL is
// renewed instead of logging in again.
func TestTokenRenewedBeforeExpiry(t *testing.T) {
	p := startProvider(t)
	call := mountCall{pod: createPod(t, appServiceAccount), params: map[string]string{"roleName": rig.RenewableRole, "objects": passwordObject}, tokenAudiences: []string{"vault"}}
	logins, renewals := vaultRequests(t, "auth/kubernetes/login"), vaultRequests(t, "auth/token/renew-self")
	_, err := p.mount(t, call)
	require.NoError(t, err)
	time.Sleep(2500 * time.Millisecond) // past half the 4s TTL
	_, err = p.mount(t, call)
	require.NoError(t, err)
	time.Sleep(2500 * time.Millisecond) // past the first 4s: only renewal keeps it alive
	_, err = p.mount(t, call)
	require.NoError(t, err)
	assert.Equal(t, 1, vaultRequests(t, "auth/kubernetes/login")-logins, "one login")
	assert.Equal(t, 2, vaultRequests(t, "auth/token/renew-self")-renewals, "renewed twice")
}

// TestPodDeletionRevokes: when a pod on this node is deleted, its Vault
// token is revoked, and with it its database lease: the user is dropped.
func TestPodDeletionRevokes(t *testing.T) {
	p := startProvider(t, "-node-name=node-a")
	pod, err := env.CreatePod(context.Background(), dnsName(t.Name()), appServiceAccount, "node-a")
	require.NoError(t, err)
	elsewhere, err := env.CreatePod(context.Background(), dnsName(t.Name()), appServiceAccount, "node-b")
	require.NoError(t, err)
	params := map[string]string{"roleName": kubeRole, "objects": dbObjects(rig.DBRole)}
	user, pass, _ := credentials(t, p, mountCall{pod: pod, params: params, tokenAudiences: []string{"vault"}})
	other := startProvider(t, "-node-name=node-b") // node-b's own provider
	require.Eventually(t, func() bool { return strings.Contains(other.logs.String(), "watching this node's pods") }, 10*time.Second, 50*time.Millisecond)
	otherUser, otherPass, _ := credentials(t, other, mountCall{pod: elsewhere, params: params, tokenAudiences: []string{"vault"}})
	require.NoError(t, env.Postgres.Login(user, pass))
	require.Eventually(t, func() bool { return strings.Contains(p.logs.String(), "watching this node's pods") }, 10*time.Second, 50*time.Millisecond)
	revocations := vaultRequests(t, "auth/token/revoke-self")

	require.NoError(t, env.DeletePod(context.Background(), pod))
	assert.Eventually(t, func() bool { return env.Postgres.Login(user, pass) != nil }, 15*time.Second, 200*time.Millisecond,
		"the deleted pod's database user no longer logs in")
	assert.Equal(t, 1, vaultRequests(t, "auth/token/revoke-self")-revocations)
	assert.Eventually(t, func() bool {
		return strings.Contains(p.logs.String(), "revoking the Vault tokens and leases of a deleted pod")
	},
		time.Second, 20*time.Millisecond, "the log says so")
	assert.NoError(t, env.Postgres.Login(otherUser, otherPass), "a pod on another node is not this provider's to revoke")
}

// TestBackgroundRenewal: a pod mounts once (rotation off, the driver's
// default). With its 4s token and 6s database lease renewed in the
// background, its credentials still work after 10s; without the renewer
// they die with the token.
func TestBackgroundRenewal(t *testing.T) {
	run := func(t *testing.T, args ...string) (user, pass string) {
		p := startProvider(t, args...)
		pod, err := env.CreatePod(context.Background(), dnsName(t.Name()), appServiceAccount, "node-bg")
		require.NoError(t, err)
		user, pass, _ = credentials(t, p, mountCall{pod: pod, params: map[string]string{"roleName": rig.RenewableRole, "objects": dbObjects(rig.DBRenewableRole)}, tokenAudiences: []string{"vault"}})
		require.NoError(t, env.Postgres.Login(user, pass))
		time.Sleep(10 * time.Second) // past the token's 4s and the lease's 6s
		return user, pass
	}
	t.Run("renewed in the background", func(t *testing.T) {
		logins, tokenRenewals, leaseRenewals := vaultRequests(t, "auth/kubernetes/login"), vaultRequests(t, "auth/token/renew-self"), vaultRequests(t, "sys/leases/renew")
		user, pass := run(t, "-node-name=node-bg", "-renew-interval=500ms")
		assert.NoError(t, env.Postgres.Login(user, pass), "the credentials still log in")
		assert.Equal(t, 1, vaultRequests(t, "auth/kubernetes/login")-logins, "one login")
		assert.Positive(t, vaultRequests(t, "auth/token/renew-self")-tokenRenewals, "the token was renewed")
		assert.Positive(t, vaultRequests(t, "sys/leases/renew")-leaseRenewals, "the lease was renewed")
	})
	t.Run("without the renewer the credentials expire", func(t *testing.T) {
		user, pass := run(t, "-renew-interval=0")
		assert.Error(t, env.Postgres.Login(user, pass), "Vault revoked the lease with its token")
	})
}

// TestLeasesDieWithTheirToken: Vault revokes a token's leases with it. When
// the pod's token is revoked behind the provider's back (an operator, a
// Vault policy change), the next mount is refused, logs in again and reads
// new database credentials that work: it never serves the revoked ones
// from its lease cache.
func TestLeasesDieWithTheirToken(t *testing.T) {
	p := startProvider(t)
	objects := dbObjects(rig.DBRole) + "- {objectName: app-password, secretPath: secret/data/app, secretKey: password}\n"
	call := mountCall{pod: createPod(t, appServiceAccount), params: map[string]string{"roleName": kubeRole, "objects": objects}, tokenAudiences: []string{"vault"}}
	user, pass, _ := credentials(t, p, call)
	require.NoError(t, env.Postgres.Login(user, pass))
	logins := vaultRequests(t, "auth/kubernetes/login")

	accessors, err := env.Vault.Root.Logical().List("auth/token/accessors")
	require.NoError(t, err)
	revoked := 0
	for _, a := range accessors.Data["keys"].([]any) {
		info, err := env.Vault.Root.Logical().Write("auth/token/lookup-accessor", map[string]any{"accessor": a})
		if err != nil || info.Data["meta"] == nil {
			continue
		}
		// Every token of the pod's service account: this test's provider serves only this pod.
		if meta, _ := info.Data["meta"].(map[string]any); meta["service_account_name"] == call.pod.ServiceAccount && meta["service_account_namespace"] == call.pod.Namespace {
			_, err := env.Vault.Root.Logical().Write("auth/token/revoke-accessor", map[string]any{"accessor": a})
			require.NoError(t, err)
			revoked++
		}
	}
	require.Positive(t, revoked, "found the pod's token")
	require.Eventually(t, func() bool { return env.Postgres.Login(user, pass) != nil }, 15*time.Second, 200*time.Millisecond,
		"Vault dropped the database user with the token")

	u, pw, _ := credentials(t, p, call)
	assert.NotEqual(t, user, u, "new credentials, not the revoked lease")
	assert.NoError(t, env.Postgres.Login(u, pw), "and they log into Postgres")
	assert.Equal(t, 1, vaultRequests(t, "auth/kubernetes/login")-logins, "one new login")
	u2, _, _ := credentials(t, p, call)
	assert.Equal(t, u, u2, "the new lease is reused again")
}
