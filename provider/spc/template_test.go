package spc

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTemplatesCannotSpin(t *testing.T) {
	for _, text := range []string{
		`{{ range 1000000000000 }}{{ end }}`,
		`{{ $n := 1000000000000 }}{{ range $n }}{{ end }}`,
		`{{ range len "xxxxxxxxxx" }}{{ end }}`,
	} {
		_, err := ParseObjects("- objectName: spin\n  template: '" + text + "'\n")
		require.Error(t, err, text)
		assert.Contains(t, err.Error(), `object "spin": template: spin:1:`)
		assert.Contains(t, err.Error(), "range only over lists and maps of a secret")
	}
	for _, text := range []string{
		`{{ with secret "s" }}{{ range $k, $v := .Data.data }}{{ $k }}{{ end }}{{ end }}`,
		`{{ $s := secret "s" }}{{ range $s.Data.list }}{{ . }}{{ end }}`,
		`{{ range split "," "a,b" }}{{ . }}{{ end }}`,
	} {
		_, err := ParseObjects("- objectName: ok\n  template: '" + text + "'\n")
		assert.NoError(t, err, text)
	}

}

// The metering call ParseTemplate puts into every template is not part of
// the language: a template cannot call it, so cannot unmeter itself.
func TestStepFunctionIsNotCallable(t *testing.T) {
	_, err := ParseTemplate("x", "{{ "+StepFunction+" }}")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not defined")
	parsed, err := ParseTemplate("x", `{{ define "d" }}{{ range . }}a{{ end }}{{ end }}b{{ if . }}c{{ end }}`)
	require.NoError(t, err)
	for _, tt := range parsed.Templates() {
		assert.Contains(t, tt.Root.String(), StepFunction, "template %q is metered", tt.Name())
	}
}
