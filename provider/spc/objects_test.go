package spc

import (
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
