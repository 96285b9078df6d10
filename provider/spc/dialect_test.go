package spc

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// settings are one class's settings under every suffix, for a prefix.
func settings(prefix string) map[string]string {
	return map[string]string{
		prefix + "Address":           "https://bao.example:8200",
		prefix + "Namespace":         "team-a",
		prefix + "AuthMountPath":     "k8s-east",
		prefix + "CACertPath":        "/etc/bao/ca.crt",
		prefix + "CADirectory":       "/etc/bao/cas",
		prefix + "TLSServerName":     "bao.internal",
		prefix + "SkipTLSVerify":     "false",
		prefix + "TLSClientCertPath": "/etc/bao/tls.crt",
		prefix + "TLSClientKeyPath":  "/etc/bao/tls.key",
	}
}

// A class written for openbao-csi-provider 2.x (bao*, or the older openbao*,
// or vault* which it also reads) means on the openbao socket what the
// hashicorp class means on the vault socket; only the default audience
// differs, as between the two providers.
func TestOpenBaoClassesMeanWhatVaultClassesMean(t *testing.T) {
	want, err := Parser{Dialect: Vault}.Parse(attrs(t, settings("vault")), "null", "420")
	require.NoError(t, err)
	assert.Equal(t, "vault", want.Audience)
	for _, prefix := range []string{"bao", "openbao", "vault"} {
		t.Run(prefix, func(t *testing.T) {
			got, err := Parser{Dialect: OpenBao}.Parse(attrs(t, settings(prefix)), "null", "420")
			require.NoError(t, err)
			assert.Equal(t, want.Vault, got.Vault)
			assert.Equal(t, want.Role, got.Role)
			assert.Equal(t, want.Objects, got.Objects)
			assert.Empty(t, got.Unknown)
			assert.Equal(t, "openbao", got.Audience, "openbao-csi-provider's default audience")
		})
	}
	t.Run("role and mount under openbao's other names", func(t *testing.T) {
		got, err := Parser{Dialect: OpenBao}.Parse(attrs(t, map[string]string{
			"roleName": "<unset>", "openbaoRoleName": "app", "openbaoKubernetesMountPath": "k8s-east", "audience": "custom",
		}), "null", "420")
		require.NoError(t, err)
		assert.Equal(t, "app", got.Role)
		assert.Equal(t, "k8s-east", got.Vault.AuthMount)
		assert.Equal(t, "custom", got.Audience)
	})
	t.Run("bao names on the vault socket are unknown there", func(t *testing.T) {
		got, err := Parser{Dialect: Vault}.Parse(attrs(t, map[string]string{"baoAddress": "https://bao.example:8200"}), "null", "420")
		require.NoError(t, err)
		assert.Equal(t, []string{"baoAddress"}, got.Unknown)
		assert.Empty(t, got.Vault.Address)
	})
}

func TestOpenBaoClassesUseOnePrefix(t *testing.T) {
	for name, tc := range map[string]struct {
		params map[string]string
		want   []string
	}{
		"bao and vault": {
			map[string]string{"baoAddress": "https://a:8200", "vaultNamespace": "x"},
			[]string{"baoAddress and vaultNamespace mix parameter prefixes", "one of bao, openbao, vault"},
		},
		"openbao and bao": {
			map[string]string{"openbaoAddress": "https://a:8200", "baoAddress": "https://a:8200"},
			[]string{"baoAddress and openbaoAddress mix parameter prefixes", "baoAddress and openbaoAddress are the same parameter"},
		},
		"role twice": {
			map[string]string{"baoRoleName": "other"},
			[]string{"baoRoleName and roleName are the same parameter: set only baoRoleName"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			p, err := Parser{Dialect: OpenBao}.Parse(attrs(t, tc.params), "null", "420")
			require.ErrorIs(t, err, ErrInvalidParameters)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.Equal(t, "demo/app-0", p.Pod.String(), "the log line still names the pod")
		})
	}
}

// Errors name the parameters as the class wrote them.
func TestErrorsSpeakTheClassesPrefix(t *testing.T) {
	for prefix, dialect := range map[string]Dialect{"bao": OpenBao, "openbao": OpenBao, "vault": Vault} {
		p, err := Parser{Dialect: dialect}.Parse(attrs(t, map[string]string{
			prefix + "Address": "ftp://x", prefix + "SkipTLSVerify": "maybe",
		}), "null", "420")
		require.Error(t, err)
		msg := p.Words.Speak(err.Error())
		assert.Contains(t, msg, prefix+"Address: \"ftp://x\" is not a Vault address")
		assert.Contains(t, msg, prefix+"SkipTLSVerify")
		if prefix != "vault" {
			assert.NotContains(t, msg, "vaultAddress")
		}
	}
	assert.Equal(t, "set baoCACertPath; objects[0].vaultToken stays", Words{prefix: "bao"}.Speak("set vaultCACertPath; objects[0].vaultToken stays"))
}

func TestDialectNamed(t *testing.T) {
	d, ok := DialectNamed("openbao")
	assert.True(t, ok)
	assert.Equal(t, "openbao", d.Audience)
	_, ok = DialectNamed("azure")
	assert.False(t, ok)
}
