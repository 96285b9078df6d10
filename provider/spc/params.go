package spc

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
	"sigs.k8s.io/yaml"

	"github.com/vaultcsi/vault-csi-provider/auth"
	"github.com/vaultcsi/vault-csi-provider/cache"
	"github.com/vaultcsi/vault-csi-provider/config"
)

// ErrInvalidParameters marks a mount the class or the pod's attributes must change.
var ErrInvalidParameters = errors.New("invalid SecretProviderClass parameters")

// SecretProviderClass parameters, named as hashicorp/vault-csi-provider names them.
const (
	paramRoleName           = "roleName"
	paramVaultAddress       = "vaultAddress"
	paramVaultNamespace     = "vaultNamespace"
	paramKubernetesMount    = "vaultKubernetesMountPath"
	paramAuthMount          = "vaultAuthMountPath"
	paramAudience           = "audience"
	paramCACertPath         = "vaultCACertPath"
	paramCADirectory        = "vaultCADirectory"
	paramTLSServerName      = "vaultTLSServerName"
	paramSkipTLSVerify      = "vaultSkipTLSVerify"
	paramTLSClientCertPath  = "vaultTLSClientCertPath"
	paramTLSClientKeyPath   = "vaultTLSClientKeyPath"
	paramObjects            = "objects"
	attrClassName           = "secretProviderClass"
	attrPodName             = "csi.storage.k8s.io/pod.name"
	attrPodNamespace        = "csi.storage.k8s.io/pod.namespace"
	attrPodUID              = "csi.storage.k8s.io/pod.uid"
	attrServiceAccount      = "csi.storage.k8s.io/serviceAccount.name"
	attrServiceAccountToken = "csi.storage.k8s.io/serviceAccount.tokens"
)

// Params is one MountRequest, parsed and validated.
type Params struct {
	Class    string
	Role     string
	Audience string
	// Vault is the SecretProviderClass layer of the Vault settings.
	Vault   config.Vault
	Objects []Object
	Pod     auth.Pod
	// Tokens are the service-account tokens the driver sent, by audience.
	Tokens      map[string]auth.Token
	DefaultMode fs.FileMode
	// Unknown lists parameters and object fields the provider ignores
	// (typos, most likely): the mount goes on and a warning names them.
	Unknown []string
	// Words rename the settings in messages to the names the class used.
	Words Words

	attrs   map[string]string // as the driver sent them (Vault names), for the override check
	dialect Dialect
}

// ClassParameters are a class's parameters as this request's dialect reads
// them (Vault names), to compare with Attribute.
func (p Params) ClassParameters(class map[string]string) map[string]string {
	if p.dialect.Name == "" {
		return class
	}
	if canonical, _, err := p.dialect.canonical(class); err == nil {
		return canonical
	}
	return class
}

// Attribute is a parameter as the driver sent it, and whether it was sent.
func (p Params) Attribute(name string) (string, bool) {
	v, ok := p.attrs[name]
	return v, ok
}

// KnownParameters are the SecretProviderClass parameters the provider reads.
var KnownParameters = []string{
	paramRoleName, paramVaultAddress, paramVaultNamespace, paramKubernetesMount, paramAuthMount, paramAudience,
	paramCACertPath, paramCADirectory, paramTLSServerName, paramSkipTLSVerify, paramTLSClientCertPath,
	paramTLSClientKeyPath, paramObjects,
}

// SensitiveParameters could make the provider read files of the node, stop
// verifying Vault's certificate, or send the pod's token to another server:
// only the SecretProviderClass (or the operator) may set them.
var SensitiveParameters = []string{
	paramVaultAddress, paramCACertPath, paramCADirectory, paramTLSServerName,
	paramSkipTLSVerify, paramTLSClientCertPath, paramTLSClientKeyPath,
}

// KnownObjectFields are the fields of one object.
var KnownObjectFields = []string{"objectName", "secretPath", "secretKey", "secretArgs", "method", "encoding", "filePermission",
	"template", "layout", "jsonPath", "vaultToken", "wrapTTL"}

