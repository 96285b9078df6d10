package render

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"text/template"

	"github.com/vaultcsi/vault-csi-provider/provider/spc"
)

// A template object renders its file from secrets it names, in Vault
// Agent's syntax: {{ with secret "secret/data/app" }}{{ .Data.data.password }}{{ end }};
// a secret with arguments is written (PUT). A missing key is an error naming
// the object and the line.

// templateSecret is what {{ secret }} returns, with Vault Agent's field names.
type templateSecret struct {
	RequestID     string         `json:"request_id"`
	LeaseID       string         `json:"lease_id"`
	LeaseDuration int            `json:"lease_duration"`
	Renewable     bool           `json:"renewable"`
	Data          map[string]any `json:"data"`
	Warnings      []string       `json:"warnings"`
}

// Rendered is a template's output and the data of every secret it read,
// which its version covers too (a secret used only in a condition counts).
type Rendered struct {
	Output    []byte
	Versioned []byte
}

// ReadFunc reads a template's secrets (the mount flow's, with its session and caches).
type ReadFunc func(ctx context.Context, c spc.Call) ([]byte, error)

// readError marks an error of the ReadFunc, for the mount's gRPC code.
type readError struct{ err error }

func (e readError) Error() string { return e.err.Error() }
func (e readError) Unwrap() error { return e.err }

// Template executes o's template within the mount's budget, reading secrets
// through read; it stops at the first step past ctx's end or a limit.
func Template(ctx context.Context, o spc.Object, read ReadFunc, mountBudget *Budget) (Rendered, error) {
	b := newBudget(ctx, mountBudget)
	secrets := secretReader{ctx: ctx, budget: b, read: read, seen: map[string]*readSecret{}}
	t, err := o.Compiled.Clone()
	if err != nil {
		return Rendered{}, fmt.Errorf("object %q: template: %w", o.Name, err)
	}
	funcs := templateFuncs(b, secrets.secret)
	maps.Copy(funcs, meteredBuiltins(b))
	funcs[spc.StepFunction] = b.step
	out := boundedBuffer{budget: b, limit: MaxResponseBytes}
	if err := t.Funcs(funcs).Execute(&out, nil); err != nil {
		return Rendered{}, templateError(o, err)
	}
	return Rendered{Output: out.Bytes(), Versioned: secrets.versioned()}, nil
}

// secretReader is {{ secret }} for one execution: each call read, decoded
// and charged to the budget once.
type secretReader struct {
	ctx    context.Context
	budget *budget
	read   ReadFunc

	mu   sync.Mutex
	seen map[string]*readSecret // Call.Key -> what it read
}

type readSecret struct {
	secret *templateSecret
	data   []byte // compacted, for the version
}

func (r *secretReader) secret(path string, args ...string) (*templateSecret, error) {
	if err := r.budget.helperStep(); err != nil {
		return nil, err
	}
	c, err := spc.SecretCall(path, args)
	if err != nil {
		return nil, helperError{err.Error()} // names the template's own path and arguments
	}
	r.mu.Lock()
	s, ok := r.seen[c.Key()]
	r.mu.Unlock()
	if ok {
		return s.secret, nil
	}
	body, err := timeReading(r.budget, func() ([]byte, error) { return r.read(r.ctx, c) })
	if err != nil {
		return nil, readError{err}
	}
	if err := r.budget.spend(2 * len(body)); err != nil { // decoded and kept for the version
		return nil, err
	}
	s, err = decodeSecret(c, body)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.seen[c.Key()] = s
	r.mu.Unlock()
	return s.secret, nil
}

// decodeSecret reads Vault's response, numbers as written (1000000, not 1e+06).
func decodeSecret(c spc.Call, body []byte) (*readSecret, error) {
	var raw struct {
		templateSecret
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, helperError{fmt.Sprintf("the response from %s is not a JSON object", c.Path)}
	}
	s := raw.templateSecret
	if len(raw.Data) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw.Data))
		dec.UseNumber()
		if err := dec.Decode(&s.Data); err != nil {
			return nil, helperError{fmt.Sprintf("the data from %s is not a JSON object", c.Path)}
		}
	}
	return &readSecret{secret: &s, data: compact(raw.Data)}, nil
}

// versioned is the data of every secret read, in key order: a secret used
// only in a condition changes the version too.
func (r *secretReader) versioned() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out bytes.Buffer
	for _, k := range slices.Sorted(maps.Keys(r.seen)) {
		out.WriteString(k)
		out.WriteByte(0)
		out.Write(r.seen[k].data)
		out.WriteByte(0)
	}
	return out.Bytes()
}

// boundedBuffer refuses to grow past limit (one response's worth).
type boundedBuffer struct {
	bytes.Buffer
	budget *budget
	limit  int
}

var errTemplateTooLarge = fmt.Errorf("%w: the template's output is over %d bytes", ErrTooLarge, MaxResponseBytes)

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.limit {
		return 0, errTemplateTooLarge
	}
	if err := b.budget.spend(len(p)); err != nil {
		return 0, err
	}
	return b.Buffer.Write(p)
}

// templateError names the object and the line and keeps the error's chain
// (for the gRPC code); its text holds nothing the template read (scrub).
func templateError(o spc.Object, err error) error {
	var re readError
	switch {
	case errors.As(err, &re):
		return fmt.Errorf("object %q: template: %s: %w", o.Name, templateLocation(err), re.err)
	case errors.Is(err, ErrBudget), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("object %q: template: %s: %w", o.Name, templateLocation(err), innermost(err))
	case errors.Is(err, ErrTooLarge):
		return fmt.Errorf("object %q: template: %w", o.Name, err)
	}
	return fmt.Errorf("object %q: template: %w", o.Name, spc.TrimTemplateError(scrub(err)))
}

// innermost is the error a helper (or the step) returned, without
// text/template's "executing ... at <_step>: error calling _step: ".
func innermost(err error) error {
	var exec template.ExecError
	if !errors.As(err, &exec) {
		return err
	}
	if inner := errors.Unwrap(exec.Err); inner != nil {
		return inner
	}
	return err
}

// templateLocation is the "<object>:<line>:<col>" part of an execution error.
func templateLocation(err error) string {
	msg := strings.TrimPrefix(err.Error(), "template: ")
	if i := strings.Index(msg, ": executing"); i > 0 {
		return msg[:i]
	}
	return "line unknown"
}
