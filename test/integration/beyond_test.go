package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// What the provider offers beyond hashicorp/vault-csi-provider: templates,
// whole secrets as directories, jsonPath, KV v2 paths as `vault kv get`
// takes them, and the pod's own Vault token.

func kvPut(t *testing.T, path string, data map[string]any) {
	t.Helper()
	_, err := env.Vault.Root.Logical().Write("secret/data/"+path, map[string]any{"data": data})
	require.NoError(t, err)
}

func mountObjects(t *testing.T, p *runningProvider, objects string) (string, map[string]string, error) {
	t.Helper()
	resp, err := p.mount(t, mountCall{pod: createPod(t, appServiceAccount), params: map[string]string{"roleName": kubeRole, "objects": objects}, tokenAudiences: []string{"vault"}})
	if err != nil {
		return "", nil, err
	}
	return writeFiles(t, resp), versions(resp), nil
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	require.NoError(t, err)
	return string(b)
}

// TestTemplate: one file from two secrets in the injector's syntax, with the
// helper functions; a secret read only by a condition still counts in the
// version.
func TestTemplate(t *testing.T) {
	kvPut(t, "tmpl/db", map[string]any{"user": "app", "password": "p@ss"})
	kvPut(t, "tmpl/flags", map[string]any{"debug": "false", "hosts": []any{"a", "b"}})
	p := startProvider(t)
	objects := `
- objectName: config.env
  template: |
    {{- with secret "secret/data/tmpl/db" }}
    DB_URL=postgres://{{ .Data.data.user }}:{{ .Data.data.password }}@db:5432/app
    DB_AUTH={{ printf "%s:%s" .Data.data.user .Data.data.password | base64Encode }}
    {{- end }}
    {{- with secret "secret/data/tmpl/flags" }}
    HOSTS={{ join "," .Data.data.hosts }}
    FIRST={{ index .Data.data.hosts 0 }}
    {{- if eq .Data.data.debug "true" }}
    LOG=debug
    {{- end }}
    {{- end }}
- objectName: db.json
  template: '{{ with secret "secret/data/tmpl/db" }}{{ toJSON .Data.data }}{{ end }}'
`
	dir, v1, err := mountObjects(t, p, objects)
	require.NoError(t, err)
	assert.Equal(t, "\nDB_URL=postgres://app:p@ss@db:5432/app\nDB_AUTH=YXBwOnBAc3M=\nHOSTS=a,b\nFIRST=a\n", readFile(t, dir, "config.env"))
	assert.JSONEq(t, `{"user":"app","password":"p@ss"}`, readFile(t, dir, "db.json"))

	_, v2, err := mountObjects(t, p, objects)
	require.NoError(t, err)
	assert.Equal(t, v1, v2, "same secrets, same versions")

	// debug stays "false" in the output's eyes, but another key of the same
	// secret changes: the template read it, so its version changes.
	kvPut(t, "tmpl/flags", map[string]any{"debug": "false", "hosts": []any{"a", "b"}, "unused": "x"})
	_, v3, err := mountObjects(t, p, objects)
	require.NoError(t, err)
	assert.NotEqual(t, v1["config.env"], v3["config.env"])
	assert.Equal(t, v1["db.json"], v3["db.json"], "db.json reads only the unchanged secret")
}

// TestTemplateErrors: errors name the object and the line.
func TestTemplateErrors(t *testing.T) {
	kvPut(t, "tmpl/errors", map[string]any{"present": "yes"})
	p := startProvider(t)

	_, _, err := mountObjects(t, p, `
- objectName: broken
  template: |
    line one
    {{ with secret "secret/data/tmpl/errors" }}{{ .Data.data.present }
`)
	require.Error(t, err)
	assert.Equal(t, codes.InvalidArgument, status.Code(err))
	assert.Contains(t, err.Error(), `object "broken": template: broken:2:`)

	_, _, err = mountObjects(t, p, `
- objectName: missing-key
  template: |
    first
    second {{ with secret "secret/data/tmpl/errors" }}{{ .Data.data.absent }}{{ end }}
`)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `object "missing-key": template: missing-key:2:`)
	assert.Contains(t, err.Error(), `"absent"`)

	_, _, err = mountObjects(t, p, `
- objectName: forbidden
  template: '{{ with secret "sys/policies/acl/root" }}{{ .Data }}{{ end }}'
`)
	require.Error(t, err)
	assert.Equal(t, codes.PermissionDenied, status.Code(err), "a Vault error inside a template keeps its code")
	assert.Contains(t, err.Error(), `object "forbidden": template: forbidden:1:`)
}