// unknownKeys lists unknown attributes and object fields (typos, most likely).
func unknownKeys(attrs map[string]string, objectFields []string) []string {
	var out []string
	for k := range attrs {
		if !slices.Contains(KnownParameters, k) && k != attrClassName && !strings.HasPrefix(k, "csi.storage.k8s.io/") {
			out = append(out, k)
		}
	}
	out = append(out, objectFields...)
	sort.Strings(out)
	return out
}

// DefaultMaxObjects is -max-objects' default.
const DefaultMaxObjects = 256

// Parser holds the bounds of every request and, made by NewParser, the
// objects lists it parsed lately: a class's pods send the same list on
// every mount, and parsing it is most of a warm mount's CPU.
type Parser struct {
	// MaxObjects bounds the objects list; zero is DefaultMaxObjects.
	MaxObjects int
	// Dialect is the classes' language; the zero value is Vault's.
	Dialect Dialect
	parsed  *cache.Cache[parsedObjects] // nil: parse every time
}

// parsedObjects is a valid parsed list, shared by mounts: never changed.
type parsedObjects struct {
	objects []Object
	unknown []string
	size    int64
}

// Bounds of the parsed lists a Parser keeps.
const (
	parsedListsKept  = 512
	parsedListsBytes = 16 << 20
)

// NewParser returns a Parser keeping the lists it parsed (LRU).
func NewParser(maxObjects int) Parser {
	return Parser{MaxObjects: maxObjects, parsed: cache.New(cache.Options[parsedObjects]{
		MaxEntries: parsedListsKept,
		MaxBytes:   parsedListsBytes,
		Size:       func(p parsedObjects) int64 { return p.size },
	})}
}

// objects parses raw, or returns the list parsed from the same text (by hash).
func (ps Parser) objects(raw string) ([]Object, []string, error) {
	if ps.parsed == nil {
		return parseObjects(raw, ps.maxObjects())
	}
	sum := sha256.Sum256([]byte(raw))
	key := string(sum[:])
	if p, ok := ps.parsed.Get(key); ok {
		return p.objects, p.unknown, nil
	}
	objects, unknown, err := parseObjects(raw, ps.maxObjects())
	if err == nil {
		// Weighed generously: the parsed form (values, templates) is a
		// few times the text.
		ps.parsed.Add(key, parsedObjects{objects, unknown, 8*int64(len(raw)) + 1024}, time.Time{})
	}
	return objects, unknown, err
}

// Parse turns a request with the default bounds into Params.
func Parse(attributesJSON, secretsJSON, permission string) (Params, error) {
	return Parser{}.Parse(attributesJSON, secretsJSON, permission)
}

// Parse turns the MountRequest's attributes, secrets and permission into
// Params, reporting every problem at once; with an error the Params still
// name the class and the pod when it can, for the log line.
func (ps Parser) Parse(attributesJSON, secretsJSON, permission string) (Params, error) {
	attrs, err := decodeStrings(attributesJSON)
	if err != nil {
		return Params{}, fmt.Errorf("%w: attributes are not a JSON object of strings (%w); this is sent by the secrets-store-csi-driver, check its version", ErrInvalidParameters, err)
	}
	d := ps.dialect()
	raw := attrs
	attrs, words, err := d.canonical(raw)
	if err != nil {
		p := fromAttributes(raw, d.Audience)
		return Params{Class: p.Class, Pod: p.Pod, Words: words}, fmt.Errorf("%w: %w", ErrInvalidParameters, err)
	}
	p := fromAttributes(attrs, d.Audience)
	p.Words, p.dialect = words, d
	problems := p.parseSettings(attrs, permission)
	var objectsErr, tokensErr error
	var unknownFields []string
	p.Objects, unknownFields, objectsErr = ps.objects(attrs[paramObjects])
	p.Tokens, tokensErr = parseTokens(attrs[attrServiceAccountToken], secretsJSON)
	if err := errors.Join(append(problems, objectsErr, tokensErr)...); err != nil {
		return Params{Class: p.Class, Pod: p.Pod, Words: words}, fmt.Errorf("%w: %w", ErrInvalidParameters, err)
	}
	p.Unknown = unknownKeys(attrs, unknownFields)
	p.attrs = attrs
	return p, nil
}

