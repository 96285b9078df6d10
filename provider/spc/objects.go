package spc

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// Object is one entry of the SecretProviderClass's objects list: one file in
// the pod's volume. Field names are those of hashicorp/vault-csi-provider.
type Object struct {
	Name     string         `json:"objectName"`
	Path     string         `json:"secretPath"`
	Key      string         `json:"secretKey,omitempty"`
	Args     map[string]any `json:"secretArgs,omitempty"`
	Method   string         `json:"method,omitempty"`
	Encoding string         `json:"encoding,omitempty"`
	Mode     *FileMode      `json:"filePermission,omitempty"`

	// Beyond hashicorp's provider (see docs/parameters.md):
	// Template renders the file from one or several secrets, in the Vault
	// Agent's syntax ({{ with secret "secret/data/app" }}...{{ end }}).
	Template string `json:"template,omitempty"`
	// Layout "directory" writes one file per key under objectName/.
	Layout string `json:"layout,omitempty"`
	// JSONPath selects a value in the response: .data.data.db.host.
	JSONPath string `json:"jsonPath,omitempty"`
	// VaultToken writes the pod's own Vault token, response-wrapped for
	// WrapTTL when that is set.
	VaultToken bool   `json:"vaultToken,omitempty"`
	WrapTTL    string `json:"wrapTTL,omitempty"`

	// What the fields above compile to; never part of an object's version.
	// Call is the Vault call of an object that reads one path.
	Call Call `json:"-"`
	// Selector is the parsed JSONPath.
	Selector []Step `json:"-"`
	// Compiled is the parsed Template.
	Compiled *template.Template `json:"-"`
	// WrapFor is the parsed WrapTTL.
	WrapFor time.Duration `json:"-"`

	config []byte // Config, computed once for a parsed object
}

// Config is the object's normalized fields as JSON, which its version covers.
func (o Object) Config() []byte {
	if o.config != nil {
		return o.config
	}
	b, _ := json.Marshal(o) // a struct of strings, maps from YAML and numbers: cannot fail
	return b
}

// Call is one call to Vault's logical API of an object or a {{ secret }}.
type Call struct {
	Method string // GET, PUT or POST
	Path   string // without /v1/ and without the query
	Query  url.Values
	Body   map[string]any // secretArgs, sent with PUT and POST

	key string // Key, computed once for the calls of a parsed object
}

// Key is equal for the same call, secretArgs included; a hash, as they may be secret.
func (c Call) Key() string {
	if c.key != "" {
		return c.key
	}
	args, _ := json.Marshal(c.Body) // JSON-shaped data from YAML: cannot fail
	sum := sha256.Sum256([]byte(c.Method + " " + c.Path + "?" + c.Query.Encode() + " " + string(args)))
	return hex.EncodeToString(sum[:])
}

// Object layouts.
const (
	LayoutFile      = "file"
	LayoutDirectory = "directory"
)

// Bounds of wrapTTL.
const (
	minWrapTTL = time.Second
	maxWrapTTL = 24 * time.Hour
)

// Encodings an object's value may be stored in; the file gets the decoded bytes.
const (
	EncodingUTF8   = "utf-8"
	EncodingBase64 = "base64"
	EncodingHex    = "hex"
)

// Limits the driver enforces on file paths (pkg/util/fileutil).
const (
	MaxPathLength    = 4096
	MaxElementLength = 255
)

// FileMode is an object's filePermission. YAML's 0600 arrives as the number
// 384; a string is read as octal ("0600", "600", "0o600").
type FileMode fs.FileMode

// UnmarshalJSON accepts a number or an octal string.
func (m *FileMode) UnmarshalJSON(b []byte) error {
	var n uint64
	var s string
	switch {
	case json.Unmarshal(b, &n) == nil:
	case json.Unmarshal(b, &s) == nil:
		v, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0O"), 8, 32)
		if err != nil {
			return fmt.Errorf("filePermission: %q is not an octal file mode: write it like 0600", s)
		}
		n = v
	default:
		return fmt.Errorf("filePermission: %s is not a file mode: write it in octal, like 0600", b)
	}
	if n > 0o777 {
		return fmt.Errorf("filePermission: %d (%#o) is not a file mode: write it in octal with a leading zero, like 0600", n, n)
	}
	*m = FileMode(n)
	return nil
}

