package provider

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vaultcsi/vault-csi-provider/vault"
)

// A stub in place of Vault: these tests are about rendering, which needs
// only response bodies; the real Vault is in test/integration.
func stubReads(bodies map[string]string) (func(context.Context, vault.Request) ([]byte, error), *[]vault.Request) {
	var calls []vault.Request
	return func(_ context.Context, r vault.Request) ([]byte, error) {
		calls = append(calls, r)
		b, ok := bodies[r.Path]
		if !ok {
			return nil, errors.New("not found")
		}
		return []byte(b), nil
	}, &calls
}

func templateObject(t *testing.T, text string) Object {
	t.Helper()
	objects, err := parseObjects("- objectName: out\n  template: |\n    " + text + "\n")
	require.NoError(t, err)
	return objects[0]
}

func TestRenderFunctions(t *testing.T) {
	read, calls := stubReads(map[string]string{
		"secret/data/app": `{"data":{"data":{"user":"u","pw":"p w","list":["a","b"],"n":1000000,"b64":"aGk="},"metadata":{}},"lease_id":""}`,
		"pki/issue/web":   `{"data":{"serial_number":"01:02"},"lease_id":"pki/x","lease_duration":60}`,
	})
	o := templateObject(t, `{{ with secret "secret/data/app" }}{{ .Data.data.user | toUpper }} {{ base64Encode .Data.data.pw }} {{ base64Decode .Data.data.b64 }} {{ join "+" .Data.data.list }} {{ index .Data.data.list 1 }} {{ .Data.data.n }} {{ toJSON .Data.data.list }}{{ end }} {{ with secret "pki/issue/web" "common_name=web.example.com" "ttl=1h" }}{{ .Data.serial_number }} {{ .LeaseID }} {{ .LeaseDuration }}{{ end }}`)
	out, err := render(context.Background(), o, read)
	require.NoError(t, err)
	assert.Equal(t, "U cCB3 hi a+b b 1000000 [\"a\",\"b\"] 01:02 pki/x 60\n", string(out.output))
	require.Len(t, *calls, 2)
	assert.Equal(t, "PUT", (*calls)[1].Method, "a secret with arguments is written")
	assert.Equal(t, map[string]any{"common_name": "web.example.com", "ttl": "1h"}, (*calls)[1].Body)
	assert.Contains(t, string(out.versioned), `"user":"u"`, "the version covers what the template read")
}

func TestRenderErrorsNameObjectAndLine(t *testing.T) {
	read, _ := stubReads(map[string]string{"secret/data/app": `{"data":{"data":{"user":"u"}}}`})
	o := templateObject(t, `{{ with secret "secret/data/app" }}{{ .Data.data.missing }}{{ end }}`)
	_, err := render(context.Background(), o, read)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `object "out": template: out:1:`)
	assert.Contains(t, err.Error(), `"missing"`)

	o = templateObject(t, `{{ with secret "pki/issue/web" "novalue" }}{{ end }}`)
	_, err = render(context.Background(), o, read)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `argument "novalue" is not key=value`)
}

func TestTemplatesCannotSpin(t *testing.T) {
	for _, text := range []string{
		`{{ range 1000000000000 }}{{ end }}`,
		`{{ $n := 1000000000000 }}{{ range $n }}{{ end }}`,
		`{{ range len "xxxxxxxxxx" }}{{ end }}`,
	} {
		_, err := parseObjects("- objectName: spin\n  template: '" + text + "'\n")
		require.Error(t, err, text)
		assert.Contains(t, err.Error(), `object "spin": template: spin:1:`)
		assert.Contains(t, err.Error(), "range only over lists and maps of a secret")
	}
	for _, text := range []string{
		`{{ with secret "s" }}{{ range $k, $v := .Data.data }}{{ $k }}{{ end }}{{ end }}`,
		`{{ $s := secret "s" }}{{ range $s.Data.list }}{{ . }}{{ end }}`,
		`{{ range split "," "a,b" }}{{ . }}{{ end }}`,
	} {
		_, err := parseObjects("- objectName: ok\n  template: '" + text + "'\n")
		assert.NoError(t, err, text)
	}

	read, _ := stubReads(map[string]string{"s": `{"data":{"big":"` + strings.Repeat("x", 1<<20) + `","list":[1,2,3,4,5,6,7,8]}}`})
	o := templateObject(t, `{{ $s := secret "s" }}{{ range $s.Data.list }}{{ $s.Data.big }}{{ end }}`)
	_, err := render(context.Background(), o, read)
	require.ErrorIs(t, err, ErrTooLarge, "output stops at the driver's 4 MiB")
}
