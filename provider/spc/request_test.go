package spc

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// decodeStringsCases are inputs at the edges of a JSON object of strings.
var decodeStringsCases = []string{
	`{"a":"1","b":"two"}`,
	` { "a" : "1" } `,
	`{}`,
	`null`,
	` null `,
	`{"a":null}`,
	`{"a":"1","a":"2"}`,
	`{"tokens":"{\"vault\":{\"token\":\"eyJ.x.y\",\"expirationTimestamp\":\"2030-01-01T00:00:00Z\"}}"}`,
	`{"esc":"\u00e9\n\t\\\/\"","\u0041":"name escaped"}`,
	"{\"bad utf-8\":\"\xff\xfe\"}",
	`{"a":1}`,
	`{"a":true}`,
	`{"a":["x"]}`,
	`{"a":{"b":"c"}}`,
	`"a string"`,
	`[]`,
	`5`,
	``,
	`   `,
	`{`,
	`{"a"`,
	`{"a":`,
	`{"a":"1"`,
	`{"a":"1",}`,
	`{"a":"1"}x`,
	`{"a":"1"}{}`,
	`{"a":"1"} null`,
	`nul`,
	`{'a':'1'}`,
	`{"a":"1" "b":"2"}`,
}

// decodeStrings accepts what encoding/json's Unmarshal into a
// map[string]string accepts, gives the same map, and describes what it
// refuses without quoting it.
func TestDecodeStringsAgreesWithEncodingJSON(t *testing.T) {
	for _, raw := range decodeStringsCases {
		agreeWithEncodingJSON(t, raw)
	}
	_, err := decodeStrings(`{"token":"secret-token-value", "x": 5}`)
	require.Error(t, err)
	assert.Equal(t, "a number where a string was expected", err.Error())
	_, err = decodeStrings(`{"token":"secret-token-value"`)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "secret-token-value")
}

func agreeWithEncodingJSON(t *testing.T, raw string) {
	var want map[string]string
	wantErr := json.Unmarshal([]byte(raw), &want)
	got, err := decodeStrings(raw)
	if wantErr != nil {
		if err == nil {
			t.Fatalf("%q: accepted (%v); encoding/json refuses it: %v", raw, got, wantErr)
		}
		if strings.Contains(raw, "secret") && strings.Contains(err.Error(), "secret") {
			t.Fatalf("%q: the error quotes the input: %v", raw, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("%q: refused (%v); encoding/json reads it as %v", raw, err, want)
	}
	if !assert.Equal(t, want, got, raw) {
		t.FailNow()
	}
}
