package render

import (
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vaultcsi/vault-csi-provider/provider/spc"
)

const (
	kv2Body = `{"request_id":"r-1","lease_id":"","renewable":false,"lease_duration":0,"data":{"data":{"password":"s3cr3t","port":5432,"nested":{"b":1,"a":"x"},"blob":"aGVsbG8=","hexval":"68656c6c6f"},"metadata":{"version":3}},"wrap_info":null,"warnings":null,"auth":null}`
	kv1Body = `{"request_id":"r-2","data":{"password":"v1pass","data":"field-named-data"}}`
)

func obj(t *testing.T, yaml string) spc.Object {
	t.Helper()
	objs, err := spc.ParseObjects(yaml)
	require.NoError(t, err)
	return objs[0]
}

func TestExtract(t *testing.T) {
	tests := []struct {
		name    string
		object  string
		body    string
		want    string
		wantErr error
		errText string
	}{
		{name: "KV v2 string value is raw", object: "- {objectName: p, secretPath: secret/data/app, secretKey: password}", body: kv2Body, want: "s3cr3t"},
		{name: "KV v2 number is JSON", object: "- {objectName: p, secretPath: secret/data/app, secretKey: port}", body: kv2Body, want: "5432"},
		{name: "KV v2 object is JSON", object: "- {objectName: p, secretPath: secret/data/app, secretKey: nested}", body: kv2Body, want: `{"b":1,"a":"x"}`},
		{name: "KV v2 metadata is reachable in data", object: "- {objectName: p, secretPath: secret/data/app, secretKey: metadata}", body: kv2Body, want: `{"version":3}`},
		{name: "KV v1 value", object: "- {objectName: p, secretPath: kv/app, secretKey: password}", body: kv1Body, want: "v1pass"},
		{name: "KV v1 key named data", object: "- {objectName: p, secretPath: kv/app, secretKey: data}", body: kv1Body, want: "field-named-data"},
		{name: "base64 is decoded", object: "- {objectName: p, secretPath: secret/data/app, secretKey: blob, encoding: base64}", body: kv2Body, want: "hello"},
		{name: "hex is decoded", object: "- {objectName: p, secretPath: secret/data/app, secretKey: hexval, encoding: hex}", body: kv2Body, want: "hello"},
		{name: "no secretKey is the whole response", object: "- {objectName: p, secretPath: secret/data/app}", body: kv2Body, want: kv2Body},
		{name: "missing key lists the keys, never the values", object: "- {objectName: p, secretPath: secret/data/app, secretKey: user}", body: kv2Body, wantErr: ErrSecretKeyNotFound, errText: "keys there: blob, hexval, nested, password, port"},
		{name: "invalid base64", object: "- {objectName: p, secretPath: secret/data/app, secretKey: password, encoding: base64}", body: kv2Body, wantErr: ErrDecode, errText: "not valid base64"},
		{name: "invalid hex", object: "- {objectName: p, secretPath: secret/data/app, secretKey: password, encoding: hex}", body: kv2Body, wantErr: ErrDecode, errText: "not valid hex"},
		{name: "no data to take a key from", object: "- {objectName: p, secretPath: sys/x, secretKey: k}", body: `{"data":null}`, wantErr: ErrSecretKeyNotFound, errText: "remove secretKey"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ex, err := Extract(obj(t, tc.object), []byte(tc.body))
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				assert.Contains(t, err.Error(), tc.errText)
				assert.NotContains(t, err.Error(), "s3cr3t")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, string(ex.Content))
		})
	}
}

func TestObjectVersion(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	whole := obj(t, "- {objectName: p, secretPath: secret/data/app}")
	keyed := obj(t, "- {objectName: p, secretPath: secret/data/app, secretKey: password}")
	version := func(o spc.Object, mode fs.FileMode, body string, key []byte) string {
		ex, err := Extract(o, []byte(body))
		require.NoError(t, err)
		return newVersions(key).of(o, mode, ex.Versioned)
	}
	base := version(keyed, 0o644, kv2Body, key)

	tests := []struct {
		name string
		got  string
		same bool
	}{
		{name: "same content, same version", got: version(keyed, 0o644, kv2Body, key), same: true},
		{name: "other keys changing keep a keyed object's version", got: version(keyed, 0o644, `{"data":{"data":{"password":"s3cr3t","other":"changed"}}}`, key), same: true},
		{name: "a changed value changes the version", got: version(keyed, 0o644, `{"data":{"data":{"password":"rotated"}}}`, key)},
		{name: "a changed mode changes the version", got: version(keyed, 0o600, kv2Body, key)},
		{name: "another key gives other versions", got: version(keyed, 0o644, kv2Body, []byte("another-key-another-key-another-k"))},
	}
	t.Run("a new request_id keeps the version of a whole-response object", func(t *testing.T) {
		first := version(whole, 0o644, `{"request_id":"first","data":{"data":{"password":"s3cr3t"}}}`, key)
		second := version(whole, 0o644, `{"request_id":"second","data":{"data":{"password":"s3cr3t"}}}`, key)
		assert.Equal(t, first, second)
		assert.NotEqual(t, first, version(whole, 0o644, `{"request_id":"third","data":{"data":{"password":"rotated"}}}`, key))
	})
	t.Run("versions stay those of earlier releases", func(t *testing.T) {
		// Computed by the release before versions were made with one HMAC
		// per mount: the driver records versions and compares them on
		// rotation, so they must not change when only the provider does.
		assert.Equal(t, "493854e4ba618d6b33a6d5ee8391cb5657d37dffead727fc8a799b89a51f8833", newVersions(key).of(keyed, 0o640, []byte("s3cr3t")))
	})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.same {
				assert.Equal(t, base, tc.got)
			} else {
				assert.NotEqual(t, base, tc.got)
			}
			assert.NotContains(t, tc.got, "s3cr3t")
			assert.Len(t, tc.got, 64)
		})
	}
}

// BenchmarkExtract: one secretKey taken from a KV v2 response, as every
// warm mount does for each object.
func BenchmarkExtract(b *testing.B) {
	o, err := spc.ParseObjects("- {objectName: p, secretPath: secret/data/app, secretKey: password}")
	require.NoError(b, err)
	body := []byte(kv2Body)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Extract(o[0], body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFiles: the response of a warm ten-object mount, each object a
// secretKey of a KV v2 response, with its version.
func BenchmarkFiles(b *testing.B) {
	var list strings.Builder
	for i := range 10 {
		fmt.Fprintf(&list, "- {objectName: o%d, secretPath: secret/data/app%d, secretKey: password}\n", i, i)
	}
	objects, err := spc.ParseObjects(list.String())
	require.NoError(b, err)
	key := []byte("0123456789abcdef0123456789abcdef")
	fetched := func(spc.Object) Fetched { return Fetched{Body: []byte(kv2Body)} }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Files(key, objects, 0o644, fetched); err != nil {
			b.Fatal(err)
		}
	}
}
