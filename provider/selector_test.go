package provider

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseJSONPath(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // steps joined back, or the error's start
		err  bool
	}{
		{in: ".data.data.db.host", want: ".data.data.db.host"},
		{in: "$.data.keys[2]", want: ".data.keys[2]"},
		{in: `.data["a.b"].c`, want: ".data.a.b.c"},
		{in: `$['x']`, want: ".x"},
		{in: "", err: true},
		{in: "$", err: true},
		{in: ".data..x", err: true},
		{in: ".data[", err: true},
		{in: ".data[-1]", err: true},
		{in: "data", err: true},
	} {
		steps, err := parseJSONPath(tc.in)
		if tc.err {
			require.Error(t, err, tc.in)
			assert.Contains(t, err.Error(), "write it like .data.data.db.host", "the error shows the form to use")
			continue
		}
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, joinSteps(steps), tc.in)
	}
}

func TestDirectoryKeysMustBeFileNames(t *testing.T) {
	o := Object{Name: "app", Layout: layoutDirectory, Encoding: encodingUTF8}
	files, err := directoryFiles(o, []byte(`{"user":"u","n":5,"nested":{"a":1}}`))
	require.NoError(t, err)
	assert.Equal(t, map[string][]byte{"user": []byte("u"), "n": []byte("5"), "nested": []byte(`{"a":1}`)}, files)

	for _, bad := range []string{`{"a/b":"x"}`, `{"..x":"x"}`, `{"":"x"}`} {
		_, err := directoryFiles(o, []byte(bad))
		require.Error(t, err, bad)
		assert.Contains(t, err.Error(), "cannot be a file name")
	}
	_, err = directoryFiles(o, []byte(`"a string"`))
	assert.ErrorIs(t, err, ErrSecretKeyNotFound)
}

func TestObjectKindsRejectFieldsThatDoNotApply(t *testing.T) {
	_, err := parseObjects(`
- {objectName: a, template: '{{ "x" }}', secretPath: secret/data/a, secretKey: k}
- {objectName: b, vaultToken: true, wrapTTL: 1ms}
- {objectName: c, secretPath: secret/data/c, secretKey: k, jsonPath: .data}
- {objectName: d, secretPath: secret/data/d, wrapTTL: 5m}
- {objectName: e, secretPath: secret/data/e, layout: tree}
- {objectName: f, template: '{{ with secret "x" }}'}
`)
	require.Error(t, err)
	for _, want := range []string{
		`object "a": secretPath does not apply to a template`,
		`object "a": secretKey does not apply to a template`,
		`object "b": wrapTTL "1ms" is not a duration between 1s and 24h0m0s`,
		`object "c": secretKey and jsonPath both set`,
		`object "d": wrapTTL applies only with vaultToken: true`,
		`object "e": layout "tree" is not supported`,
		`object "f": template: f:1: unexpected EOF`,
	} {
		assert.Contains(t, err.Error(), want)
	}
}

// FuzzSelectors: any jsonPath on any response, and any directory of keys,
// either works or fails with an error; file names a directory object writes
// stay single path elements.
func FuzzSelectors(f *testing.F) {
	f.Add(".data.data.a", `{"data":{"data":{"a":"x","b":[1,2]}}}`)
	f.Add(`$.data["k.1"][0]`, `{"data":{"k.1":[{"z":1}]}}`)
	f.Add(".a[99]", `{"a":[]}`)
	f.Add(".a", `{"a":{"../x":"1","b/c":"2","ok":"3"}}`)
	f.Fuzz(func(t *testing.T, path, body string) {
		steps, err := parseJSONPath(path)
		if err != nil {
			return
		}
		o := Object{Name: "obj", JSONPath: path, selector: steps, Layout: layoutDirectory, Encoding: encodingUTF8}
		raw, err := selectPath(o, []byte(body))
		if err != nil {
			return
		}
		files, err := directoryFiles(o, raw)
		if err != nil {
			return
		}
		for name := range files {
			if name == "" || strings.Contains(name, "/") || strings.HasPrefix(name, "..") || name == "." {
				t.Fatalf("directory file name %q escapes its directory", name)
			}
		}
	})
}
