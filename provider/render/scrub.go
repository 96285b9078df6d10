package render

import (
	"errors"
	"strings"
	"text/template"
)

// notShown stands for a value an error would otherwise quote.
const notShown = "a value (not shown: it may be secret)"

// quotesValue are the messages of text/template that end with the value
// they failed on; the value is cut off.
var quotesValue = []string{
	"range can't iterate over ",
	"if/with can't use ",
	"can't use ",
	"range over send-only channel ",
}

// valueFree are the errors text/template's builtin functions return whose
// text names only types, fields and functions; those that end with a number
// taken from the data (index out of range: 7) keep only their beginning.
var valueFree = []struct {
	prefix   string
	keepTail bool
}{
	{"wrong number of args", true},
	{"incompatible types for comparison", true},
	{"invalid type for comparison", true},
	{"missing argument for comparison", true},
	{"cannot index slice/array with", true},
	{"can't index item of type", true},
	{"can't slice item of type", true},
	{"index of ", true},
	{"slice of ", true},
	{"len of ", true},
	{"arg ", true},
	{"index out of range", false},
	{"invalid slice index", false},
	{"too many slice indexes", false},
}

// scrub takes out of a template's execution error any data the template
// read, so that no secret reaches the pod's events or the logs.
func scrub(err error) error {
	var exec template.ExecError
	if !errors.As(err, &exec) {
		return err
	}
	msg := exec.Err.Error()
	if inner := errors.Unwrap(exec.Err); inner != nil { // error calling <function>: <inner>
		head := strings.TrimSuffix(msg, inner.Error())
		return scrubbed{msg: head + scrubCall(inner), err: err}
	}
	for _, q := range quotesValue {
		if i := strings.Index(msg, q); i >= 0 {
			return scrubbed{msg: msg[:i+len(q)] + notShown, err: err}
		}
	}
	return err // the remaining messages name fields, keys and types of the template's own text
}

// scrubCall is what may be shown of a function's error.
func scrubCall(err error) string {
	var own helperError
	if errors.As(err, &own) {
		return own.msg
	}
	msg := err.Error()
	for _, v := range valueFree {
		if strings.HasPrefix(msg, v.prefix) {
			if v.keepTail {
				return msg
			}
			return v.prefix
		}
	}
	return "the function failed on " + notShown
}

// scrubbed is an error with a message of our own and the original chain.
type scrubbed struct {
	msg string
	err error
}

func (e scrubbed) Error() string { return e.msg }
func (e scrubbed) Unwrap() error { return e.err }
