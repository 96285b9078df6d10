package provider

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// step is one element of a jsonPath: a key of an object or an index of a list.
type step struct {
	key   string
	index int
	isKey bool
}

func (s step) String() string {
	if s.isKey {
		return "." + s.key
	}
	return "[" + strconv.Itoa(s.index) + "]"
}

// parseJSONPath reads the selector subset objects accept: an optional "$",
// then .key, ["key with dots"] and [index] steps, e.g.
// $.data.data.db.host or .data.keys[0].
func parseJSONPath(p string) ([]step, error) {
	bad := func(why string) error {
		return fmt.Errorf("jsonPath %q %s: write it like .data.data.db.host, .data.list[0] or .data[\"key.with.dots\"]", p, why)
	}
	rest := strings.TrimPrefix(strings.TrimSpace(p), "$")
	if rest == "" {
		return nil, bad("selects nothing")
	}
	var steps []step
	for rest != "" {
		switch {
		case strings.HasPrefix(rest, "."):
			rest = rest[1:]
			end := strings.IndexAny(rest, ".[")
			if end < 0 {
				end = len(rest)
			}
			if end == 0 {
				return nil, bad("has an empty key")
			}
			steps = append(steps, step{key: rest[:end], isKey: true})
			rest = rest[end:]
		case strings.HasPrefix(rest, "["):
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return nil, bad("has a [ without ]")
			}
			inner := rest[1:end]
			rest = rest[end+1:]
			if q, err := strconv.Unquote(inner); err == nil && len(inner) > 1 && (inner[0] == '"' || inner[0] == '\'') {
				steps = append(steps, step{key: q, isKey: true})
				continue
			}
			n, err := strconv.Atoi(inner)
			if err != nil || n < 0 {
				return nil, bad(fmt.Sprintf("has [%s], neither an index nor a quoted key", inner))
			}
			steps = append(steps, step{index: n})
		default:
			return nil, bad(fmt.Sprintf("has %q where . or [ should be", rest[:1]))
		}
	}
	return steps, nil
}

// selectPath walks the response by the object's jsonPath. Errors name the
// keys present, never values.
func selectPath(o Object, body []byte) (json.RawMessage, error) {
	cur := json.RawMessage(body)
	for i, s := range o.selector {
		at := "$" + joinSteps(o.selector[:i])
		if s.isKey {
			var fields map[string]json.RawMessage
			if json.Unmarshal(cur, &fields) != nil || fields == nil {
				return nil, fmt.Errorf("%w: object %q: jsonPath %q: %s is not an object", ErrSecretKeyNotFound, o.Name, o.JSONPath, at)
			}
			v, ok := fields[s.key]
			if !ok {
				return nil, fmt.Errorf("%w: object %q: jsonPath %q: %s has no key %q; keys there: %s", ErrSecretKeyNotFound, o.Name, o.JSONPath, at, s.key, keyList(fields, nil))
			}
			cur = v
			continue
		}
		var list []json.RawMessage
		if json.Unmarshal(cur, &list) != nil {
			return nil, fmt.Errorf("%w: object %q: jsonPath %q: %s is not a list", ErrSecretKeyNotFound, o.Name, o.JSONPath, at)
		}
		if s.index >= len(list) {
			return nil, fmt.Errorf("%w: object %q: jsonPath %q: %s has %d elements, no [%d]", ErrSecretKeyNotFound, o.Name, o.JSONPath, at, len(list), s.index)
		}
		cur = list[s.index]
	}
	return cur, nil
}

func joinSteps(steps []step) string {
	var b strings.Builder
	for _, s := range steps {
		b.WriteString(s.String())
	}
	return b.String()
}

// fileValue is how a JSON value is written to a file: strings raw, anything
// else as compact JSON.
func fileValue(raw json.RawMessage) []byte {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []byte(s)
	}
	return compact(raw)
}

// directoryFiles splits a JSON object into one file per key, named
// <object>/<key>, decoded by the object's encoding.
func directoryFiles(o Object, raw json.RawMessage) (map[string][]byte, error) {
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	if dec.Decode(&fields) != nil || fields == nil {
		return nil, fmt.Errorf("%w: object %q: layout directory needs an object of keys, and the selected value is not one: select one with jsonPath", ErrSecretKeyNotFound, o.Name)
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	files := make(map[string][]byte, len(fields))
	for _, k := range keys {
		if k == "" || k == "." || strings.HasPrefix(k, "..") || strings.ContainsAny(k, "/\x00") || len(k) > maxElementLength {
			return nil, fmt.Errorf("object %q: key %q cannot be a file name (empty, '/', leading '..' or over %d bytes): rename it in Vault or pick keys with secretKey", o.Name, k, maxElementLength)
		}
		value, err := decode(Object{Name: o.Name, Key: k, Encoding: o.Encoding}, fileValue(fields[k]))
		if err != nil {
			return nil, err
		}
		files[k] = value
	}
	return files, nil
}
