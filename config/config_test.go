package config

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func ptr[T any](v T) *T { return &v }

// TestPrecedence proves the order users rely on: built-in default <
// environment < flags < SecretProviderClass.
func TestPrecedence(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		args  []string
		class Vault
		want  Vault
	}{
		{
			name: "defaults only",
			want: Vault{Address: DefaultVaultAddress, AuthMount: DefaultAuthMount},
		},
		{
			name: "env over default",
			env:  map[string]string{EnvAddress: "https://env:8200", EnvNamespace: "env-ns", EnvSkipVerify: "true"},
			want: Vault{Address: "https://env:8200", Namespace: "env-ns", AuthMount: DefaultAuthMount, SkipVerify: ptr(true)},
		},
		{
			name: "flags over env",
			env:  map[string]string{EnvAddress: "https://env:8200", EnvCACert: "/env/ca.pem", EnvSkipVerify: "true"},
			args: []string{"-vault-addr=https://flag:8200", "-vault-mount=auth/flag-mount/", "-vault-tls-skip-verify=false"},
			want: Vault{Address: "https://flag:8200", AuthMount: "flag-mount", CACert: "/env/ca.pem", SkipVerify: ptr(false)},
		},
		{
			name:  "class over flags over env",
			env:   map[string]string{EnvAddress: "https://env:8200", EnvNamespace: "env-ns", EnvTLSServerName: "env.example"},
			args:  []string{"-vault-addr=https://flag:8200", "-vault-namespace=flag-ns", "-vault-mount=jwt"},
			class: Vault{Address: "https://class:8200", AuthMount: "class-mount", SkipVerify: ptr(true)},
			want:  Vault{Address: "https://class:8200", Namespace: "flag-ns", AuthMount: "class-mount", TLSServerName: "env.example", SkipVerify: ptr(true)},
		},
		{
			name:  "class leaves unset fields to lower layers",
			env:   map[string]string{EnvClientCert: "/env/cert.pem", EnvClientKey: "/env/key.pem"},
			args:  []string{"-vault-tls-ca-directory=/flag/cas"},
			class: Vault{Namespace: "team-a"},
			want:  Vault{Address: DefaultVaultAddress, Namespace: "team-a", AuthMount: DefaultAuthMount, CADirectory: "/flag/cas", ClientCert: "/env/cert.pem", ClientKey: "/env/key.pem"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			proc, err := Parse(tc.args, envOf(tc.env), io.Discard)
			require.NoError(t, err)
			assert.Equal(t, tc.want, Layers(proc.Vault, tc.class))
		})
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(t *testing.T, p Process)
		wantErr []string
	}{
		{
			name: "defaults",
			check: func(t *testing.T, p Process) {
				assert.Equal(t, DefaultEndpoint, p.Endpoint)
				assert.Equal(t, ":8080", p.HealthAddr)
				assert.Equal(t, 1000, p.CacheSize)
				assert.Equal(t, DefaultHMACSecretName, p.HMACSecretName)
				assert.Equal(t, slog.LevelInfo, p.LogLevel)
				assert.Equal(t, 20*time.Second, p.VaultTimeout)
			},
		},
		{
			name: "hashicorp's flags",
			args: []string{"-endpoint=/provider/vault.sock", "-log-level=debug", "-health-addr=127.0.0.1:9000", "-hmac-secret-name=k", "-cache-size=0", "-vault-tls-client-cert=/c.pem", "-vault-tls-client-key=/k.pem", "-vault-tls-server-name=vault.svc"},
			check: func(t *testing.T, p Process) {
				assert.Equal(t, "/provider/vault.sock", p.Endpoint)
				assert.Equal(t, slog.LevelDebug, p.LogLevel)
				assert.Equal(t, 0, p.CacheSize)
				assert.Equal(t, "vault.svc", p.Vault.TLSServerName)
			},
		},
		{
			name:  "debug is kept for compatibility",
			args:  []string{"-debug"},
			check: func(t *testing.T, p Process) { assert.Equal(t, slog.LevelDebug, p.LogLevel) },
		},
		{
			name:  "KUBECONFIG is the -kubeconfig default",
			env:   map[string]string{"KUBECONFIG": "/root/.kube/config"},
			check: func(t *testing.T, p Process) { assert.Equal(t, "/root/.kube/config", p.Kubeconfig) },
		},
		{
			name:    "every bad flag is reported at once",
			args:    []string{"-log-level=loud", "-log-format=xml", "-cache-size=-1", "-vault-tls-skip-verify=maybe"},
			wantErr: []string{"-log-level", "-log-format", "-cache-size", "-vault-tls-skip-verify"},
		},
		{
			name:    "bad VAULT_SKIP_VERIFY names the variable",
			env:     map[string]string{EnvSkipVerify: "yes please"},
			wantErr: []string{EnvSkipVerify},
		},
		{
			name:    "vault timeout past the kubelet's budget",
			args:    []string{"-vault-timeout=3m"},
			wantErr: []string{"-vault-timeout"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse(tc.args, envOf(tc.env), io.Discard)
			if len(tc.wantErr) > 0 {
				require.Error(t, err)
				for _, w := range tc.wantErr {
					assert.Contains(t, err.Error(), w)
				}
				return
			}
			require.NoError(t, err)
			tc.check(t, p)
		})
	}
}
