package provider

import (
	"path/filepath"
	"strings"
	"testing"
)

// FuzzPaths: an accepted objectName stays inside the volume and passes the
// driver's own rules; an accepted secretPath has no . or .. elements.
func FuzzPaths(f *testing.F) {
	for _, s := range []string{"a", "a/b", "../x", "/etc/passwd", "..data", "a//b", "./a", "a/./b", strings.Repeat("x", 300), "secret/data/app?version=1", "/v1/kv/x", "sys/../raw"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if validateObjectName(s) == nil {
			if filepath.IsAbs(s) || filepath.Clean(s) != s || s == ".." || strings.HasPrefix(s, "../") || strings.Contains(s, "/../") || strings.HasPrefix(s, "..") {
				t.Fatalf("accepted objectName %q", s)
			}
			if !filepath.IsLocal(s) {
				t.Fatalf("objectName %q leaves the volume", s)
			}
		}
		if p, _, err := splitSecretPath(s); err == nil {
			for _, elem := range strings.Split(p, "/") {
				if elem == "." || elem == ".." || elem == "" {
					t.Fatalf("accepted secretPath %q as %q", s, p)
				}
			}
		}
	})
}
