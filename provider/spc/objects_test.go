package spc

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FuzzPaths: an accepted objectName stays inside the volume and passes the
// driver's own rules; an accepted secretPath has no . or .. elements.
func FuzzPaths(f *testing.F) {
	for _, s := range []string{"a", "a/b", "../x", "/etc/passwd", "..data", "a//b", "./a", "a/./b", strings.Repeat("x", 300), "secret/data/app?version=1", "/v1/kv/x", "sys/../raw"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateObjectName(s) == nil {
			if filepath.IsAbs(s) || filepath.Clean(s) != s || s == ".." || strings.HasPrefix(s, "../") || strings.Contains(s, "/../") || strings.HasPrefix(s, "..") {
				t.Fatalf("accepted objectName %q", s)
			}
			if !filepath.IsLocal(s) {
				t.Fatalf("objectName %q leaves the volume", s)
			}
		}
		if p, _, err := SplitSecretPath(s); err == nil {
			for _, elem := range strings.Split(p, "/") {
				if elem == "." || elem == ".." || elem == "" {
					t.Fatalf("accepted secretPath %q as %q", s, p)
				}
			}
		}
	})
}

func TestCallKey(t *testing.T) {
	objs, err := ParseObjects(`
- {objectName: a, secretPath: secret/data/app, secretKey: user}
- {objectName: b, secretPath: /v1/secret/data/app, secretKey: password}
- {objectName: c, secretPath: pki/issue/web, method: PUT, secretArgs: {common_name: a.example.com}}
- {objectName: d, secretPath: pki/issue/web, method: PUT, secretArgs: {common_name: b.example.com}}
- objectName: e
  secretPath: secret/data/app?version=1
  secretKey: user
`)
	require.NoError(t, err)
	assert.Equal(t, objs[0].Call.Key(), objs[1].Call.Key(), "same path read once")
	assert.NotEqual(t, objs[2].Call.Key(), objs[3].Call.Key(), "different secretArgs are different requests")
	assert.NotEqual(t, objs[0].Call.Key(), objs[4].Call.Key(), "a query is part of the request")
}

// TestObjectConfig: a parsed object's configuration, which its file's
// version covers, is computed once and is the same as the object's fields
// give, so versions do not change across an upgrade; each field a user
// writes is in it.
func TestObjectConfig(t *testing.T) {
	objs, err := ParseObjects(`
- {objectName: a, secretPath: secret/data/app, secretKey: user}
- {objectName: a2, secretPath: secret/data/app, secretKey: password}
- {objectName: c, secretPath: pki/issue/web, method: PUT, secretArgs: {common_name: a.example.com}, filePermission: "0600"}
- {objectName: t, template: '{{ with secret "secret/data/app" }}{{ .Data.data.user }}{{ end }}'}
`)
	require.NoError(t, err)
	for _, o := range objs {
		fromFields, err := json.Marshal(o)
		require.NoError(t, err)
		assert.Equal(t, string(fromFields), string(o.Config()), "object %s", o.Name)
		assert.Same(t, &o.Config()[0], &o.Config()[0], "object %s: computed once", o.Name)
	}
	assert.NotEqual(t, objs[0].Config(), objs[1].Config(), "another secretKey is another configuration")
	assert.Contains(t, string(objs[2].Config()), `"common_name":"a.example.com"`)
	assert.Contains(t, string(objs[2].Config()), `"filePermission":384`)
	assert.Contains(t, string(objs[3].Config()), `.Data.data.user`)
}
