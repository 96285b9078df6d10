package render

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"text/template"
	"unicode/utf8"
)

// Every helper a template calls is a step, and reserves an upper bound of
// the bytes it will produce before it produces them: no chain of helpers
// allocates past the Limits (printf "%999999999d", toJSONPretty of a deep
// secret).

// helperError is a helper's error; its text holds no value the template read.
type helperError struct{ msg string }

func (e helperError) Error() string { return e.msg }

// templateFuncs binds spc.TemplateHelpers to b; secret is bound per mount.
func templateFuncs(b *budget, secret func(string, ...string) (*templateSecret, error)) template.FuncMap {
	return template.FuncMap{
		"secret":          secret,
		"base64Encode":    encodeWith(b, base64.StdEncoding),
		"base64Decode":    decodeWith(b, base64.StdEncoding),
		"base64URLEncode": encodeWith(b, base64.URLEncoding),
		"base64URLDecode": decodeWith(b, base64.URLEncoding),
		"toJSON":          toJSON(b, json.Marshal),
		"toJSONPretty":    toJSON(b, func(v any) ([]byte, error) { return json.MarshalIndent(v, "", "  ") }),
		"toLower":         changeCase(b, strings.ToLower),
		"toUpper":         changeCase(b, strings.ToUpper),
		"trimSpace":       func(s string) (string, error) { return strings.TrimSpace(s), b.helperStep() },
		"split":           func(sep, s string) ([]string, error) { return split(b, sep, s) },
		"join":            func(sep string, list any) (string, error) { return join(b, sep, list) },
		"replaceAll":      func(old, new, s string) (string, error) { return replaceAll(b, old, new, s) },
	}
}

// meteredBuiltins replace text/template's printing functions (unbounded otherwise).
func meteredBuiltins(b *budget) template.FuncMap {
	return template.FuncMap{
		"printf": func(format string, args ...any) (string, error) {
			n := len(format) + 6*sizeOf(args, b.remaining()) + formatWidths(format, b.remaining())
			return meter(b, n, func() (string, error) { return fmt.Sprintf(format, args...), nil })
		},
		"print":    printer(b, fmt.Sprint),
		"println":  printer(b, fmt.Sprintln),
		"html":     printer(b, template.HTMLEscaper),
		"js":       printer(b, template.JSEscaper),
		"urlquery": printer(b, template.URLQueryEscaper),
	}
}

// meter is one helper call: a step, then at most n bytes.
func meter(b *budget, n int, f func() (string, error)) (string, error) {
	if err := b.helperStep(); err != nil {
		return "", err
	}
	return produce(b, n, f)
}

// helperStep counts a helper call as a step, nested calls included.
func (b *budget) helperStep() error {
	_, err := b.step()
	return err
}

// printer meters a function that prints its arguments, escaping them at
// most six bytes for one (js's \u0027).
func printer(b *budget, print func(...any) string) func(...any) (string, error) {
	return func(args ...any) (string, error) {
		return meter(b, 6*sizeOf(args, b.remaining())+1, func() (string, error) { return print(args...), nil })
	}
}

func encodeWith(b *budget, enc *base64.Encoding) func(string) (string, error) {
	return func(s string) (string, error) {
		return meter(b, enc.EncodedLen(len(s)), func() (string, error) { return enc.EncodeToString([]byte(s)), nil })
	}
}

func decodeWith(b *budget, enc *base64.Encoding) func(string) (string, error) {
	return func(s string) (string, error) {
		return meter(b, len(s), func() (string, error) {
			out, err := enc.DecodeString(strings.TrimSpace(s))
			if err != nil {
				return "", helperError{"the value is not valid base64"}
			}
			return string(out), nil
		})
	}
}

// toJSON reserves six bytes for every byte of the value (JSON escapes <
// as \u003c), indentation included, and keeps what the JSON takes.
func toJSON(b *budget, marshal func(any) ([]byte, error)) func(any) (string, error) {
	return func(v any) (string, error) {
		return meter(b, 6*sizeOf(v, b.remaining()), func() (string, error) {
			out, err := marshal(v)
			if err != nil {
				return "", helperError{"the value cannot be written as JSON"}
			}
			return string(out), nil
		})
	}
}

// changeCase reserves three bytes for one (invalid UTF-8 becomes U+FFFD).
func changeCase(b *budget, f func(string) string) func(string) (string, error) {
	return func(s string) (string, error) {
		return meter(b, 3*len(s)+utf8.UTFMax, func() (string, error) { return f(s), nil })
	}
}

// split charges a string header for every part.
func split(b *budget, sep, s string) ([]string, error) {
	if err := b.helperStep(); err != nil {
		return nil, err
	}
	parts := strings.Count(s, sep) + 1
	if err := b.spend(16 * parts); err != nil {
		return nil, err
	}
	return strings.Split(s, sep), nil
}

// join accepts what templates hold: []string, or []any from Vault's JSON.
func join(b *budget, sep string, list any) (string, error) {
	var n int
	switch l := list.(type) {
	case []string:
		n = sizeOf(l, b.remaining()) + len(sep)*len(l)
	case []any:
		n = 6*sizeOf(l, b.remaining()) + len(sep)*len(l)
	default:
		return "", helperError{fmt.Sprintf("join: %T is not a list", list)}
	}
	return meter(b, n, func() (string, error) {
		if l, ok := list.([]any); ok {
			parts := make([]string, len(l))
			for i, v := range l {
				parts[i] = fmt.Sprint(v)
			}
			return strings.Join(parts, sep), nil
		}
		return strings.Join(list.([]string), sep), nil
	})
}

// replaceAll reserves exactly what the result takes.
func replaceAll(b *budget, old, new, s string) (string, error) {
	count := utf8.RuneCountInString(s) + 1 // "" matches before every rune and at the end
	if old != "" {
		count = strings.Count(s, old)
	}
	growth := len(new) - len(old)
	if growth > 0 && count > (b.remaining()-len(s))/growth {
		return "", b.overBytes()
	}
	return meter(b, len(s)+count*growth, func() (string, error) { return strings.ReplaceAll(s, old, new), nil })
}
