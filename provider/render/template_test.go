package render

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

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
	out, err := Template(context.Background(), o, read, NewBudget(DefaultLimits))
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
	_, err := Template(context.Background(), o, read, NewBudget(DefaultLimits))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `object "out": template: out:1:`)
	assert.Contains(t, err.Error(), `"missing"`)

	o = templateObject(t, `{{ with secret "pki/issue/web" "novalue" }}{{ end }}`)
	_, err = Template(context.Background(), o, read, NewBudget(DefaultLimits))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `argument "novalue" is not key=value`)
}

func TestTemplateOutputIsBounded(t *testing.T) {
	read, _ := stubReads(map[string]string{"s": `{"data":{"big":"` + strings.Repeat("x", 1<<20) + `","list":[1,2,3,4,5,6,7,8]}}`})
	o := templateObject(t, `{{ $s := secret "s" }}{{ range $s.Data.list }}{{ $s.Data.big }}{{ end }}`)
	_, err := Template(context.Background(), o, read, NewBudget(DefaultLimits))
	require.ErrorIs(t, err, ErrTooLarge, "output stops at the driver's 4 MiB")
}

func TestHelpersAreTheLanguages(t *testing.T) {
	bound := slices.Sorted(maps.Keys(templateFuncs(nil, nil)))
	assert.Equal(t, slices.Sorted(slices.Values(spc.TemplateHelpers)), bound, "every helper spc lets a template name is bound here, and no other")
}

// No template error quotes what the template read: whichever way a
// template fails on a secret, the message names the object, the line and
// what to fix, never the value.
func TestTemplateErrorsHideValues(t *testing.T) {
	const planted = "s3cr3t-planted-value"
	read, _ := stubReads(map[string]string{
		"s": `{"data":{"pw":"` + planted + `","list":["` + planted + `"],"obj":{"k":"` + planted + `"},"n":"` + planted + `"}}`,
	})
	tests := map[string]string{
		"range over a string":        `{{ range (secret "s").Data.pw }}{{ end }}`,
		"range over it through with": `{{ with (secret "s").Data.pw }}{{ range . }}{{ end }}{{ end }}`,
		"range with two variables":   `{{ range $i, $e := (secret "s").Data.pw }}{{ end }}`,
		"field of a string":          `{{ (secret "s").Data.pw.x }}`,
		"index with a secret":        `{{ index (secret "s").Data.list (secret "s").Data.pw }}`,
		"index a string by a key":    `{{ index (secret "s").Data.pw "k" }}`,
		"index out of range":         `{{ index (secret "s").Data.list 7 }}`,
		"slice out of range":         `{{ slice (secret "s").Data.pw 9 2 }}`,
		"compare":                    `{{ if lt (secret "s").Data.pw 1 }}{{ end }}`,
		"not base64":                 `{{ base64Decode (secret "s").Data.pw }}`,
		"join a string":              `{{ join "," (secret "s").Data.pw }}`,
		"helper of a map":            `{{ toUpper (secret "s").Data.obj }}`,
		"missing key":                `{{ (secret "s").Data.missing }}`,
		"len of a number":            `{{ len 3 }}{{ (secret "s").Data.pw }}`,
	}
	for name, text := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Template(context.Background(), templateObject(t, text), read, NewBudget(DefaultLimits))
			require.Error(t, err)
			assert.Contains(t, err.Error(), `object "out": template: out:1:`)
			assert.NotContains(t, err.Error(), planted)
			assert.NotContains(t, err.Error(), "s3cr3t")
		})
	}
}

// The templates of one mount share its budget: many small templates cost
// no more than one large one.
func TestMountTemplatesShareTheBudget(t *testing.T) {
	read, _ := stubReads(nil)
	o := templateObject(t, `{{ range split "," "`+strings.Repeat("1,", 999)+`1" }}{{ end }}`)
	b := NewBudget(Limits{Steps: 2500, Bytes: 1 << 20, Time: time.Minute})
	_, err := Template(context.Background(), o, read, b)
	require.NoError(t, err, "one template fits")
	_, err = Template(context.Background(), o, read, b)
	require.NoError(t, err, "two fit")
	_, err = Template(context.Background(), o, read, b)
	require.ErrorIs(t, err, ErrBudget, "the third is over what the mount may spend")
}
