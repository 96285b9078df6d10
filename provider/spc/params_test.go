package spc

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// attrs builds MountRequest attributes as the driver sends them, with the
// pod fields filled in.
func attrs(t testing.TB, params map[string]string) string {
	t.Helper()
	m := map[string]string{
		attrClassName:      "app-secrets",
		attrPodName:        "app-0",
		attrPodNamespace:   "demo",
		attrPodUID:         "8d3c0f5e-0000-4000-8000-000000000001",
		attrServiceAccount: "app",
		paramRoleName:      "app",
		paramObjects:       "- objectName: password\n  secretPath: secret/data/app\n  secretKey: password\n",
	}
	for k, v := range params {
		if v == "<unset>" {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return string(b)
}

func TestParseRequest(t *testing.T) {
	tokens := `{"vault":{"token":"tok-vault","expirationTimestamp":"2030-01-01T00:00:00Z"},"":{"token":"tok-default","expirationTimestamp":"2030-01-01T00:00:00Z"}}`
	tests := []struct {
		name       string
		params     map[string]string
		secrets    string
		permission string
		check      func(t *testing.T, p Params)
		wantErr    []string
	}{
		{
			name: "hashicorp-style class with defaults",
			check: func(t *testing.T, p Params) {
				assert.Equal(t, "app", p.Role)
				assert.Equal(t, "vault", p.Audience)
				assert.Equal(t, "app-secrets", p.Class)
				assert.Equal(t, "demo/app-0", p.Pod.String())
				assert.Equal(t, fs.FileMode(0o644), p.DefaultMode)
				require.Len(t, p.Objects, 1)
				assert.Equal(t, "GET", p.Objects[0].Method)
				assert.Equal(t, "utf-8", p.Objects[0].Encoding)
			},
		},
		{
			name:       "permission from the driver is decimal",
			permission: "384",
			check:      func(t *testing.T, p Params) { assert.Equal(t, fs.FileMode(0o600), p.DefaultMode) },
		},
		{
			name:    "secrets may be the literal null",
			secrets: "null",
			check:   func(t *testing.T, p Params) { assert.Empty(t, p.Tokens) },
		},
		{
			name:   "tokens from the volume attributes",
			params: map[string]string{attrServiceAccountToken: tokens},
			check: func(t *testing.T, p Params) {
				assert.Equal(t, "tok-vault", p.Tokens["vault"].Value)
				assert.Equal(t, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), p.Tokens["vault"].Expiry)
			},
		},
		{
			name:    "tokens from secrets (driver v1.6 on Kubernetes 1.35+)",
			secrets: mustJSON(t, map[string]string{attrServiceAccountToken: tokens}),
			check:   func(t *testing.T, p Params) { assert.Equal(t, "tok-default", p.Tokens[""].Value) },
		},
		{
			name:   "auth mount written as auth/<path>",
			params: map[string]string{paramAuthMount: "/auth/jwt-cluster/"},
			check:  func(t *testing.T, p Params) { assert.Equal(t, "jwt-cluster", p.Vault.AuthMount) },
		},
		{
			name:   "the legacy kubernetes mount parameter",
			params: map[string]string{paramKubernetesMount: "k8s-east"},
			check:  func(t *testing.T, p Params) { assert.Equal(t, "k8s-east", p.Vault.AuthMount) },
		},
		{
			name:   "TLS and namespace parameters",
			params: map[string]string{paramVaultAddress: "https://vault.example:8200", paramVaultNamespace: "team", paramCACertPath: "/ca.pem", paramCADirectory: "/cas", paramTLSServerName: "vault", paramSkipTLSVerify: "false", paramTLSClientCertPath: "/c.pem", paramTLSClientKeyPath: "/k.pem", paramAudience: "custom"},
			check: func(t *testing.T, p Params) {
				assert.Equal(t, "https://vault.example:8200", p.Vault.Address)
				assert.Equal(t, "team", p.Vault.Namespace)
				assert.Equal(t, "/ca.pem", p.Vault.CACert)
				assert.Equal(t, "/cas", p.Vault.CADirectory)
				assert.Equal(t, "vault", p.Vault.TLSServerName)
				assert.Equal(t, "/c.pem", p.Vault.ClientCert)
				assert.Equal(t, "/k.pem", p.Vault.ClientKey)
				require.NotNil(t, p.Vault.SkipVerify)
				assert.False(t, *p.Vault.SkipVerify)
				assert.Equal(t, "custom", p.Audience)
			},
		},
		{
			name: "unknown parameters and object fields are listed, not fatal",
			params: map[string]string{"vaultAdress": "https://typo:8200", "objects": "- {objectName: a, secretPath: kv/a, secretkey: k}",
				"csi.storage.k8s.io/ephemeral": "true"},
			check: func(t *testing.T, p Params) {
				assert.Equal(t, []string{"objects[0].secretkey", "vaultAdress"}, p.Unknown)
			},
		},
		{
			name:    "missing role and objects are both reported",
			params:  map[string]string{paramRoleName: "<unset>", paramObjects: "<unset>"},
			wantErr: []string{"roleName: missing", "objects: missing"},
		},
		{
			name:    "both mount parameters",
			params:  map[string]string{paramAuthMount: "jwt", paramKubernetesMount: "kubernetes"},
			wantErr: []string{"vaultAuthMountPath and vaultKubernetesMountPath are both set"},
		},
		{
			name:       "bad skip-verify, address and permission",
			params:     map[string]string{paramSkipTLSVerify: "nope", paramVaultAddress: "vault:8200"},
			permission: "rw-r--r--",
			wantErr:    []string{"vaultSkipTLSVerify", "vaultAddress", "permission"},
		},
		{
			name:    "malformed token JSON does not echo it",
			params:  map[string]string{attrServiceAccountToken: `{"vault": "eyJhbGciOiJSUzI1NiJ9.secret"`},
			wantErr: []string{attrServiceAccountToken},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse(attrs(t, tc.params), tc.secrets, tc.permission)
			if len(tc.wantErr) > 0 {
				require.ErrorIs(t, err, ErrInvalidParameters)
				for _, w := range tc.wantErr {
					assert.Contains(t, err.Error(), w)
				}
				assert.NotContains(t, err.Error(), "eyJhbGciOiJSUzI1NiJ9")
				return
			}
			require.NoError(t, err)
			tc.check(t, p)
		})
	}
}

