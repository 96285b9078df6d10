package integration

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestPKITwoCommonNames: two objects with the same path and method but other
// secretArgs are two requests, so each file holds its own certificate.
func TestPKITwoCommonNames(t *testing.T) {
	p := startProvider(t)
	objects := `
- objectName: a/tls.crt
  secretPath: pki/issue/web
  method: PUT
  secretArgs:
    common_name: a.example.com
    ttl: 1h
  secretKey: certificate
- objectName: b/tls.crt
  secretPath: pki/issue/web
  method: POST
  secretArgs:
    common_name: b.example.com
    ttl: 1h
  secretKey: certificate
- objectName: ca.crt
  secretPath: pki/issue/web
  method: PUT
  secretArgs:
    common_name: a.example.com
    ttl: 1h
  secretKey: issuing_ca
`
	resp, err := p.mount(t, mountCall{pod: createPod(t, appServiceAccount), params: map[string]string{"roleName": kubeRole, "objects": objects}, tokenAudiences: []string{"vault"}})
	require.NoError(t, err)
	dir := writeFiles(t, resp)

	roots := x509.NewCertPool()
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	require.NoError(t, err)
	require.True(t, roots.AppendCertsFromPEM(caPEM))

	serials := map[string]string{}
	for _, cn := range []string{"a.example.com", "b.example.com"} {
		raw, err := os.ReadFile(filepath.Join(dir, cn[:1], "tls.crt"))
		require.NoError(t, err)
		block, _ := pem.Decode(raw)
		require.NotNil(t, block, "a PEM certificate for %s", cn)
		cert, err := x509.ParseCertificate(block.Bytes)
		require.NoError(t, err)
		assert.Equal(t, cn, cert.Subject.CommonName)
		_, err = cert.Verify(x509.VerifyOptions{DNSName: cn, Roots: roots})
		assert.NoError(t, err, "certificate for %s verifies against the issuing CA", cn)
		serials[cn] = cert.SerialNumber.String()
	}
	assert.NotEqual(t, serials["a.example.com"], serials["b.example.com"])
}

// TestEmptyResponseIsAnError: a write that answers 204 (a KV v1 write)
// gives a clear error, not a crash or an empty file.
func TestEmptyResponseIsAnError(t *testing.T) {
	p := startProvider(t)
	objects := `
- objectName: x
  secretPath: kv/written-by-mount
  method: PUT
  secretArgs: {value: "1"}
`
	resp, err := p.mount(t, mountCall{pod: createPod(t, appServiceAccount), params: map[string]string{"roleName": kubeRole, "objects": objects}, tokenAudiences: []string{"vault"}})
	assert.Nil(t, resp)
	st := status.Convert(err)
	assert.Equal(t, codes.NotFound, st.Code(), st.Message())
	assert.Contains(t, st.Message(), "vault returned no data for PUT kv/written-by-mount")
}

// TestOversizeResponse: files over the driver's 4 MiB limit fail the mount
// with the largest objects named, before anything reaches the volume.
func TestOversizeResponse(t *testing.T) {
	// Vault caps one JSON string near 1 MiB: five values of 900 KiB pass the 4 MiB limit together.
	data := map[string]any{"small": "s"}
	objects := "- {objectName: small, secretPath: secret/data/big, secretKey: small}\n"
	for _, k := range []string{"k1", "k2", "k3", "k4", "k5"} {
		data[k] = strings.Repeat("x", 900<<10)
		objects += "- {objectName: big-" + k + ", secretPath: secret/data/big, secretKey: " + k + "}\n"
	}
	_, err := env.Vault.Root.Logical().Write("secret/data/big", map[string]any{"data": data})
	require.NoError(t, err)
	p := startProvider(t)
	_, err = p.mount(t, mountCall{pod: createPod(t, appServiceAccount), params: map[string]string{"roleName": kubeRole, "objects": objects}, tokenAudiences: []string{"vault"}})
	st := status.Convert(err)
	assert.Equal(t, codes.ResourceExhausted, st.Code(), st.Message())
	assert.Contains(t, st.Message(), "over the driver's 4194304")
	assert.Contains(t, st.Message(), "largest objects: big-k")
	assert.Contains(t, st.Message(), "(921600 bytes)")
	assert.NotContains(t, st.Message(), "small (")
	assert.NotContains(t, st.Message(), "xxxx")
}
