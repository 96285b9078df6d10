package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/vaultcsi/vault-csi-provider/provider/spc"
)

// selectPath walks the response by the object's jsonPath. Errors name the
// keys present, never values.
func selectPath(o spc.Object, body []byte) (json.RawMessage, error) {
	cur := json.RawMessage(body)
	for i, s := range o.Selector {
		at := "$" + spc.PathString(o.Selector[:i])
		if s.IsKey {
			var fields map[string]json.RawMessage
			if json.Unmarshal(cur, &fields) != nil || fields == nil {
				return nil, fmt.Errorf("%w: object %q: jsonPath %q: %s is not an object", ErrSecretKeyNotFound, o.Name, o.JSONPath, at)
			}
			v, ok := fields[s.Key]
			if !ok {
				return nil, fmt.Errorf("%w: object %q: jsonPath %q: %s has no key %q; keys there: %s", ErrSecretKeyNotFound, o.Name, o.JSONPath, at, s.Key, keyList(fields, nil))
			}
			cur = v
			continue
		}
		var list []json.RawMessage
		if json.Unmarshal(cur, &list) != nil {
			return nil, fmt.Errorf("%w: object %q: jsonPath %q: %s is not a list", ErrSecretKeyNotFound, o.Name, o.JSONPath, at)
		}
		if s.Index >= len(list) {
			return nil, fmt.Errorf("%w: object %q: jsonPath %q: %s has %d elements, no [%d]", ErrSecretKeyNotFound, o.Name, o.JSONPath, at, len(list), s.Index)
		}
		cur = list[s.Index]
	}
	return cur, nil
}

// fileValue is how a JSON value is written to a file: strings raw, anything
// else as compact JSON.
func fileValue(raw json.RawMessage) []byte {
	if n := len(raw); n >= 2 && raw[0] == '"' && bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return append([]byte(nil), raw[1:n-1]...) // a string without escapes is its text
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []byte(s)
	}
	return compact(raw)
}

// directoryFiles splits a JSON object into one file per key, named
// <object>/<key>, decoded by the object's encoding.
func directoryFiles(o spc.Object, raw json.RawMessage) (map[string][]byte, error) {
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
		if k == "" || k == "." || strings.HasPrefix(k, "..") || strings.ContainsAny(k, "/\x00") || len(k) > spc.MaxElementLength {
			return nil, fmt.Errorf("object %q: key %q cannot be a file name (empty, '/', leading '..' or over %d bytes): rename it in Vault or pick keys with secretKey", o.Name, k, spc.MaxElementLength)
		}
		value, err := decode(spc.Object{Name: o.Name, Key: k, Encoding: o.Encoding}, fileValue(fields[k]))
		if err != nil {
			return nil, err
		}
		files[k] = value
	}
	return files, nil
}
