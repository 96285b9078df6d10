package spc

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"text/template"
	"text/template/parse"
)

// TemplateHelpers are the functions templates may call besides text/template's
// own; provider/render binds them.
var TemplateHelpers = []string{
	"secret", "base64Encode", "base64Decode", "base64URLEncode", "base64URLDecode", "toJSON", "toJSONPretty",
	"toLower", "toUpper", "trimSpace", "split", "join", "replaceAll",
}

// helperStubs lets a template parse (only the names are checked then).
func helperStubs() template.FuncMap {
	m := template.FuncMap{}
	for _, name := range TemplateHelpers {
		m[name] = func(...any) (any, error) { return nil, nil }
	}
	return m
}

// ParseTemplate checks a template's syntax; the object's name is the
// template's, so errors read "template: <object>:<line>: ...".
func ParseTemplate(name, text string) (*template.Template, error) {
	t, err := template.New(name).Option("missingkey=error").Funcs(helperStubs()).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("template: %w", TrimTemplateError(err))
	}
	for _, tt := range t.Templates() { // the template and those it defines
		if err := checkRanges(tt.Tree, tt.Root); err != nil {
			return nil, fmt.Errorf("template: %w", err)
		}
	}
	if _, err := callDepth(t, t.Name(), map[string]int{}); err != nil {
		return nil, fmt.Errorf("template: %s: %w", name, err)
	}
	for _, tt := range t.Templates() {
		meter(tt.Tree, tt.Root)
	}
	return t, nil
}

// MaxTemplateDepth bounds how deep {{ template }} calls nest, so that a
// template's stack is bounded by its text, not by the step budget.
const MaxTemplateDepth = 16

// callDepth is how deep name's {{ template }} calls nest (itself counted);
// a template that calls itself, directly or not, is refused: one that did
// grew 32 MiB of stack before its step budget stopped it.
func callDepth(t *template.Template, name string, depths map[string]int) (int, error) {
	if d, ok := depths[name]; ok {
		if d < 0 {
			return 0, fmt.Errorf("%q calls itself: templates may not recurse", name)
		}
		return d, nil
	}
	depths[name] = -1 // on the path
	deepest := 0
	if tt := t.Lookup(name); tt != nil && tt.Tree != nil {
		for _, callee := range calls(tt.Root, nil) {
			d, err := callDepth(t, callee, depths)
			if err != nil {
				return 0, err
			}
			deepest = max(deepest, d)
		}
	}
	if deepest+1 > MaxTemplateDepth {
		return 0, fmt.Errorf("{{ template }} calls nest over %d deep from %q", MaxTemplateDepth, name)
	}
	depths[name] = deepest + 1
	return deepest + 1, nil
}

// calls appends the templates n calls with {{ template }} to out.
func calls(n parse.Node, out []string) []string {
	switch n := n.(type) {
	case *parse.TemplateNode:
		return append(out, n.Name)
	case *parse.ListNode:
		if n == nil {
			return out
		}
		for _, c := range n.Nodes {
			out = calls(c, out)
		}
		return out
	}
	_ = eachList(n, func(l *parse.ListNode) error { out = calls(l, out); return nil }) // fails never
	return out
}

// StepFunction is called before every node a template executes and every
// range iteration; the renderer binds it to the budget, so that no syntax
// runs unmetered. Templates cannot name it: it is not in TemplateHelpers.
const StepFunction = "_step"

// meter puts a call to StepFunction before each node of every list in the
// tree: the bodies of if, with, range (once per iteration) and define.
func meter(tree *parse.Tree, n parse.Node) {
	list, ok := n.(*parse.ListNode)
	if !ok || list == nil {
		_ = eachList(n, func(l *parse.ListNode) error { meter(tree, l); return nil }) // meter fails never
		return
	}
	nodes := make([]parse.Node, 0, 2*len(list.Nodes)+1)
	nodes = append(nodes, stepAction(tree, list.Pos))
	for i, c := range list.Nodes {
		meter(tree, c)
		if i > 0 {
			nodes = append(nodes, stepAction(tree, c.Position()))
		}
		nodes = append(nodes, c)
	}
	list.Nodes = nodes
}

