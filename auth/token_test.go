package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseTokens(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		want    map[string]Token
		wantErr string
	}{
		{
			name: "kubelet format with the default audience",
			raw:  `{"vault":{"token":"t1","expirationTimestamp":"2030-01-02T03:04:05Z"},"":{"token":"t2","expirationTimestamp":"2030-01-02T03:04:05Z"}}`,
			want: map[string]Token{
				"vault": {Value: "t1", Expiry: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)},
				"":      {Value: "t2", Expiry: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)},
			},
		},
		{name: "empty map", raw: `{}`, want: map[string]Token{}},
		{name: "not JSON, never echoed", raw: `{"vault":"eyJsecret`, wantErr: "not a JSON map"},
		{name: "entry without token", raw: `{"vault":{"expirationTimestamp":"2030-01-02T03:04:05Z"}}`, wantErr: `audience "vault" has no token`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseTokens(tc.raw)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.NotContains(t, err.Error(), "eyJ")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestTokenNeverPrints(t *testing.T) {
	tok := Token{Value: "eyJplanted", Expiry: time.Now()}
	var b strings.Builder
	slog.New(slog.NewJSONHandler(&b, nil)).Info("x", "token", tok)
	assert.NotContains(t, fmt.Sprint(tok)+fmt.Sprintf("%v %+v %s", tok, tok, tok)+b.String(), "eyJplanted")
}

func TestTokenSourceWithoutKubernetes(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	src := TokenSource{Now: func() time.Time { return now }}
	pod := Pod{Name: "p", Namespace: "ns", UID: "u", ServiceAccount: "sa"}
	sent := map[string]Token{
		"vault":   {Value: "fresh", Expiry: now.Add(time.Minute)},
		"expired": {Value: "old", Expiry: now.Add(-time.Second)},
	}

	got, err := src.Token(context.Background(), pod, "vault", sent)
	require.NoError(t, err)
	assert.Equal(t, "fresh", got.Value)

	for _, aud := range []string{"expired", "other"} {
		_, err = src.Token(context.Background(), pod, aud, sent)
		require.ErrorIs(t, err, ErrNoToken)
		assert.Contains(t, err.Error(), "add {audience: "+aud+"} to the CSIDriver's tokenRequests")
	}
}

// FuzzParseTokens: the driver's token JSON never panics the parser, and an
// error never echoes the input.
func FuzzParseTokens(f *testing.F) {
	f.Add(`{"vault":{"token":"eyJx","expirationTimestamp":"2030-01-02T03:04:05Z"}}`)
	f.Add(`{"":{"token":"t"}}`)
	f.Add(`{"vault":"eyJx"`)
	f.Add(`null`)
	f.Fuzz(func(t *testing.T, raw string) {
		tokens, err := ParseTokens(raw)
		if err != nil {
			if len(raw) > 8 && strings.Contains(err.Error(), raw) {
				t.Fatalf("error echoes the input: %v", err)
			}
			return
		}
		for aud, tok := range tokens {
			if tok.Value == "" {
				t.Fatalf("accepted an empty token for %q", aud)
			}
		}
	})
}

// TestTokenNeverMarshals: a Token reads the driver's JSON form, but writes
// its value redacted, wherever it ends up as JSON.
func TestTokenNeverMarshals(t *testing.T) {
	tok := Token{Value: "eyJplanted", Expiry: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	b, err := json.Marshal(map[string]any{"tokens": map[string]Token{"vault": tok}, "one": tok, "ptr": &tok})
	require.NoError(t, err)
	assert.NotContains(t, string(b), "eyJplanted")
	assert.Contains(t, string(b), `"expirationTimestamp":"2030-01-02T03:04:05Z"`)
}