func TestParseObjects(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		check   func(t *testing.T, objs []Object)
		wantErr []string
	}{
		{
			name: "all fields, YAML octal mode, method case",
			yaml: `
- objectName: cert
  secretPath: /v1/pki/issue/web?ttl=1h
  secretArgs:
    common_name: a.example.com
  method: put
  encoding: BASE64
  filePermission: 0600
`,
			check: func(t *testing.T, objs []Object) {
				o := objs[0]
				assert.Equal(t, "PUT", o.Method)
				assert.Equal(t, "base64", o.Encoding)
				assert.Equal(t, "pki/issue/web", o.Call.Path)
				assert.Equal(t, "1h", o.Call.Query.Get("ttl"))
				require.NotNil(t, o.Mode)
				assert.Equal(t, FileMode(0o600), *o.Mode)
				assert.Equal(t, "a.example.com", o.Args["common_name"])
			},
		},
		{
			name: "filePermission as a quoted octal string",
			yaml: "- {objectName: a, secretPath: kv/a, filePermission: \"0640\"}",
			check: func(t *testing.T, objs []Object) {
				assert.Equal(t, FileMode(0o640), *objs[0].Mode)
			},
		},
		{
			name: "sub-directories are allowed",
			yaml: "- {objectName: db/creds/password, secretPath: kv/a}\n- {objectName: db/user, secretPath: kv/a}",
			check: func(t *testing.T, objs []Object) {
				assert.Equal(t, "db/creds/password", objs[0].Name)
			},
		},
		{name: "absolute name", yaml: "- {objectName: /etc/passwd, secretPath: kv/a}", wantErr: []string{"is absolute"}},
		{name: "traversal", yaml: "- {objectName: a/../../b, secretPath: kv/a}", wantErr: []string{"not a clean path"}},
		{name: "dot-dot element", yaml: "- {objectName: ../b, secretPath: kv/a}", wantErr: []string{"objectName"}},
		{name: "driver-reserved prefix", yaml: "- {objectName: ..data, secretPath: kv/a}", wantErr: []string{"reserves"}},
		{name: "unclean name", yaml: "- {objectName: a//b, secretPath: kv/a}", wantErr: []string{`write it as "a/b"`}},
		{name: "element over 255 bytes", yaml: "- {objectName: " + strings.Repeat("x", 256) + ", secretPath: kv/a}", wantErr: []string{"longer than 255"}},
		{name: "duplicate names", yaml: "- {objectName: a, secretPath: kv/a}\n- {objectName: a, secretPath: kv/b}", wantErr: []string{`"a" is also used by objects[0]`}},
		{name: "file and directory clash", yaml: "- {objectName: a, secretPath: kv/a}\n- {objectName: a/b, secretPath: kv/b}", wantErr: []string{"would be a file and also the directory"}},
		{name: "missing secretPath", yaml: "- {objectName: a}", wantErr: []string{"secretPath: missing"}},
		{name: "bad method", yaml: "- {objectName: a, secretPath: kv/a, method: DELETE}", wantErr: []string{`method "DELETE"`}},
		{name: "bad encoding", yaml: "- {objectName: a, secretPath: kv/a, encoding: rot13}", wantErr: []string{`encoding "rot13"`}},
		{name: "decimal-looking mode", yaml: "- {objectName: a, secretPath: kv/a, filePermission: 600}", wantErr: []string{"leading zero"}},
		{name: "not a list", yaml: "objectName: a", wantErr: []string{"not a YAML list"}},
		{name: "empty list", yaml: "[]", wantErr: []string{"empty"}},
		{name: "vault path with dot-dot", yaml: "- {objectName: a, secretPath: secret/../sys/raw}", wantErr: []string{"empty, . or .. elements"}},
		{name: "vault path with an empty element", yaml: "- {objectName: a, secretPath: secret//data/app}", wantErr: []string{"empty, . or .. elements"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := ParseObjects(tc.yaml)
			if len(tc.wantErr) > 0 {
				require.Error(t, err)
				for _, w := range tc.wantErr {
					assert.Contains(t, err.Error(), w)
				}
				return
			}
			require.NoError(t, err)
			tc.check(t, objs)
		})
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// FuzzParseRequest feeds arbitrary parameters and objects YAML: the parser
// must never panic, and what it accepts must be safe to hand to the driver.
func FuzzParseRequest(f *testing.F) {
	f.Add("app", "- {objectName: a, secretPath: kv/a}", "420", "null")
	f.Add("app", "- objectName: a/b\n  secretPath: /v1/pki/issue/x?ttl=1h\n  method: PUT\n  secretArgs: {common_name: x}\n  filePermission: 0600", "420", "")
	f.Add("", "- {objectName: ../x, secretPath: \"\"}", "abc", `{"csi.storage.k8s.io/serviceAccount.tokens":"{}"}`)
	f.Add("r", "[{objectName: x, secretPath: y, encoding: hex, filePermission: \"0777\"}]", "0", "{")
	f.Fuzz(func(t *testing.T, role, objects, permission, secrets string) {
		p, err := Parse(attrs(t, map[string]string{paramRoleName: role, paramObjects: objects}), secrets, permission)
		if err != nil {
			return
		}
		if p.Role == "" || len(p.Objects) == 0 {
			t.Fatalf("accepted a request without role or objects")
		}
		for _, o := range p.Objects {
			if ValidateObjectName(o.Name) != nil || o.Call.Path == "" {
				t.Fatalf("accepted object %q with path %q", o.Name, o.Call.Path)
			}
			if o.Mode != nil && *o.Mode > 0o777 {
				t.Fatalf("accepted mode %o", *o.Mode)
			}
		}
	})
}

// Parsing objects once into values gives what sigs.k8s.io/yaml's typed
// decoding gave: unquoted numbers and booleans are the text of string
// fields, field names match regardless of case, modes stay numbers.
func TestObjectsDecodeAsTypedYAML(t *testing.T) {
	for _, raw := range []string{
		"- {objectName: 2024, secretPath: kv/a, secretKey: 12345678901}",
		"- {objectName: a, secretPath: kv/a, secretKey: true, filePermission: 0640}",
		"- {ObjectName: a, SecretPath: kv/a, SECRETKEY: k}",
		"- {objectName: tok, vaultToken: true, wrapTTL: 60s}",
		"- {objectName: a, secretPath: pki/issue/x, method: PUT, secretArgs: {common_name: x, ttl: 3600, alt: [a, b]}}",
		"- objectName: t\n  template: |\n    {{ with secret \"kv/a\" }}{{ .Data.x }}{{ end }}\n",
	} {
		var typed []Object
		require.NoError(t, yaml.Unmarshal([]byte(raw), &typed), raw)
		got, err := ParseObjects(raw)
		require.NoError(t, err, raw)
		for i := range typed {
			assert.Equal(t, typed[i].Name, got[i].Name, raw)
			assert.Equal(t, typed[i].Key, got[i].Key, raw)
			assert.Equal(t, typed[i].Mode, got[i].Mode, raw)
			assert.Equal(t, typed[i].WrapTTL, got[i].WrapTTL, raw)
			assert.Equal(t, typed[i].Template, got[i].Template, raw)
			assert.Equal(t, fmt.Sprint(typed[i].Args), fmt.Sprint(got[i].Args), raw)
		}
	}
}

// A list over the bound is refused before any object is validated or read;
// a long list of bad objects reports the first problems and counts the
// rest; checking a list at the bound takes linear time.
func TestObjectsAreBounded(t *testing.T) {
	list := func(n int, entry string) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, entry, i, i)
		}
		return b.String()
	}
	attrs := func(objects string) string {
		b, _ := json.Marshal(map[string]string{"roleName": "r", "objects": objects})
		return string(b)
	}
	_, err := Parse(attrs(list(20_000, "- {objectName: o%d, secretPath: kv/%d}\n")), "null", "420")
	require.ErrorIs(t, err, ErrInvalidParameters)
	assert.Contains(t, err.Error(), "objects: 20000 objects, more than the 256 one mount may read (the provider's -max-objects)")

	_, err = Parser{MaxObjects: 10}.Parse(attrs(list(11, "- {objectName: o%d, secretPath: kv/%d}\n")), "null", "420")
	assert.ErrorContains(t, err, "more than the 10")

	_, err = Parse(attrs(list(256, "- {objectName: ../o%d, secretPath: kv/%d}\n")), "null", "420")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "objects[19]:")
	assert.NotContains(t, err.Error(), "objects[20]:")
	assert.Contains(t, err.Error(), "and 236 more problems in objects")

	_, err = Parse(attrs(strings.Repeat("#", MaxObjectsBytes)+"\n- {objectName: a, secretPath: kv/a}"), "null", "420")
	assert.ErrorContains(t, err, "objects: over 1048576 bytes", "refused before the YAML is parsed")

	p, err := Parser{MaxObjects: 20_000}.Parse(attrs(list(20_000, "- {objectName: d%d/f, secretPath: kv/%d}\n")), "null", "420")
	require.NoError(t, err)
	assert.Len(t, p.Objects, 20_000)
}

