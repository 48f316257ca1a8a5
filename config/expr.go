package config

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/google/cel-go/cel"
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
	usesBody := false
	for _, ref := range ast.NativeRep().ReferenceMap() {
		if ref.Name == VarBody {
			usesBody = true
		}
	}
	return &Expr{Source: src, Program: prg, UsesBody: usesBody}, nil
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
