package render

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"text/template"

	"github.com/vaultcsi/vault-csi-provider/provider/spc"
)

// A template object renders its file from secrets it names itself, in the
// syntax of Vault Agent (consul-template) templates:
//
//	{{ with secret "secret/data/app" }}{{ .Data.data.password }}{{ end }}
//	{{ with secret "pki/issue/web" "common_name=web.example.com" }}{{ .Data.certificate }}{{ end }}
//
// A secret with arguments is written (PUT), without them read (GET). A
// missing key is an error naming the object and the line, not "<no value>".

// templateSecret is what {{ secret }} returns: Vault's response, with the
// field names templates use.
type templateSecret struct {
	RequestID     string         `json:"request_id"`
	LeaseID       string         `json:"lease_id"`
	LeaseDuration int            `json:"lease_duration"`
	Renewable     bool           `json:"renewable"`
	Data          map[string]any `json:"data"`
	Warnings      []string       `json:"warnings"`
}

// templateFuncs binds the helpers of spc.TemplateHelpers; secret is bound
// per mount.
func templateFuncs(secret func(string, ...string) (*templateSecret, error)) template.FuncMap {
	return template.FuncMap{
		"secret":          secret,
		"base64Encode":    func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
		"base64Decode":    decodeWith(base64.StdEncoding),
		"base64URLEncode": func(s string) string { return base64.URLEncoding.EncodeToString([]byte(s)) },
		"base64URLDecode": decodeWith(base64.URLEncoding),
		"toJSON": func(v any) (string, error) {
			b, err := json.Marshal(v)
			return string(b), err
		},
		"toJSONPretty": func(v any) (string, error) {
			b, err := json.MarshalIndent(v, "", "  ")
			return string(b), err
		},
		"toLower":    strings.ToLower,
		"toUpper":    strings.ToUpper,
		"trimSpace":  strings.TrimSpace,
		"split":      func(sep, s string) []string { return strings.Split(s, sep) },
		"join":       join,
		"replaceAll": func(old, new, s string) string { return strings.ReplaceAll(s, old, new) },
	}
}

func decodeWith(enc *base64.Encoding) func(string) (string, error) {
	return func(s string) (string, error) {
		b, err := enc.DecodeString(strings.TrimSpace(s))
		if err != nil {
			return "", errors.New("the value is not valid base64")
		}
		return string(b), nil
	}
}

// join accepts what templates hold: []string, or []any from Vault's JSON.
func join(sep string, list any) (string, error) {
	switch l := list.(type) {
	case []string:
		return strings.Join(l, sep), nil
	case []any:
		parts := make([]string, len(l))
		for i, v := range l {
			parts[i] = fmt.Sprint(v)
		}
		return strings.Join(parts, sep), nil
	}
	return "", fmt.Errorf("join: %T is not a list", list)
}

// Rendered is a template's output and the data of every secret it read,
// which its version covers too (a secret used only in a condition counts).
type Rendered struct {
	Output    []byte
	Versioned []byte
}

// ReadFunc is how a template reads its secrets: the mount flow passes one in
// that logs in, resolves KV paths, reuses leases and reads each call once.
type ReadFunc func(ctx context.Context, c spc.Call) ([]byte, error)

// readError marks an error of the ReadFunc, so that the mount's gRPC code
// still says what went wrong (PermissionDenied, ...).
type readError struct{ err error }

func (e readError) Error() string { return e.err.Error() }
func (e readError) Unwrap() error { return e.err }

// Template executes o's template, reading secrets through read.
func Template(ctx context.Context, o spc.Object, read ReadFunc) (Rendered, error) {
	var mu sync.Mutex
	seen := map[string][]byte{} // Call.Key -> data read
	secret := func(path string, args ...string) (*templateSecret, error) {
		r, err := spc.SecretCall(path, args)
		if err != nil {
			return nil, err
		}
		body, err := read(ctx, r)
		if err != nil {
			return nil, readError{err}
		}
		var raw struct {
			templateSecret
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(body, &raw); err != nil {
			return nil, fmt.Errorf("the response from %s is not a JSON object", r.Path)
		}
		s := raw.templateSecret
		if len(raw.Data) > 0 {
			dec := json.NewDecoder(bytes.NewReader(raw.Data))
			dec.UseNumber() // 1000000, not 1e+06
			if err := dec.Decode(&s.Data); err != nil {
				return nil, fmt.Errorf("the data from %s is not a JSON object", r.Path)
			}
		}
		mu.Lock()
		seen[r.Key()] = compact(raw.Data)
		mu.Unlock()
		return &s, nil
	}
	t, err := o.Compiled.Clone()
	if err != nil {
		return Rendered{}, fmt.Errorf("object %q: template: %w", o.Name, err)
	}
	out := boundedBuffer{limit: MaxResponseBytes}
	if err := t.Funcs(templateFuncs(secret)).Execute(&out, nil); err != nil {
		return Rendered{}, templateError(o, err)
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var versioned bytes.Buffer
	for _, k := range keys {
		versioned.WriteString(k)
		versioned.WriteByte(0)
		versioned.Write(seen[k])
		versioned.WriteByte(0)
	}
	return Rendered{Output: out.Bytes(), Versioned: versioned.Bytes()}, nil
}

// boundedBuffer refuses to grow past limit: a template cannot make the
// provider hold more than one response's worth of output.
type boundedBuffer struct {
	bytes.Buffer
	limit int
}

var errTemplateTooLarge = fmt.Errorf("%w: the template's output is over %d bytes", ErrTooLarge, MaxResponseBytes)

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.limit {
		return 0, errTemplateTooLarge
	}
	return b.Buffer.Write(p)
}

// templateError names the object and keeps the read's error inside, so that
// the mount's gRPC code still says what went wrong (PermissionDenied, ...).
func templateError(o spc.Object, err error) error {
	var re readError
	if errors.As(err, &re) {
		return fmt.Errorf("object %q: template: %s: %w", o.Name, templateLocation(err), re.err)
	}
	return fmt.Errorf("object %q: template: %w", o.Name, spc.TrimTemplateError(err))
}

// templateLocation is the "<object>:<line>:<col>" part of an execution error.
func templateLocation(err error) string {
	msg := strings.TrimPrefix(err.Error(), "template: ")
	if i := strings.Index(msg, ": executing"); i > 0 {
		return msg[:i]
	}
	return "line unknown"
}
