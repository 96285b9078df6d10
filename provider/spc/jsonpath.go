package spc

import (
	"fmt"
	"strconv"
	"strings"
)

// step is one element of a jsonPath: a key of an object or an index of a list.
type Step struct {
	Key   string
	Index int
	IsKey bool
}

func (s Step) String() string {
	if s.IsKey {
		return "." + s.Key
	}
	return "[" + strconv.Itoa(s.Index) + "]"
}

// ParseJSONPath reads the selector subset objects accept: an optional "$",
// then .key, ["key with dots"] and [index] steps, e.g.
// $.data.data.db.host or .data.keys[0].
func ParseJSONPath(p string) ([]Step, error) {
	bad := func(why string) error {
		return fmt.Errorf("jsonPath %q %s: write it like .data.data.db.host, .data.list[0] or .data[\"key.with.dots\"]", p, why)
	}
	rest := strings.TrimPrefix(strings.TrimSpace(p), "$")
	if rest == "" {
		return nil, bad("selects nothing")
	}
	var steps []Step
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
			steps = append(steps, Step{Key: rest[:end], IsKey: true})
			rest = rest[end:]
		case strings.HasPrefix(rest, "["):
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return nil, bad("has a [ without ]")
			}
			inner := rest[1:end]
			rest = rest[end+1:]
			if q, err := strconv.Unquote(inner); err == nil && len(inner) > 1 && (inner[0] == '"' || inner[0] == '\'') {
				steps = append(steps, Step{Key: q, IsKey: true})
				continue
			}
			n, err := strconv.Atoi(inner)
			if err != nil || n < 0 {
				return nil, bad(fmt.Sprintf("has [%s], neither an index nor a quoted key", inner))
			}
			steps = append(steps, Step{Index: n})
		default:
			return nil, bad(fmt.Sprintf("has %q where . or [ should be", rest[:1]))
		}
	}
	return steps, nil
}

// PathString writes steps back as a jsonPath, e.g. for errors: .data.keys[0].
func PathString(steps []Step) string {
	var b strings.Builder
	for _, s := range steps {
		b.WriteString(s.String())
	}
	return b.String()
}
