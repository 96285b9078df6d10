package spc

import (
	"fmt"
	"strings"
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

// A template's stack is bounded by its text: {{ template }} calls may not
// recurse, directly or through others, nor nest more than MaxTemplateDepth.
func TestTemplatesCannotRecurse(t *testing.T) {
	chain := func(n int) string {
		var b strings.Builder
		for i := range n - 1 {
			fmt.Fprintf(&b, `{{ define "t%d" }}{{ template "t%d" }}{{ end }}`, i, i+1)
		}
		fmt.Fprintf(&b, `{{ define "t%d" }}x{{ end }}{{ template "t0" }}`, n-1)
		return b.String()
	}
	for text, want := range map[string]string{
		`{{ define "r" }}{{ if . }}{{ template "r" (slice . 1) }}{{ end }}{{ end }}{{ template "r" "aaa" }}`:                                                                  `"r" calls itself`,
		`{{ define "a" }}{{ with . }}{{ template "b" . }}{{ end }}{{ end }}{{ define "b" }}{{ range . }}{{ else }}{{ template "a" . }}{{ end }}{{ end }}{{ template "a" . }}`: "calls itself",
		`{{ template "y" }}{{ define "y" }}{{ template "y" }}{{ end }}`:                                                                                                       `"y" calls itself`,
		chain(MaxTemplateDepth): "nest over 16 deep",
	} {
		_, err := ParseTemplate("x", text)
		require.Error(t, err, text)
		assert.Contains(t, err.Error(), want)
	}
	_, err := ParseTemplate("x", chain(MaxTemplateDepth-1))
	assert.NoError(t, err, "15 nested calls and the template itself")
}