// MarshalJSON writes the mode as a number, for object versions.
func (m FileMode) MarshalJSON() ([]byte, error) { return json.Marshal(uint32(m)) }

// normalize defaults and validates one object.
func (o *Object) normalize() error {
	var problems []error
	o.Name = strings.TrimSpace(o.Name)
	if err := ValidateObjectName(o.Name); err != nil {
		problems = append(problems, err)
	}

	o.Method = strings.ToUpper(strings.TrimSpace(o.Method))
	if o.Method == "" {
		o.Method = "GET"
	}
	if o.Method != "GET" && o.Method != "PUT" && o.Method != "POST" {
		problems = append(problems, fmt.Errorf("object %q: method %q is not supported: use GET, PUT or POST", o.Name, o.Method))
	}

	o.Encoding = strings.ToLower(strings.TrimSpace(o.Encoding))
	switch o.Encoding {
	case "", "utf8", EncodingUTF8:
		o.Encoding = EncodingUTF8
	case EncodingBase64, EncodingHex:
	default:
		problems = append(problems, fmt.Errorf("object %q: encoding %q is not supported: use utf-8, base64 or hex", o.Name, o.Encoding))
	}

	o.Layout = strings.ToLower(strings.TrimSpace(o.Layout))
	switch o.Layout {
	case "", LayoutFile:
		o.Layout = LayoutFile
	case LayoutDirectory:
	default:
		problems = append(problems, fmt.Errorf("object %q: layout %q is not supported: use file (the default) or directory (one file per key)", o.Name, o.Layout))
	}

	switch {
	case o.VaultToken:
		problems = append(problems, o.normalizeToken()...)
	case o.Template != "":
		problems = append(problems, o.normalizeTemplate()...)
	default:
		problems = append(problems, o.normalizeRead()...)
	}
	o.config = o.Config()
	return errors.Join(problems...)
}

// normalizeRead checks an object that reads one Vault path.
func (o *Object) normalizeRead() []error {
	var problems []error
	apiPath, query, err := SplitSecretPath(o.Path)
	if err != nil {
		problems = append(problems, fmt.Errorf("object %q: %w", o.Name, err))
	}
	o.Call = Call{Method: o.Method, Path: apiPath, Query: query}
	if o.Method != http.MethodGet {
		o.Call.Body = o.Args
	}
	o.Call.key = o.Call.Key()
	if o.JSONPath != "" {
		if o.Key != "" {
			problems = append(problems, fmt.Errorf("object %q: secretKey and jsonPath both set: keep one (jsonPath %q selects from the whole response)", o.Name, o.JSONPath))
		}
		steps, err := ParseJSONPath(o.JSONPath)
		if err != nil {
			problems = append(problems, fmt.Errorf("object %q: %w", o.Name, err))
		}
		o.Selector = steps
	}
	if o.WrapTTL != "" {
		problems = append(problems, fmt.Errorf("object %q: wrapTTL applies only with vaultToken: true: remove it", o.Name))
	}
	return problems
}

// normalizeTemplate checks an object rendered from a template.
func (o *Object) normalizeTemplate() []error {
	var problems []error
	for _, field := range o.fieldsSet("secretPath", "secretKey", "secretArgs", "jsonPath", "wrapTTL", "layout") {
		problems = append(problems, fmt.Errorf("object %q: %s does not apply to a template: the template names its secrets with {{ secret \"path\" }}", o.Name, field))
	}
	t, err := ParseTemplate(o.Name, o.Template)
	if err != nil {
		problems = append(problems, fmt.Errorf("object %q: %w", o.Name, err))
	}
	o.Compiled = t
	return problems
}

// fieldsSet returns those of the named fields the object sets.
func (o *Object) fieldsSet(names ...string) []string {
	set := map[string]bool{
		"secretPath": o.Path != "", "secretKey": o.Key != "", "secretArgs": len(o.Args) > 0, "jsonPath": o.JSONPath != "",
		"template": o.Template != "", "wrapTTL": o.WrapTTL != "", "layout": o.Layout == LayoutDirectory,
	}
	var out []string
	for _, n := range names {
		if set[n] {
			out = append(out, n)
		}
	}
	return out
}

