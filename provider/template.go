package provider

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"text/template"
	"text/template/parse"

	"github.com/vaultcsi/vault-csi-provider/vault"
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

// templateFuncs are the helpers templates may call besides text/template's
// own (index, len, printf, eq, ...). secret is bound per mount.
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

// parseTemplate checks a template's syntax; the object's name is the
// template's, so errors read "template: <object>:<line>: ...".
func parseTemplate(name, text string) (*template.Template, error) {
	t, err := template.New(name).Option("missingkey=error").Funcs(templateFuncs(nil)).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("template: %w", trimTemplateError(err))
	}
	if err := checkRanges(t.Tree, t.Root); err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	return t, nil
}

// checkRanges allows {{ range }} only over data: a field of a secret
// (.Data.data.list, $s.Data.keys) or split's result. Ranging over a number
// ({{ range 1000000000000 }}) would keep a node's provider busy for hours,
// for every pod on it.
func checkRanges(tree *parse.Tree, n parse.Node) error {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Nodes {
			if err := checkRanges(tree, c); err != nil {
				return err
			}
		}
	case *parse.IfNode:
		return errors.Join(checkRanges(tree, n.List), checkRanges(tree, n.ElseList))
	case *parse.WithNode:
		return errors.Join(checkRanges(tree, n.List), checkRanges(tree, n.ElseList))
	case *parse.RangeNode:
		if !rangesOverData(n.Pipe) {
			loc, _ := tree.ErrorContext(n)
			return fmt.Errorf("%s: range over %s: range only over lists and maps of a secret (.Data.data.list) or over split", loc, n.Pipe)
		}
		return errors.Join(checkRanges(tree, n.List), checkRanges(tree, n.ElseList))
	}
	return nil
}

func rangesOverData(p *parse.PipeNode) bool {
	if p == nil || len(p.Cmds) == 0 {
		return false
	}
	last := p.Cmds[len(p.Cmds)-1]
	if len(last.Args) == 0 {
		return false
	}
	switch a := last.Args[0].(type) {
	case *parse.FieldNode, *parse.ChainNode, *parse.DotNode:
		return true
	case *parse.VariableNode:
		return len(a.Ident) > 1 // $s.Data..., not a bare variable that may hold a number
	case *parse.IdentifierNode:
		return a.Ident == "split"
	}
	return false
}

// trimTemplateError drops text/template's own "template: " prefix and keeps
// the error's chain (ErrTooLarge, Vault's errors).
func trimTemplateError(err error) error {
	return trimmedError{msg: strings.TrimPrefix(err.Error(), "template: "), err: err}
}

type trimmedError struct {
	msg string
	err error
}

func (e trimmedError) Error() string { return e.msg }
func (e trimmedError) Unwrap() error { return e.err }

// rendered is a template's output and the data of every secret it read,
// which its version covers too (a secret used only in a condition counts).
type rendered struct {
	output    []byte
	versioned []byte
}

// render executes o's template, reading secrets through read.
func render(ctx context.Context, o Object, read func(context.Context, vault.Request) ([]byte, error)) (rendered, error) {
	var mu sync.Mutex
	seen := map[string][]byte{} // requestKeyOf -> data read
	secret := func(path string, args ...string) (*templateSecret, error) {
		r, err := templateRequest(path, args)
		if err != nil {
			return nil, err
		}
		body, err := read(ctx, r)
		if err != nil {
			return nil, err
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
		seen[requestKeyOf(r)] = compact(raw.Data)
		mu.Unlock()
		return &s, nil
	}
	t, err := o.tmpl.Clone()
	if err != nil {
		return rendered{}, fmt.Errorf("object %q: template: %w", o.Name, err)
	}
	out := boundedBuffer{limit: MaxResponseBytes}
	if err := t.Funcs(templateFuncs(secret)).Execute(&out, nil); err != nil {
		return rendered{}, templateError(o, err)
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
	return rendered{output: out.Bytes(), versioned: versioned.Bytes()}, nil
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

// templateError names the object and keeps the Vault error inside, so that
// the mount's gRPC code still says what went wrong (PermissionDenied, ...).
func templateError(o Object, err error) error {
	var vaultErr *vault.Error
	if errors.As(err, &vaultErr) {
		return fmt.Errorf("object %q: template: %s: %w", o.Name, templateLocation(err), vaultErr)
	}
	return fmt.Errorf("object %q: template: %w", o.Name, trimTemplateError(err))
}

// templateLocation is the "<object>:<line>:<col>" part of an execution error.
func templateLocation(err error) string {
	msg := strings.TrimPrefix(err.Error(), "template: ")
	if i := strings.Index(msg, ": executing"); i > 0 {
		return msg[:i]
	}
	return "line unknown"
}

// templateRequest is the Vault call of {{ secret PATH ARGS... }}: arguments
// are key=value pairs sent with PUT.
func templateRequest(path string, args []string) (vault.Request, error) {
	apiPath, query, err := splitSecretPath(path)
	if err != nil {
		return vault.Request{}, err
	}
	r := vault.Request{Method: http.MethodGet, Path: apiPath, Query: query}
	if len(args) > 0 {
		r.Method = http.MethodPut
		r.Body = map[string]any{}
		for _, a := range args {
			k, v, ok := strings.Cut(a, "=")
			if !ok || k == "" {
				return vault.Request{}, fmt.Errorf("secret %q: argument %q is not key=value", path, a)
			}
			r.Body[k] = v
		}
	}
	return r, nil
}
