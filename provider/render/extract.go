package render

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/vaultcsi/vault-csi-provider/provider/spc"
)

var (
	// ErrSecretKeyNotFound means the response has no value under secretKey.
	ErrSecretKeyNotFound = errors.New("secret key not found")
	// ErrDecode means a value is not in the object's declared encoding.
	ErrDecode = errors.New("value not in the declared encoding")
)

// Extracted is what one object puts in its file (or, with layout
// directory, its files), and what its version covers.
type Extracted struct {
	Content []byte
	// Files are the files of a directory object, by key.
	Files map[string][]byte
	// Versioned is the part of the response the version is computed over: the
	// file content, or for a whole-response object its data, so that envelope
	// fields such as request_id do not change the version.
	Versioned []byte
}

// Extract picks the object's value out of a Vault response body: secretKey
// from data.data (KV v2), else data; jsonPath from the whole response; else
// the whole response, as hashicorp's provider writes it, or with layout
// directory a file per key. Strings are written raw, other values as JSON.
func Extract(o spc.Object, body []byte) (Extracted, error) {
	var envelope struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &envelope); err != nil {
		return Extracted{}, fmt.Errorf("object %q: response from %s is not a JSON object", o.Name, o.Call.Path)
	}
	var raw json.RawMessage
	var err error
	switch {
	case o.Selector != nil:
		raw, err = selectPath(o, body)
	case o.Key != "":
		raw, err = lookupKey(o, envelope.Data)
	case o.Layout == spc.LayoutDirectory:
		raw = secretData(envelope.Data)
	default:
		return Extracted{Content: body, Versioned: compact(envelope.Data)}, nil
	}
	if err != nil {
		return Extracted{}, err
	}
	return extracted(o, raw)
}

// extracted is what the value raw, picked out of a response, puts in the
// object's file or files.
func extracted(o spc.Object, raw json.RawMessage) (Extracted, error) {
	if o.Layout == spc.LayoutDirectory {
		files, err := directoryFiles(o, raw)
		if err != nil {
			return Extracted{}, err
		}
		return Extracted{Files: files, Versioned: compact(raw)}, nil
	}
	decoded, err := decode(o, fileValue(raw))
	if err != nil {
		return Extracted{}, err
	}
	return Extracted{Content: decoded, Versioned: decoded}, nil
}

// secretData is a response's secret: data.data for KV v2 (data holding data
// and metadata), else data.
func secretData(data json.RawMessage) json.RawMessage {
	var fields map[string]json.RawMessage
	if json.Unmarshal(data, &fields) == nil {
		if inner, ok := fields["data"]; ok {
			if _, kv2 := fields["metadata"]; kv2 && len(fields) == 2 {
				return inner
			}
		}
	}
	return data
}

func lookupKey(o spc.Object, data json.RawMessage) (json.RawMessage, error) {
	var fields map[string]json.RawMessage
	if len(data) == 0 || json.Unmarshal(data, &fields) != nil || fields == nil {
		return nil, fmt.Errorf("%w: object %q: %s returned no data object to take secretKey %q from: remove secretKey to get the whole response", ErrSecretKeyNotFound, o.Name, o.Call.Path, o.Key)
	}
	var nested map[string]json.RawMessage
	if inner, ok := fields["data"]; ok && json.Unmarshal(inner, &nested) == nil {
		if v, ok := nested[o.Key]; ok {
			return v, nil
		}
	}
	if v, ok := fields[o.Key]; ok {
		return v, nil
	}
	return nil, fmt.Errorf("%w: object %q: %s has no key %q; keys there: %s", ErrSecretKeyNotFound, o.Name, o.Call.Path, o.Key, keyList(fields, nested))
}

// keyList names the keys available (never their values).
func keyList(fields, nested map[string]json.RawMessage) string {
	source := fields
	if nested != nil {
		source = nested
	}
	keys := make([]string, 0, len(source))
	for k := range source {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) == 0 {
		return "none"
	}
	const shown, longest = 20, 64 // a secret of 100,000 keys makes no megabyte error
	more := ""
	if len(keys) > shown {
		more = fmt.Sprintf(" and %d more", len(keys)-shown)
		keys = keys[:shown]
	}
	for i, k := range keys {
		if len(k) > longest {
			keys[i] = k[:longest] + "..."
		}
	}
	return strings.Join(keys, ", ") + more
}

func decode(o spc.Object, value []byte) ([]byte, error) {
	switch o.Encoding {
	case spc.EncodingBase64:
		out, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(value)))
		if err != nil {
			return nil, fmt.Errorf("%w: object %q: the value of %q is not valid base64: fix the value in Vault or set encoding: utf-8", ErrDecode, o.Name, o.Key)
		}
		return out, nil
	case spc.EncodingHex:
		out, err := hex.DecodeString(strings.TrimSpace(string(value)))
		if err != nil {
			return nil, fmt.Errorf("%w: object %q: the value of %q is not valid hex: fix the value in Vault or set encoding: utf-8", ErrDecode, o.Name, o.Key)
		}
		return out, nil
	default:
		return value, nil
	}
}

func compact(raw json.RawMessage) []byte {
	var b bytes.Buffer
	if len(raw) == 0 || json.Compact(&b, raw) != nil {
		return raw
	}
	return b.Bytes()
}
