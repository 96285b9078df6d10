package integration

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// kvObjects reads KV v2 (current and ?version=1), KV v1, encodings, a whole
// secret and a nested file name with its own mode.
const kvObjects = `
- objectName: password
  secretPath: secret/data/app
  secretKey: password
- objectName: username
  secretPath: /v1/secret/data/app
  secretKey: username
- objectName: password-v1
  secretPath: secret/data/app?version=1
  secretKey: password
- objectName: legacy
  secretPath: kv/legacy
  secretKey: password
- objectName: blob
  secretPath: secret/data/app
  secretKey: blob
  encoding: base64
- objectName: hexval
  secretPath: secret/data/app
  secretKey: hexval
  encoding: hex
- objectName: port
  secretPath: secret/data/app
  secretKey: port
- objectName: whole.json
  secretPath: secret/data/app
- objectName: db/credentials/password
  secretPath: secret/data/app
  secretKey: password
  filePermission: 0600
`

func TestKubernetesAuthReadsKV(t *testing.T) {
	p := startProvider(t)
	pod := createPod(t, appServiceAccount)

	for _, tc := range []struct {
		name     string
		inSecret bool
	}{
		{name: "tokens in volume attributes"},
		{name: "tokens in the secrets field", inSecret: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := p.mount(t, mountCall{
				pod:             pod,
				params:          map[string]string{"roleName": kubeRole, "objects": kvObjects},
				tokenAudiences:  []string{"vault"},
				tokensInSecrets: tc.inSecret,
			})
			require.NoError(t, err)
			dir := writeFiles(t, resp)

			want := map[string]string{
				"password":                plantedPassword,
				"username":                "demo-user",
				"password-v1":             oldPassword,
				"legacy":                  legacyPassword,
				"blob":                    "binary\x00bytes",
				"hexval":                  "hex-decoded",
				"port":                    "5432",
				"db/credentials/password": plantedPassword,
			}
			for name, content := range want {
				b, err := os.ReadFile(filepath.Join(dir, name))
				require.NoError(t, err, name)
				assert.Equal(t, content, string(b), name)
			}
			whole, err := os.ReadFile(filepath.Join(dir, "whole.json"))
			require.NoError(t, err)
			assert.Contains(t, string(whole), `"request_id"`, "no secretKey writes the whole response, as hashicorp's provider does")
			assert.Contains(t, string(whole), `"username":"demo-user"`)

			assert.Equal(t, fs.FileMode(0o644), fileMode(t, filepath.Join(dir, "password")), "default mode from the driver's permission")
			assert.Equal(t, fs.FileMode(0o600), fileMode(t, filepath.Join(dir, "db/credentials/password")), "filePermission: 0600")

			assert.Len(t, versions(resp), 9, "one version per object")
		})
	}
}

func fileMode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	require.NoError(t, err)
	return st.Mode().Perm()
}