// fromAttributes reads the fields that need no validation.
func fromAttributes(attrs map[string]string, audience string) Params {
	p := Params{
		Class:    attrs[attrClassName],
		Role:     strings.TrimSpace(attrs[paramRoleName]),
		Audience: attrs[paramAudience],
		Pod: auth.Pod{
			Name:           attrs[attrPodName],
			Namespace:      attrs[attrPodNamespace],
			UID:            attrs[attrPodUID],
			ServiceAccount: attrs[attrServiceAccount],
		},
		Vault: config.Vault{
			Address:       attrs[paramVaultAddress],
			Namespace:     attrs[paramVaultNamespace],
			CACert:        attrs[paramCACertPath],
			CADirectory:   attrs[paramCADirectory],
			TLSServerName: attrs[paramTLSServerName],
			ClientCert:    attrs[paramTLSClientCertPath],
			ClientKey:     attrs[paramTLSClientKeyPath],
		},
	}
	if p.Audience == "" {
		p.Audience = audience
	}
	return p
}

// parseSettings validates the role, auth mount, address, TLS switch and permission.
func (p *Params) parseSettings(attrs map[string]string, permission string) []error {
	var problems []error
	if p.Role == "" {
		problems = append(problems, fmt.Errorf("%s: missing: set it to the Vault role the pod's service account is bound to", paramRoleName))
	}
	var mountErr, skipErr, modeErr error
	p.Vault.AuthMount, mountErr = authMount(attrs[paramAuthMount], attrs[paramKubernetesMount])
	if s := attrs[paramSkipTLSVerify]; s != "" {
		var b bool
		b, skipErr = config.ParseBool(paramSkipTLSVerify, s)
		p.Vault.SkipVerify = &b
	}
	p.DefaultMode, modeErr = parsePermission(permission)
	return append(problems, mountErr, validateAddress(p.Vault.Address), skipErr, modeErr)
}

// parseTokens reads the driver's tokens, from the attributes or (driver v1.6
// on Kubernetes 1.35+) the secrets.
func parseTokens(inAttributes, secretsJSON string) (map[string]auth.Token, error) {
	var secrets map[string]string
	if s := strings.TrimSpace(secretsJSON); s != "" && s != "null" {
		var err error
		if secrets, err = decodeStrings(s); err != nil {
			return nil, fmt.Errorf("secrets are not a JSON object of strings (%w)", err)
		}
	}
	var tokens map[string]auth.Token
	var problems []error
	for _, src := range []struct{ where, raw string }{
		{"volume attribute", inAttributes},
		{"secrets", secrets[attrServiceAccountToken]},
	} {
		if src.raw == "" {
			continue
		}
		parsed, err := auth.ParseTokens(src.raw)
		switch {
		case err != nil:
			problems = append(problems, fmt.Errorf("%s in %s: %w", attrServiceAccountToken, src.where, err))
		case tokens == nil: // one source, as usual: its map as it is
			tokens = parsed
		default:
			maps.Copy(tokens, parsed)
		}
	}
	if tokens == nil {
		tokens = map[string]auth.Token{}
	}
	return tokens, errors.Join(problems...)
}

// authMount resolves the login mount from hashicorp's two parameters.
func authMount(authPath, kubernetesPath string) (string, error) {
	if authPath != "" && kubernetesPath != "" {
		return "", fmt.Errorf("%s and %s are both set (%q, %q): set only %s", paramAuthMount, paramKubernetesMount, authPath, kubernetesPath, paramAuthMount)
	}
	m := authPath
	if m == "" {
		m = kubernetesPath
	}
	m = config.NormalizeMount(m)
	if strings.Contains(m, "..") || strings.ContainsAny(m, "?#") {
		return "", fmt.Errorf("%s: %q is not a mount path: use the auth mount's path, e.g. kubernetes or jwt", paramAuthMount, m)
	}
	return m, nil
}

