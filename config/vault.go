// Package config holds the process flags and the Vault settings every layer
// (environment, flags, SecretProviderClass) may set, in the order Layers says.
package config

import (
	"fmt"
	"strconv"
	"strings"
)

// Built-in defaults, the bottom layer.
const (
	DefaultVaultAddress = "https://127.0.0.1:8200"
	DefaultAuthMount    = "kubernetes"
)

// Vault is how the provider reaches Vault and where it logs in. The same type
// is used for every layer; an empty field (nil for SkipVerify) means "not set
// at this layer", so a higher layer only replaces what it sets.
type Vault struct {
	Address       string
	Namespace     string
	AuthMount     string
	CACert        string
	CADirectory   string
	TLSServerName string
	ClientCert    string
	ClientKey     string
	SkipVerify    *bool
}

// Defaults is the bottom layer: what applies when nothing else is set.
func Defaults() Vault {
	return Vault{Address: DefaultVaultAddress, AuthMount: DefaultAuthMount}
}

// Layers applies layers in order, each overriding what those before it set:
// Layers(Defaults(), FromEnv(getenv), flags, secretProviderClass) is the
// provider's one precedence.
func Layers(layers ...Vault) Vault {
	var out Vault
	for _, l := range layers {
		out = out.overlay(l)
	}
	return out
}

func (v Vault) overlay(over Vault) Vault {
	pick := func(base, o string) string {
		if o != "" {
			return o
		}
		return base
	}
	v.Address = pick(v.Address, over.Address)
	v.Namespace = pick(v.Namespace, over.Namespace)
	v.AuthMount = pick(v.AuthMount, over.AuthMount)
	v.CACert = pick(v.CACert, over.CACert)
	v.CADirectory = pick(v.CADirectory, over.CADirectory)
	v.TLSServerName = pick(v.TLSServerName, over.TLSServerName)
	v.ClientCert = pick(v.ClientCert, over.ClientCert)
	v.ClientKey = pick(v.ClientKey, over.ClientKey)
	if over.SkipVerify != nil {
		skip := *over.SkipVerify
		v.SkipVerify = &skip
	}
	return v
}

// ConnectionKey identifies a connection: address, namespace, TLS file paths.
func (v Vault) ConnectionKey() string {
	return strings.Join([]string{
		v.Address, v.Namespace, v.CACert, v.CADirectory, v.TLSServerName,
		v.ClientCert, v.ClientKey, strconv.FormatBool(v.InsecureSkipVerify()),
	}, "\x00")
}

// InsecureSkipVerify reports whether TLS verification was explicitly turned off.
func (v Vault) InsecureSkipVerify() bool { return v.SkipVerify != nil && *v.SkipVerify }

// Environment variables of the lowest layer, as the Vault CLI names them.
const (
	EnvAddress       = "VAULT_ADDR"
	EnvNamespace     = "VAULT_NAMESPACE"
	EnvCACert        = "VAULT_CACERT"
	EnvCAPath        = "VAULT_CAPATH"
	EnvTLSServerName = "VAULT_TLS_SERVER_NAME"
	EnvClientCert    = "VAULT_CLIENT_CERT"
	EnvClientKey     = "VAULT_CLIENT_KEY"
	EnvSkipVerify    = "VAULT_SKIP_VERIFY"
)

// FromEnv reads the environment layer.
func FromEnv(getenv func(string) string) (Vault, error) {
	v := Vault{
		Address:       getenv(EnvAddress),
		Namespace:     getenv(EnvNamespace),
		CACert:        getenv(EnvCACert),
		CADirectory:   getenv(EnvCAPath),
		TLSServerName: getenv(EnvTLSServerName),
		ClientCert:    getenv(EnvClientCert),
		ClientKey:     getenv(EnvClientKey),
	}
	if s := getenv(EnvSkipVerify); s != "" {
		b, err := ParseBool(EnvSkipVerify, s)
		if err != nil {
			return Vault{}, err
		}
		v.SkipVerify = &b
	}
	return v, nil
}

// ParseBool parses a boolean setting and names it in the error.
func ParseBool(name, s string) (bool, error) {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("%s: %q is not a boolean: use \"true\" or \"false\"", name, s)
	}
	return b, nil
}

// NormalizeMount turns an auth mount as users write it ("kubernetes",
// "auth/kubernetes", "/auth/kubernetes/") into the mount path ("kubernetes").
func NormalizeMount(m string) string {
	m = strings.Trim(m, "/")
	return strings.Trim(strings.TrimPrefix(m, "auth/"), "/")
}

// SplitAddresses splits a comma-separated list of addresses, tried in order.
func SplitAddresses(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return []string{s}
	}
	return out
}
