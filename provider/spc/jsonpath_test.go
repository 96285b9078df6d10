package spc

import (
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
		steps, err := ParseJSONPath(tc.in)
		if tc.err {
			require.Error(t, err, tc.in)
			assert.Contains(t, err.Error(), "write it like .data.data.db.host", "the error shows the form to use")
			continue
		}
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, PathString(steps), tc.in)
	}
}

func TestObjectKindsRejectFieldsThatDoNotApply(t *testing.T) {
	_, err := ParseObjects(`
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
