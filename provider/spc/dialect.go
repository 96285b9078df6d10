package spc

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Dialect is the parameter language of one provider name: `provider: vault`
// classes are written for hashicorp/vault-csi-provider, `provider: openbao`
// ones for openbao/openbao-csi-provider 2.x. Both mean the same settings;
// the provider reads them under the Vault names (paramVaultAddress…).
type Dialect struct {
	// Name is the class's spec.provider, and the socket's name.
	Name string
	// Audience is the token audience when the class names none.
	Audience string
	// prefixes of the settings' parameters (bao, openbao, vault), in the
	// order errors suggest them.
	prefixes []string
}

var (
	// Vault is hashicorp/vault-csi-provider's language: vaultAddress…
	Vault = Dialect{Name: "vault", Audience: "vault", prefixes: []string{"vault"}}
	// OpenBao is openbao-csi-provider 2.x's: baoAddress, or openbaoAddress,
	// or (as it also accepts) vaultAddress; its role also as <prefix>RoleName.
	OpenBao = Dialect{Name: "openbao", Audience: "openbao", prefixes: []string{"bao", "openbao", "vault"}}
)

// DialectNamed returns the dialect of a provider name.
func DialectNamed(name string) (Dialect, bool) {
	for _, d := range []Dialect{Vault, OpenBao} {
		if d.Name == name {
			return d, true
		}
	}
	return Dialect{}, false
}

// settingSuffixes follow the prefix in the name of each prefixed parameter.
var settingSuffixes = []string{
	"Address", "Namespace", "KubernetesMountPath", "AuthMountPath", "CACertPath", "CADirectory",
	"TLSServerName", "SkipTLSVerify", "TLSClientCertPath", "TLSClientKeyPath",
}

// roleSuffix: openbao-csi-provider also takes the role as <prefix>RoleName.
const roleSuffix = "RoleName"

// Words speaks in one prefix: it renames the Vault names of the settings in
// a message (an error, a warning) to the ones the class used.
type Words struct{ prefix string }

// Speak rewrites the settings' Vault names in msg to the class's prefix.
func (w Words) Speak(msg string) string {
	if w.prefix == "" || w.prefix == "vault" {
		return msg
	}
	pairs := make([]string, 0, 2*len(settingSuffixes))
	for _, s := range settingSuffixes {
		pairs = append(pairs, "vault"+s, w.prefix+s)
	}
	return strings.NewReplacer(pairs...).Replace(msg)
}

// canonical returns attrs with the dialect's names turned into the Vault
// ones, and the prefix the class used. A class that mixes prefixes, or sets
// one setting under two names, is refused, naming both.
func (d Dialect) canonical(attrs map[string]string) (map[string]string, Words, error) {
	words := Words{prefix: d.prefixes[0]}
	if len(d.prefixes) == 1 {
		return attrs, words, nil
	}
	out := make(map[string]string, len(attrs))
	from := map[string]string{} // Vault name → the name the class used
	byPrefix := map[string]string{}
	var problems []string
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		name, prefix := d.vaultName(k)
		if prefix != "" {
			if _, seen := byPrefix[prefix]; !seen {
				byPrefix[prefix] = k
			}
			words.prefix = prefix
		}
		if other, dup := from[name]; dup {
			problems = append(problems, fmt.Sprintf("%s and %s are the same parameter: set only %s", other, k, other))
			continue
		}
		from[name] = k
		out[name] = attrs[k]
	}
	if len(byPrefix) > 1 {
		var used []string
		for _, p := range d.prefixes {
			if k, ok := byPrefix[p]; ok {
				used = append(used, k)
			}
		}
		problems = append(problems, fmt.Sprintf("%s mix parameter prefixes: write every parameter with one of %s (e.g. %sAddress)",
			strings.Join(used, " and "), strings.Join(d.prefixes, ", "), d.prefixes[0]))
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return nil, words, errors.New(strings.Join(problems, "; "))
	}
	return out, words, nil
}

// vaultName is a parameter's Vault name and the prefix it was written with
// ("" for unprefixed and unknown parameters, kept as they are).
func (d Dialect) vaultName(k string) (string, string) {
	for _, p := range d.prefixes {
		rest, ok := strings.CutPrefix(k, p)
		switch {
		case !ok:
		case rest == roleSuffix:
			return paramRoleName, p
		case slices.Contains(settingSuffixes, rest):
			return "vault" + rest, p
		}
	}
	return k, ""
}
