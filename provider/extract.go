package provider

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
)

var (
	// ErrSecretKeyNotFound means the response has no value under secretKey.
	ErrSecretKeyNotFound = errors.New("secret key not found")
	// ErrDecode means a value is not in the object's declared encoding.
	ErrDecode = errors.New("value not in the declared encoding")
)

// extracted is what one object puts in its file (or, with layout
// directory, its files), and what its version covers.
type extracted struct {
	content []byte
	// files are the files of a directory object, by key.
	files map[string][]byte
	// versioned is the part of the response the version is computed over: the
	// file content, or for a whole-response object its data, so that envelope
	// fields such as request_id do not change the version.
	versioned []byte
}

// extract picks the object's value out of a Vault response body.
//
// With secretKey, the value is looked up in data.data (KV v2) and then in data;
// with jsonPath, it is selected from the whole response. Strings are written
// raw, other JSON values as JSON. Without either the file is the whole
// response, as hashicorp/vault-csi-provider writes it, unless the layout is
// directory: then each key of the secret (data.data for KV v2, else data)
// or of the selected value becomes a file.
func extract(o Object, body []byte) (extracted, error) {
	var envelope struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &envelope); err != nil {
		return extracted{}, fmt.Errorf("object %q: response from %s is not a JSON object", o.Name, o.apiPath)
	}
	var raw json.RawMessage
	var err error
	switch {
	case o.selector != nil:
		raw, err = selectPath(o, body)
	case o.Key != "":
		raw, err = lookupKey(o, envelope.Data)
	case o.Layout == layoutDirectory:
		raw = secretData(envelope.Data)
	default:
		return extracted{content: body, versioned: compact(envelope.Data)}, nil
	}
	if err != nil {
		return extracted{}, err
	}
	if o.Layout == layoutDirectory {
		files, err := directoryFiles(o, raw)
		if err != nil {
			return extracted{}, err
		}
		return extracted{files: files, versioned: compact(raw)}, nil
	}
	decoded, err := decode(o, fileValue(raw))
	if err != nil {
		return extracted{}, err
	}
	return extracted{content: decoded, versioned: decoded}, nil
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

func lookupKey(o Object, data json.RawMessage) (json.RawMessage, error) {
	var fields map[string]json.RawMessage
	if len(data) == 0 || json.Unmarshal(data, &fields) != nil || fields == nil {
		return nil, fmt.Errorf("%w: object %q: %s returned no data object to take secretKey %q from: remove secretKey to get the whole response", ErrSecretKeyNotFound, o.Name, o.apiPath, o.Key)
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
	return nil, fmt.Errorf("%w: object %q: %s has no key %q; keys there: %s", ErrSecretKeyNotFound, o.Name, o.apiPath, o.Key, keyList(fields, nested))
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
	return strings.Join(keys, ", ")
}

func decode(o Object, value []byte) ([]byte, error) {
	switch o.Encoding {
	case encodingBase64:
		out, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(value)))
		if err != nil {
			return nil, fmt.Errorf("%w: object %q: the value of %q is not valid base64: fix the value in Vault or set encoding: utf-8", ErrDecode, o.Name, o.Key)
		}
		return out, nil
	case encodingHex:
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