// validateAddress checks a Vault address, or a comma-separated list.
func validateAddress(addrs string) error {
	if addrs == "" {
		return nil
	}
	for _, addr := range config.SplitAddresses(addrs) {
		u, err := url.Parse(addr)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%s: %q is not a Vault address: use a URL such as https://vault.vault.svc:8200, or several separated by commas", paramVaultAddress, addr)
		}
	}
	return nil
}

// parsePermission reads the driver's decimal file mode ("420" is 0644).
func parsePermission(s string) (fs.FileMode, error) {
	if s == "" {
		return 0o644, nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n > 0o777 {
		return 0, fmt.Errorf("permission: %q is not a file mode in decimal (e.g. \"420\" for 0644); this is sent by the secrets-store-csi-driver's --file-permission", s)
	}
	return fs.FileMode(n), nil
}

// Provider is the provider name of the classes the parser reads.
func (ps Parser) Provider() string { return ps.dialect().Name }

func (ps Parser) dialect() Dialect {
	if ps.Dialect.Name == "" {
		return Vault
	}
	return ps.Dialect
}

func (ps Parser) maxObjects() int {
	if ps.MaxObjects <= 0 {
		return DefaultMaxObjects
	}
	return ps.MaxObjects
}

// ParseObjects reads and validates the objects parameter (default bounds).
func ParseObjects(raw string) ([]Object, error) {
	objects, _, err := parseObjects(raw, DefaultMaxObjects)
	return objects, err
}

// MaxObjectsBytes bounds the objects parameter before it is parsed: at
// about 0.3 µs a byte of YAML, no list costs more than half a CPU-second.
const MaxObjectsBytes = 1 << 20

// maxProblems is how many problems of an objects list are reported.
const maxProblems = 20

// parseObjects reads the objects parameter (YAML) and validates every
// object in linear time; it also returns the object fields it does not know.
func parseObjects(raw string, maxObjects int) ([]Object, []string, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, nil, fmt.Errorf("%s: missing: list at least one object with objectName and secretPath", paramObjects)
	}
	if len(raw) > MaxObjectsBytes {
		return nil, nil, fmt.Errorf("%s: over %d bytes: split the objects over several SecretProviderClasses and volumes", paramObjects, MaxObjectsBytes)
	}
	var items []map[string]any
	if err := yaml.Unmarshal([]byte(raw), &items, useNumber); err != nil {
		return nil, nil, fmt.Errorf("%s: not a YAML list of objects: %w", paramObjects, err)
	}
	switch {
	case len(items) == 0:
		return nil, nil, fmt.Errorf("%s: empty: list at least one object with objectName and secretPath", paramObjects)
	case len(items) > maxObjects:
		return nil, nil, fmt.Errorf("%s: %d objects, more than the %d one mount may read (the provider's -max-objects): split them over several SecretProviderClasses and volumes", paramObjects, len(items), maxObjects)
	}
	objects := make([]Object, len(items))
	var problems, unknown []string
	seen := make(map[string]int, len(items))
	for i, item := range items {
		unknown = append(unknown, unknownFields(i, item)...)
		o := &objects[i]
		if err := decodeObject(item, o); err != nil {
			problems = append(problems, fmt.Sprintf("%s[%d]: %v", paramObjects, i, err))
			continue
		}
		if err := o.normalize(); err != nil {
			problems = append(problems, fmt.Sprintf("%s[%d]: %v", paramObjects, i, err))
			continue
		}
		if j, dup := seen[o.Name]; dup {
			problems = append(problems, fmt.Sprintf("%s[%d]: objectName %q is also used by %s[%d]: each object needs its own file name", paramObjects, i, o.Name, paramObjects, j))
			continue
		}
		seen[o.Name] = i
	}
	for _, err := range nestedNameConflicts(objects) {
		problems = append(problems, err.Error())
	}
	return objects, unknown, joinProblems(problems)
}

