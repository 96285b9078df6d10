package render

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Templates that would run for hours or build gigabytes, by every syntax
// that reaches the same place: each stops at its budget, names the object
// and allocates little.
func TestTemplateBudget(t *testing.T) {
	nested := "1" + strings.Repeat(",1", 5000)
	read, _ := stubReads(map[string]string{
		"s":    `{"data":{"list":[` + nested + `],"word":"abcdefghij"}}`,
		"deep": `{"data":{"v":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}}`,
	})
	tests := []struct {
		name, text, want string
	}{
		{"range over a number through with", `{{ with 1000000000000 }}{{ range . }}{{ end }}{{ end }}`, "steps"},
		{"nested ranges over split", `{{ range split "," "` + nested + `" }}{{ range split "," "` + nested + `" }}{{ end }}{{ end }}`, "steps"},
		{"nested ranges over a secret", `{{ $s := secret "s" }}{{ range $s.Data.list }}{{ range $s.Data.list }}{{ end }}{{ end }}`, "steps"},
		{"exponential calls", tripling(14), "steps"},
		{"nested helper calls", `{{ range split "," "` + nested + `" }}{{ range split "," "` + nested + `" }}{{ trimSpace (trimSpace "x") }}{{ end }}{{ end }}`, "steps"},
		{"printf width", `{{ printf "%999999999d" 1 }}`, "bytes"},
		{"printf width from an argument", `{{ printf "%*d" 999999999 1 }}`, "bytes"},
		{"printf precision", `{{ printf "%.999999999f" 1.0 }}`, "bytes"},
		{"replaceAll growth", `{{ $a := replaceAll "" "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" "` + strings.Repeat("y", 4000) + `" }}{{ $b := replaceAll "" $a $a }}`, "bytes"},
		{"repeated doubling", `{{ $a := "` + strings.Repeat("z", 1000) + `" }}` + strings.Repeat(`{{ $a = printf "%s%s" $a $a }}`, 30), "bytes"},
		{"toJSONPretty of deep nesting", `{{ toJSONPretty (secret "deep").Data }}`, "bytes"},
		{"escapers", `{{ $a := "` + strings.Repeat("<", 1<<19) + `" }}` + strings.Repeat(`{{ $a = js (html $a) }}`, 10), "bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			limits := DefaultLimits
			limits.Time = time.Minute // -race makes steps slower: the steps run out first, as they do in production
			_, err := Template(context.Background(), templateObject(t, tc.text), read, NewBudget(limits))
			runtime.ReadMemStats(&after)
			require.ErrorIs(t, err, ErrBudget)
			assert.Contains(t, err.Error(), `object "out": template: out:1:`)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "_step", "the metering is not the user's")
			assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(512<<20), "allocated at most a few times the byte budget")
		})
	}
}

// A template's execution time, not its syntax, is what the Time limit and
// the mount's context stop.
func TestTemplateStopsOnTimeAndContext(t *testing.T) {
	loop := `{{ range split "," "` + "1" + strings.Repeat(",1", 100000) + `" }}{{ range split "," "` + "1" + strings.Repeat(",1", 100000) + `" }}{{ end }}{{ end }}`
	read, _ := stubReads(nil)
	o := templateObject(t, loop)

	limits := Limits{Steps: 1 << 50, Bytes: 32 << 20, Time: 100 * time.Millisecond}
	_, err := Template(context.Background(), o, read, NewBudget(limits))
	require.ErrorIs(t, err, ErrBudget)
	assert.Contains(t, err.Error(), "of execution")

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	limits.Time = time.Hour
	_, err = Template(ctx, o, read, NewBudget(limits))
	require.ErrorIs(t, err, context.DeadlineExceeded, "the mount's deadline ends the template")
	assert.Contains(t, err.Error(), `object "out"`)
}

// The budget is far above what real templates need: a thousand keys, each
// formatted, encoded and joined.
func TestTemplateBudgetFitsRealTemplates(t *testing.T) {
	var keys []string
	for i := range 1000 {
		keys = append(keys, `"k`+strconv.Itoa(i)+`":"`+strings.Repeat("v", 200)+`"`)
	}
	read, _ := stubReads(map[string]string{"s": `{"data":{"data":{` + strings.Join(keys, ",") + `}}}`})
	o := templateObject(t, `{{ with secret "s" }}{{ range $k, $v := .Data.data }}{{ printf "%s=%q" $k (base64Encode $v) | toUpper }}{{ end }}{{ toJSONPretty .Data }}{{ end }}`)
	out, err := Template(context.Background(), o, read, NewBudget(DefaultLimits))
	require.NoError(t, err)
	assert.Greater(t, len(out.Output), 50_000)
}

// tripling is a template of n nested templates, each calling the next three
// times: 3^n calls, none recursive.
func tripling(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{{ define "t%d" }}{{ template "t%d" }}{{ template "t%d" }}{{ template "t%d" }}{{ end }}`, i, i+1, i+1, i+1)
	}
	fmt.Fprintf(&b, `{{ define "t%d" }}x{{ end }}{{ template "t0" }}`, n)
	return b.String()
}
