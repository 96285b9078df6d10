package render

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vaultcsi/vault-csi-provider/provider/spc"
)

// A stub in place of Vault: these tests are about rendering, which needs
// only response bodies; the real Vault is in test/integration.
func stubReads(bodies map[string]string) (ReadFunc, *[]spc.Call) {
	var calls []spc.Call
	return func(_ context.Context, r spc.Call) ([]byte, error) {
		calls = append(calls, r)
		b, ok := bodies[r.Path]
		if !ok {
			return nil, errors.New("not found")
		}
		return []byte(b), nil
	}, &calls
}

func templateObject(t *testing.T, text string) spc.Object {
	t.Helper()
	objects, err := spc.ParseObjects("- objectName: out\n  template: |\n    " + text + "\n")
	require.NoError(t, err)
	return objects[0]
}

func TestRenderFunctions(t *testing.T) {
	read, calls := stubReads(map[string]string{
		"secret/data/app": `{"data":{"data":{"user":"u","pw":"p w","list":["a","b"],"n":1000000,"b64":"aGk="},"metadata":{}},"lease_id":""}`,
		"pki/issue/web":   `{"data":{"serial_number":"01:02"},"lease_id":"pki/x","lease_duration":60}`,
	})
	o := templateObject(t, `{{ with secret "secret/data/app" }}{{ .Data.data.user | toUpper }} {{ base64Encode .Data.data.pw }} {{ base64Decode .Data.data.b64 }} {{ join "+" .Data.data.list }} {{ index .Data.data.list 1 }} {{ .Data.data.n }} {{ toJSON .Data.data.list }}{{ end }} {{ with secret "pki/issue/web" "common_name=web.example.com" "ttl=1h" }}{{ .Data.serial_number }} {{ .LeaseID }} {{ .LeaseDuration }}{{ end }}`)
	out, err := Template(context.Background(), o, read)
	require.NoError(t, err)
	assert.Equal(t, "U cCB3 hi a+b b 1000000 [\"a\",\"b\"] 01:02 pki/x 60\n", string(out.Output))
	require.Len(t, *calls, 2)
	assert.Equal(t, "PUT", (*calls)[1].Method, "a secret with arguments is written")
	assert.Equal(t, map[string]any{"common_name": "web.example.com", "ttl": "1h"}, (*calls)[1].Body)
	assert.Contains(t, string(out.Versioned), `"user":"u"`, "the version covers what the template read")
}

func TestRenderErrorsNameObjectAndLine(t *testing.T) {
	read, _ := stubReads(map[string]string{"secret/data/app": `{"data":{"data":{"user":"u"}}}`})
	o := templateObject(t, `{{ with secret "secret/data/app" }}{{ .Data.data.missing }}{{ end }}`)
	_, err := Template(context.Background(), o, read)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `object "out": template: out:1:`)
	assert.Contains(t, err.Error(), `"missing"`)

	o = templateObject(t, `{{ with secret "pki/issue/web" "novalue" }}{{ end }}`)
	_, err = Template(context.Background(), o, read)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `argument "novalue" is not key=value`)
}

func TestTemplateOutputIsBounded(t *testing.T) {
	read, _ := stubReads(map[string]string{"s": `{"data":{"big":"` + strings.Repeat("x", 1<<20) + `","list":[1,2,3,4,5,6,7,8]}}`})
	o := templateObject(t, `{{ $s := secret "s" }}{{ range $s.Data.list }}{{ $s.Data.big }}{{ end }}`)
	_, err := Template(context.Background(), o, read)
	require.ErrorIs(t, err, ErrTooLarge, "output stops at the driver's 4 MiB")
}

func TestHelpersAreTheLanguages(t *testing.T) {
	bound := slices.Sorted(maps.Keys(templateFuncs(nil)))
	assert.Equal(t, slices.Sorted(slices.Values(spc.TemplateHelpers)), bound, "every helper spc lets a template name is bound here, and no other")
}