// joinProblems reports the first maxProblems and counts the rest.
func joinProblems(problems []string) error {
	if len(problems) == 0 {
		return nil
	}
	if n := len(problems) - maxProblems; n > 0 {
		problems = append(problems[:maxProblems], fmt.Sprintf("and %d more problems in %s", n, paramObjects))
	}
	return errors.New(strings.Join(problems, "\n"))
}

// useNumber keeps numbers as YAML wrote them (2024, not 2024.0).
func useNumber(d *json.Decoder) *json.Decoder {
	d.UseNumber()
	return d
}

// unknownFields names the fields of objects[i] that are not object fields.
func unknownFields(i int, item map[string]any) []string {
	var out []string
	for k := range item {
		if !slices.Contains(KnownObjectFields, k) {
			out = append(out, fmt.Sprintf("%s[%d].%s", paramObjects, i, k))
		}
	}
	return out
}

// stringFields hold text even when YAML reads a number or a bool (secretKey: 2024).
var stringFields = []string{"objectName", "secretPath", "secretKey", "method", "encoding", "template", "layout", "jsonPath", "wrapTTL"}

// decodeObject fills o from one item, as sigs.k8s.io/yaml would: scalars
// become text, field names match regardless of case.
func decodeObject(item map[string]any, o *Object) error {
	for k, v := range item {
		if !slices.ContainsFunc(stringFields, func(f string) bool { return strings.EqualFold(f, k) }) {
			continue
		}
		switch v := v.(type) {
		case json.Number:
			item[k] = v.String()
		case bool:
			item[k] = strconv.FormatBool(v)
		}
	}
	b, err := json.Marshal(item)
	if err != nil {
		return err
	}
	var typ *json.UnmarshalTypeError
	switch err := json.Unmarshal(b, o); {
	case errors.As(err, &typ):
		return fmt.Errorf("%s: a %s where a %s was expected", typ.Field, typ.Value, typ.Type)
	case err != nil:
		return err // FileMode's own, naming filePermission
	}
	return nil
}

// Check validates a class's parameters as a mount would, for tools.
func (ps Parser) Check(parameters map[string]string) (Params, error) {
	attrs, err := json.Marshal(parameters)
	if err != nil {
		return Params{}, err
	}
	return ps.Parse(string(attrs), "null", "420")
}

// NewMountRequest builds the MountRequest the driver would send for a pod
// mounting class, with its token for audience (none: one is minted).
func NewMountRequest(params map[string]string, class string, pod auth.Pod, audience string, token auth.Token) (*v1alpha1.MountRequest, error) {
	attrs := map[string]string{
		attrClassName:      class,
		attrPodName:        pod.Name,
		attrPodNamespace:   pod.Namespace,
		attrPodUID:         pod.UID,
		attrServiceAccount: pod.ServiceAccount,
	}
	maps.Copy(attrs, params)
	if token.Value != "" {
		type sent struct {
			Token  string    `json:"token"`
			Expiry time.Time `json:"expirationTimestamp"`
		}
		raw, err := json.Marshal(map[string]sent{audience: {Token: token.Value, Expiry: token.Expiry}})
		if err != nil {
			return nil, err
		}
		attrs[attrServiceAccountToken] = string(raw)
	}
	a, err := json.Marshal(attrs)
	if err != nil {
		return nil, err
	}
	return &v1alpha1.MountRequest{Attributes: string(a), Secrets: "null", Permission: "420", TargetPath: "/unused"}, nil
}

// decodeStrings reads a JSON object of strings; errors never quote the input.
func decodeStrings(raw string) (map[string]string, error) {
	var m map[string]string
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return nil, errors.New(jsonProblem(err))
	}
	return m, nil
}

// jsonProblem describes a JSON error without quoting the input.
func jsonProblem(err error) string {
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		return fmt.Sprintf("syntax error at byte %d", syntax.Offset)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		return fmt.Sprintf("a %s where a %s was expected", typ.Value, typ.Type)
	}
	return "malformed JSON"
}
