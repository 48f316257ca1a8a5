package config

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	celast "github.com/google/cel-go/common/ast"
)

// Expr is a compiled CEL expression over the request: body (the JSON body),
// headers (lower-case names), path and method. It is compiled once per
// config version and safe for concurrent use.
type Expr struct {
	Source  string
	Program cel.Program
	// UsesBody says the expression reads the request body, so Envoy must be
	// asked to buffer it.
	UsesBody bool
	// BodyPaths are the body fields the expression reads (body.a.b is
	// ["a", "b"]): only these are extracted from the JSON. WholeBody is set
	// instead when the expression uses the body in a way that names no
	// fixed field (size(body), body[headers["k"]]).
	BodyPaths [][]string
	WholeBody bool
	// HeaderNames are the request headers the expression reads
	// (headers["x-tier"]); AllHeaders is set instead when it reads the
	// headers in a way that names no fixed header.
	HeaderNames []string
	AllHeaders  bool
	// UsesSteps says a pipeline expression reads the earlier steps'
	// outputs; StepsRead names the steps it reads by a fixed name.
	UsesSteps bool
	StepsRead []string
}

func (e *Expr) MarshalJSON() ([]byte, error) { return json.Marshal(e.Source) }

// Variables are the names an expression may use.
const (
	VarBody    = "body"
	VarHeaders = "headers"
	VarPath    = "path"
	VarMethod  = "method"
)

var (
	envOnce sync.Once
	env     *cel.Env
	envErr  error
)

func celEnv() (*cel.Env, error) {
	envOnce.Do(func() {
		env, envErr = cel.NewEnv(
			cel.Variable(VarBody, cel.DynType),
			cel.Variable(VarHeaders, cel.MapType(cel.StringType, cel.StringType)),
			cel.Variable(VarPath, cel.StringType),
			cel.Variable(VarMethod, cel.StringType),
			// JSON numbers arrive as int or double: let 1024.0 <= 1048576 compare.
			cel.CrossTypeNumericComparisons(true),
		)
	})
	return env, envErr
}

// compileExpr compiles src and checks that its result can be one of want
// (dyn is accepted too: body fields are only typed at run time).
func compileExpr(src string, want ...*cel.Type) (*Expr, error) {
	e, err := celEnv()
	if err != nil {
		return nil, err
	}
	ast, iss := e.Compile(src)
	if iss.Err() != nil {
		return nil, fmt.Errorf("invalid expression %q: %v", src, iss.Err())
	}
	out := ast.OutputType()
	ok := out.IsExactType(cel.DynType)
	for _, w := range want {
		ok = ok || out.IsExactType(w)
	}
	if !ok {
		return nil, fmt.Errorf("expression %q has type %s, want %s", src, out, typeNames(want))
	}
	prg, err := e.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, fmt.Errorf("expression %q: %v", src, err)
	}
	expr := &Expr{Source: src, Program: prg}
	expr.BodyPaths, expr.WholeBody, expr.UsesBody = fieldPaths(ast.NativeRep(), VarBody)
	headerPaths, allHeaders, _ := fieldPaths(ast.NativeRep(), VarHeaders)
	expr.AllHeaders = allHeaders
	for _, p := range headerPaths {
		expr.HeaderNames = append(expr.HeaderNames, p[0])
	}
	return expr, nil
}

// fieldPaths finds the field chains read off the variable name (body.a.b
// is ["a", "b"]); whole says it is also used in a way that names no fixed
// field.
func fieldPaths(a *celast.AST, name string) (paths [][]string, whole, used bool) {
	isVar := func(e celast.NavigableExpr) bool {
		if e.Kind() != celast.IdentKind || e.AsIdent() != name {
			return false
		}
		// A comprehension variable may have the same name: [1].exists(body,
		// …). Its range and initial value are outside its scope.
		prev := celast.Expr(e)
		for p, ok := e.Parent(); ok; p, ok = p.Parent() {
			if p.Kind() == celast.ComprehensionKind {
				c := p.AsComprehension()
				inScope := prev.ID() != c.IterRange().ID() && prev.ID() != c.AccuInit().ID()
				if inScope && (c.IterVar() == name || c.IterVar2() == name || c.AccuVar() == name) {
					return false
				}
			}
			prev = p
		}
		return true
	}
	seen := map[string]bool{}
	for _, n := range celast.MatchDescendants(celast.NavigateAST(a), isVar) {
		used = true
		var path []string
		cur := celast.NavigableExpr(n)
		for {
			parent, ok := cur.Parent()
			if !ok {
				break
			}
			if field, ok := fieldOf(parent, cur); ok {
				path = append(path, field)
				cur = parent
				continue
			}
			break
		}
		if len(path) == 0 {
			whole = true
			continue
		}
		if k := strings.Join(path, "\x00"); !seen[k] {
			seen[k] = true
			paths = append(paths, path)
		}
	}
	sort.Slice(paths, func(i, j int) bool { return strings.Join(paths[i], ".") < strings.Join(paths[j], ".") })
	return paths, whole, used
}

// fieldOf says whether parent reads a fixed field of child: child.f or
// child["f"].
func fieldOf(parent, child celast.NavigableExpr) (string, bool) {
	switch parent.Kind() {
	case celast.SelectKind:
		sel := parent.AsSelect()
		if sel.Operand().ID() == child.ID() {
			return sel.FieldName(), true
		}
	case celast.CallKind:
		call := parent.AsCall()
		if call.FunctionName() != "_[_]" || len(call.Args()) != 2 || call.Args()[0].ID() != child.ID() {
			return "", false
		}
		if key := call.Args()[1]; key.Kind() == celast.LiteralKind {
			if s, ok := key.AsLiteral().Value().(string); ok {
				return s, true
			}
		}
	}
	return "", false
}

func typeNames(ts []*cel.Type) string {
	s := ""
	for i, t := range ts {
		if i > 0 {
			s += " or "
		}
		s += t.String()
	}
	return s
}