// TestWholeSecretAndJSONPath: layout directory writes one file per key;
// jsonPath picks nested values; the default stays the whole response.
func TestWholeSecretAndJSONPath(t *testing.T) {
	kvPut(t, "whole/app", map[string]any{"user": "u1", "pass": "p1", "config": map[string]any{"db": map[string]any{"host": "db.local", "port": 5432}}})
	p := startProvider(t)
	dir, vers, err := mountObjects(t, p, `
- {objectName: app, secretPath: secret/data/whole/app, layout: directory}
- {objectName: host, secretPath: secret/data/whole/app, jsonPath: .data.data.config.db.host}
- {objectName: db, secretPath: secret/data/whole/app, jsonPath: '$.data.data.config.db', layout: directory, filePermission: 0600}
- {objectName: raw.json, secretPath: secret/data/whole/app}
`)
	require.NoError(t, err)
	assert.Equal(t, "u1", readFile(t, dir, "app/user"))
	assert.Equal(t, "p1", readFile(t, dir, "app/pass"))
	assert.JSONEq(t, `{"db":{"host":"db.local","port":5432}}`, readFile(t, dir, "app/config"))
	assert.Equal(t, "db.local", readFile(t, dir, "host"))
	assert.Equal(t, "5432", readFile(t, dir, "db/port"))
	info, err := os.Stat(filepath.Join(dir, "db", "host"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	assert.Contains(t, readFile(t, dir, "raw.json"), `"request_id"`, "without secretKey, jsonPath or layout: the whole response, as before")
	assert.Len(t, vers, 4, "one version per object, directories included")

	_, _, err = mountObjects(t, p, `- {objectName: x, secretPath: secret/data/whole/app, jsonPath: .data.data.config.nope}`)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `jsonPath ".data.data.config.nope": $.data.data.config has no key "nope"; keys there: db`)
}

// TestKVv2ShortPaths: secret/whole/app on the KV v2 mount reads
// secret/data/whole/app, like `vault kv get`; the explicit form and KV v1
// paths read what they name; the mount is looked up once.
func TestKVv2ShortPaths(t *testing.T) {
	kvPut(t, "short/app", map[string]any{"token": "t-123"})
	_, err := env.Vault.Root.Logical().Write("kv/short/app", map[string]any{"token": "v1-token"})
	require.NoError(t, err)
	before, err := env.AuditRequests("sys/internal/ui/mounts/secret/short/app")
	require.NoError(t, err)

	p := startProvider(t)
	objects := `
- {objectName: short, secretPath: secret/short/app, secretKey: token}
- {objectName: explicit, secretPath: secret/data/short/app, secretKey: token}
- {objectName: v1, secretPath: kv/short/app, secretKey: token}
- objectName: templated
  template: '{{ with secret "secret/short/app" }}{{ .Data.data.token }}{{ end }}'
`
	for range 3 {
		dir, _, err := mountObjects(t, p, objects)
		require.NoError(t, err)
		assert.Equal(t, "t-123", readFile(t, dir, "short"))
		assert.Equal(t, "t-123", readFile(t, dir, "explicit"))
		assert.Equal(t, "v1-token", readFile(t, dir, "v1"))
		assert.Equal(t, "t-123", readFile(t, dir, "templated"))
	}
	after, err := env.AuditRequests("sys/internal/ui/mounts/secret/short/app")
	require.NoError(t, err)
	assert.Equal(t, 1, after-before, "the mount of secret/ is asked once per provider, not per mount")
}

// TestPodVaultToken: an object can hold the pod's own Vault token, plain or
// response-wrapped; the token works and carries the role's policies.
func TestPodVaultToken(t *testing.T) {
	p := startProvider(t)
	dir, _, err := mountObjects(t, p, `
- {objectName: token, vaultToken: true, filePermission: 0400}
- {objectName: wrapped, vaultToken: true, wrapTTL: 2m}
`)
	require.NoError(t, err)
	token := readFile(t, dir, "token")
	require.NotEmpty(t, token)

	client, err := env.Vault.Root.Clone()
	require.NoError(t, err)
	client.SetToken(token)
	self, err := client.Auth().Token().LookupSelf()
	require.NoError(t, err, "the token in the file is a live Vault token")
	policies, err := self.TokenPolicies()
	require.NoError(t, err)
	assert.Contains(t, policies, "app")

	wrapped := readFile(t, dir, "wrapped")
	assert.NotEqual(t, token, wrapped)
	client.SetToken("")
	unwrapped, err := client.Logical().Unwrap(wrapped)
	require.NoError(t, err, "the wrapped file unwraps once")
	assert.Equal(t, token, unwrapped.Data["token"])
	_, err = client.Logical().Unwrap(wrapped)
	require.Error(t, err, "and only once")

	_, _, err = mountObjects(t, p, `- {objectName: bad, vaultToken: true, secretPath: secret/data/x}`)
	require.Error(t, err)
	assert.Equal(t, codes.InvalidArgument, status.Code(err))
	assert.True(t, strings.Contains(err.Error(), "secretPath does not apply with vaultToken: true"), err.Error())
}

// TestKVLookupsAreNotPoisonedAcrossTenants: a role whose token may not look
// up the mount of secret/ (a refused sys/internal/ui/mounts call) must not
// change how another tenant's short KV v2 path reads on the same provider.
func TestKVLookupsAreNotPoisonedAcrossTenants(t *testing.T) {
	kvPut(t, "tenants/app", map[string]any{"token": "t-tenant"})
	for path, data := range map[string]map[string]any{
		"sys/policies/acl/nothing": {"policy": `path "sys/nothing" { capabilities = ["read"] }`},
		"auth/kubernetes/role/no-kv": {"bound_service_account_names": appServiceAccount, "bound_service_account_namespaces": "*",
			"audience": "vault", "token_policies": "nothing", "token_ttl": "1h"},
	} {
		_, err := env.Vault.Root.Logical().Write(path, data)
		require.NoError(t, err)
	}
	p := startProvider(t)
	object := "- {objectName: short, secretPath: secret/tenants/app, secretKey: token}\n"
	for range 3 { // the hostile tenant first, several times
		_, err := p.mount(t, mountCall{pod: createPod(t, appServiceAccount), params: map[string]string{"roleName": "no-kv", "objects": object}, tokenAudiences: []string{"vault"}})
		require.Error(t, err)
		assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	}
	dir, _, err := mountObjects(t, p, object)
	require.NoError(t, err, "another tenant's short path still resolves")
	assert.Equal(t, "t-tenant", readFile(t, dir, "short"))
}

// TestKVv1ExpirationKeyIsNotALease: a KV v1 secret with a key named
// expiration (a PKI response has one) is read anew on every mount, so a
// changed value shows up.
func TestKVv1ExpirationKeyIsNotALease(t *testing.T) {
	p := startProvider(t)
	pod := createPod(t, appServiceAccount)
	call := mountCall{pod: pod, params: map[string]string{"roleName": kubeRole,
		"objects": "- {objectName: pw, secretPath: kv/expiring, secretKey: password}\n"}, tokenAudiences: []string{"vault"}}
	for _, value := range []string{"first", "second"} {
		_, err := env.Vault.Root.Logical().Write("kv/expiring", map[string]any{"password": value, "expiration": time.Now().Add(time.Hour).Unix(), "certificate": "not-a-cert"})
		require.NoError(t, err)
		resp, err := p.mount(t, call)
		require.NoError(t, err)
		assert.Equal(t, value, readFile(t, writeFiles(t, resp), "pw"))
	}
}