// normalizeToken checks an object that writes the pod's Vault token.
func (o *Object) normalizeToken() []error {
	var problems []error
	for _, field := range o.fieldsSet("secretPath", "secretKey", "secretArgs", "jsonPath", "template", "layout") {
		problems = append(problems, fmt.Errorf("object %q: %s does not apply with vaultToken: true, which writes the pod's Vault token", o.Name, field))
	}
	if o.WrapTTL != "" {
		d, err := time.ParseDuration(strings.TrimSpace(o.WrapTTL))
		if err != nil || d < minWrapTTL || d > maxWrapTTL {
			problems = append(problems, fmt.Errorf("object %q: wrapTTL %q is not a duration between %s and %s: write it like 5m", o.Name, o.WrapTTL, minWrapTTL, maxWrapTTL))
		}
		o.WrapFor = d
	}
	return problems
}

// SplitSecretPath accepts "secret/data/app", "/v1/secret/data/app" and
// "secret/data/app?version=1".
func SplitSecretPath(p string) (string, url.Values, error) {
	p = strings.TrimSpace(p)
	if p == "" {
		return "", nil, errors.New("secretPath: missing: set the Vault path to read, e.g. secret/data/app")
	}
	rawQuery := ""
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p, rawQuery = p[:i], p[i+1:]
	}
	p = strings.TrimLeft(p, "/")
	p = strings.TrimPrefix(p, "v1/")
	p = strings.Trim(p, "/")
	query, err := url.ParseQuery(rawQuery)
	switch {
	case err != nil:
		return "", nil, fmt.Errorf("secretPath: query %q is malformed: write it like ?version=1", rawQuery)
	case p == "":
		return "", nil, errors.New("secretPath: names no Vault path: set the path to read, e.g. secret/data/app")
	case slices.ContainsFunc(strings.Split(p, "/"), func(e string) bool { return e == "" || e == "." || e == ".." }):
		return "", nil, fmt.Errorf("secretPath: %q has empty, . or .. elements: write the Vault path plainly, e.g. secret/data/app", p)
	}
	return p, query, nil
}

// ValidateObjectName applies the driver's rules for file paths.
func ValidateObjectName(name string) error {
	bad := func(why string) error {
		return fmt.Errorf("objectName %q %s", name, why)
	}
	switch {
	case name == "":
		return errors.New("objectName: missing: set the file name for this object")
	case path.IsAbs(name) || filepath.IsAbs(name):
		return bad("is absolute: use a path relative to the volume, e.g. db/password")
	case len(name) > MaxPathLength:
		return bad(fmt.Sprintf("is longer than %d bytes", MaxPathLength))
	case filepath.Clean(name) != name || name == ".":
		return bad(fmt.Sprintf("is not a clean path: write it as %q", filepath.Clean(name)))
	case strings.HasPrefix(name, ".."):
		return bad("starts with '..', which the driver reserves")
	}
	for _, elem := range strings.Split(name, "/") {
		if elem == ".." {
			return bad("contains '..': files stay inside the volume")
		}
		if len(elem) > MaxElementLength {
			return bad(fmt.Sprintf("has an element longer than %d bytes", MaxElementLength))
		}
	}
	return nil
}

// nestedNameConflicts finds a file that is another's directory ("a" and
// "a/b"), in time linear in the names' length.
func nestedNameConflicts(objects []Object) []error {
	names := make(map[string]bool, len(objects))
	for _, o := range objects {
		if o.Name != "" {
			names[o.Name] = true
		}
	}
	var problems []error
	for _, name := range slices.Sorted(maps.Keys(names)) {
		for i := range len(name) {
			if name[i] == '/' && names[name[:i]] {
				problems = append(problems, fmt.Errorf("%s: objectName %q would be a file and also the directory of %q: rename one", paramObjects, name[:i], name))
			}
		}
	}
	return problems
}