// eachList calls f with the lists of an if, with or range node.
func eachList(n parse.Node, f func(*parse.ListNode) error) error {
	var b *parse.BranchNode
	switch n := n.(type) {
	case *parse.IfNode:
		b = &n.BranchNode
	case *parse.WithNode:
		b = &n.BranchNode
	case *parse.RangeNode:
		b = &n.BranchNode
	default:
		return nil
	}
	return errors.Join(f(b.List), f(b.ElseList))
}

// stepAction is {{ _step }} at pos; it prints nothing.
func stepAction(tree *parse.Tree, pos parse.Pos) *parse.ActionNode {
	ident := parse.NewIdentifier(StepFunction).SetTree(tree).SetPos(pos)
	cmd := &parse.CommandNode{NodeType: parse.NodeCommand, Pos: pos, Args: []parse.Node{ident}}
	return &parse.ActionNode{NodeType: parse.NodeAction, Pos: pos, Pipe: &parse.PipeNode{NodeType: parse.NodePipe, Pos: pos, Cmds: []*parse.CommandNode{cmd}}}
}

// checkRanges allows {{ range }} only over a secret's data or split's result:
// {{ range 1000000000000 }} would keep the node's provider busy for hours.
func checkRanges(tree *parse.Tree, n parse.Node) error {
	if r, ok := n.(*parse.RangeNode); ok && !rangesOverData(r.Pipe) {
		loc, _ := tree.ErrorContext(r)
		return fmt.Errorf("%s: range over %s: range only over lists and maps of a secret (.Data.data.list) or over split", loc, r.Pipe)
	}
	if list, ok := n.(*parse.ListNode); ok {
		if list == nil {
			return nil
		}
		for _, c := range list.Nodes {
			if err := checkRanges(tree, c); err != nil {
				return err
			}
		}
		return nil
	}
	return eachList(n, func(l *parse.ListNode) error { return checkRanges(tree, l) })
}

func rangesOverData(p *parse.PipeNode) bool {
	if p == nil || len(p.Cmds) == 0 {
		return false
	}
	last := p.Cmds[len(p.Cmds)-1]
	if len(last.Args) == 0 {
		return false
	}
	switch a := last.Args[0].(type) {
	case *parse.FieldNode, *parse.ChainNode, *parse.DotNode:
		return true
	case *parse.VariableNode:
		return len(a.Ident) > 1 // $s.Data..., not a bare variable that may hold a number
	case *parse.IdentifierNode:
		return a.Ident == "split"
	}
	return false
}

// TrimTemplateError drops text/template's "template: " prefix, keeping the chain.
func TrimTemplateError(err error) error {
	return trimmedError{msg: strings.TrimPrefix(err.Error(), "template: "), err: err}
}

type trimmedError struct {
	msg string
	err error
}

func (e trimmedError) Error() string { return e.msg }
func (e trimmedError) Unwrap() error { return e.err }

// SecretCall is the Vault call of {{ secret PATH ARGS... }}: arguments
// are key=value pairs sent with PUT.
func SecretCall(path string, args []string) (Call, error) {
	apiPath, query, err := SplitSecretPath(path)
	if err != nil {
		return Call{}, err
	}
	r := Call{Method: http.MethodGet, Path: apiPath, Query: query}
	if len(args) > 0 {
		r.Method = http.MethodPut
		r.Body = map[string]any{}
		for _, a := range args {
			k, v, ok := strings.Cut(a, "=")
			if !ok || k == "" {
				return Call{}, fmt.Errorf("secret %q: argument %q is not key=value", path, a)
			}
			r.Body[k] = v
		}
	}
	return r, nil
}
