package render

import (
	"strings"
	"testing"

	"github.com/vaultcsi/vault-csi-provider/provider/spc"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDirectoryKeysMustBeFileNames(t *testing.T) {
	o := spc.Object{Name: "app", Layout: spc.LayoutDirectory, Encoding: spc.EncodingUTF8}
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

// FuzzSelectors: any jsonPath on any response, and any directory of keys,
// either works or fails with an error; file names a directory object writes
// stay single path elements.
func FuzzSelectors(f *testing.F) {
	f.Add(".data.data.a", `{"data":{"data":{"a":"x","b":[1,2]}}}`)
	f.Add(`$.data["k.1"][0]`, `{"data":{"k.1":[{"z":1}]}}`)
	f.Add(".a[99]", `{"a":[]}`)
	f.Add(".a", `{"a":{"../x":"1","b/c":"2","ok":"3"}}`)
	f.Fuzz(func(t *testing.T, path, body string) {
		steps, err := spc.ParseJSONPath(path)
		if err != nil {
			return
		}
		o := spc.Object{Name: "obj", JSONPath: path, Selector: steps, Layout: spc.LayoutDirectory, Encoding: spc.EncodingUTF8}
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
