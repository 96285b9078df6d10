package render

import (
	"bytes"
	"errors"

	"github.com/go-json-experiment/json/jsontext"
	json "github.com/go-json-experiment/json/v1"
)

// errNotHere ends a keyValue walk that did not find the key as expected.
var errNotHere = errors.New("not found where expected")

// keyValue finds secretKey in one pass over a Vault answer, decoding only
// what leads to it: data.data.<key> (KV v2), else data.<key>, as lookupKey
// would. Every warm mount takes each of its objects this way, so a read is
// parsed once, not once per level. ok is false for anything else (no such
// key, a name written with escapes, a repeated name): lookupKey then
// decides, and says what is missing.
func keyValue(body []byte, key string) (json.RawMessage, bool) {
	// Names are not checked for repeats (a repeated name is taken as
	// encoding/json takes it: the last one counts), which would cost an
	// allocation per name.
	d := jsontext.NewDecoder(bytes.NewBuffer(body), jsontext.AllowDuplicateNames(true))
	var inner, direct jsontext.Value
	take := func(into *jsontext.Value) error {
		v, err := d.ReadValue()
		*into = v.Clone()
		return err
	}
	err := eachMember(d, func(name jsontext.Value) error {
		if !isName(name, "data") {
			if bytes.EqualFold(name, []byte(`"data"`)) {
				return errNotHere // encoding/json would take "Data" too
			}
			return d.SkipValue()
		}
		inner, direct = nil, nil
		if d.PeekKind() != '{' {
			return errNotHere
		}
		return eachMember(d, func(name jsontext.Value) error {
			if isName(name, "data") {
				inner = nil
				if d.PeekKind() == '{' {
					return eachMember(d, func(name jsontext.Value) error {
						if isName(name, key) {
							return take(&inner)
						}
						return d.SkipValue()
					})
				}
			}
			if isName(name, key) {
				return take(&direct)
			}
			return d.SkipValue()
		})
	})
	switch {
	case err != nil:
		return nil, false
	case inner != nil:
		return inner, true
	case direct != nil:
		return direct, true
	}
	return nil, false
}

// eachMember reads an object, calling member with each name; member reads
// or skips the value.
func eachMember(d *jsontext.Decoder, member func(name jsontext.Value) error) error {
	if t, err := d.ReadToken(); err != nil || t.Kind() != '{' {
		return errNotHere
	}
	for d.PeekKind() != '}' {
		name, err := d.ReadValue()
		if err != nil {
			return err
		}
		if err := member(name); err != nil {
			return err
		}
	}
	_, err := d.ReadToken()
	return err
}

// isName reports whether a member's name, as written, is want; a name
// written with escapes is not, and the caller falls back.
func isName(name jsontext.Value, want string) bool {
	return len(name) == len(want)+2 && string(name[1:len(name)-1]) == want && bytes.IndexByte(name, '\\') < 0
}
