package spc

import (
	"encoding/json"
	"errors"
	"fmt"
)

// decodeStrings reads a JSON object of strings, as the driver sends the
// attributes and secrets. Its errors never quote the input, which may hold
// a token.
func decodeStrings(raw string) (map[string]string, error) {
	var m map[string]string
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return nil, errors.New(jsonProblem(err))
	}
	return m, nil
}

// jsonProblem describes a JSON error without quoting the input.
func jsonProblem(err error) string {
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		return fmt.Sprintf("syntax error at byte %d", syntax.Offset)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		return fmt.Sprintf("a %s where a %s was expected", typ.Value, typ.Type)
	}
	return "malformed JSON"
}