// TestParserKeepsParsedLists: the pods of a class send the same objects on
// every mount; NewParser parses that text once and hands every mount the
// same objects, while an edited class takes effect at once and a bad list
// is refused every time.
func TestParserKeepsParsedLists(t *testing.T) {
	ps := NewParser(0)
	list := "- {objectName: a, secretPath: secret/data/app, secretKey: a}\n- {objectName: t, template: '{{ with secret \"secret/data/app\" }}{{ .Data.data.a }}{{ end }}'}\n"
	first, err := ps.Parse(attrs(t, map[string]string{paramObjects: list}), "", "")
	require.NoError(t, err)
	again, err := ps.Parse(attrs(t, map[string]string{paramObjects: list, attrPodName: "app-1"}), "", "")
	require.NoError(t, err)
	assert.Equal(t, "app-1", again.Pod.Name, "the rest of the request is this request's")
	assert.Same(t, first.Objects[1].Compiled, again.Objects[1].Compiled, "the same list is not parsed again")
	assert.Equal(t, first.Objects[0].Call.Key(), again.Objects[0].Call.Key())

	edited, err := ps.Parse(attrs(t, map[string]string{paramObjects: strings.Replace(list, "secretKey: a", "secretKey: b", 1)}), "", "")
	require.NoError(t, err)
	assert.Equal(t, "b", edited.Objects[0].Key, "an edited class is parsed anew")

	bad := "- {objectName: a}\n"
	for range 2 {
		_, err := ps.Parse(attrs(t, map[string]string{paramObjects: bad}), "", "")
		require.ErrorIs(t, err, ErrInvalidParameters)
		assert.Contains(t, err.Error(), "secretPath")
	}

	for i := range parsedListsKept + 10 {
		_, err := ps.Parse(attrs(t, map[string]string{paramObjects: fmt.Sprintf("- {objectName: a, secretPath: secret/data/app%d}\n", i)}), "", "")
		require.NoError(t, err)
	}
	assert.Equal(t, parsedListsKept, ps.parsed.Len(), "at most parsedListsKept lists are kept")
}

// BenchmarkParse is the per-mount cost of reading a request as the driver
// sends it: the class's parameters, the pod's fields and a service-account
// token of a kubelet's usual size.
func BenchmarkParse(b *testing.B) {
	jwt := strings.Repeat("eyJhbGciOiJSUzI1NiIsImtpZCI6", 36) // about the size of a projected token
	tokens, err := json.Marshal(map[string]any{"vault": map[string]string{"token": jwt, "expirationTimestamp": "2030-01-01T00:00:00Z"}})
	require.NoError(b, err)
	raw := attrs(b, map[string]string{
		attrServiceAccountToken:        string(tokens),
		"csi.storage.k8s.io/ephemeral": "true",
		paramVaultAddress:              "https://vault.vault.svc:8200",
	})
	p := NewParser(0) // as the provider runs: the objects list parsed once
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Parse(raw, "null", "420"); err != nil {
			b.Fatal(err)
		}
	}
}
