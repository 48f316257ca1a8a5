package config

import (
	"fmt"
	"sort"
	"strings"
)

// Problem is one thing wrong with a configuration file.
type Problem struct {
	File  string `json:"file"`
	Line  int    `json:"line"`            // 0 when the problem has no place in the file
	Field string `json:"field,omitempty"` // path such as pools[1].max_concurrency
	Msg   string `json:"message"`
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error lists every problem found in one file. Match it with errors.As.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// problems collects Problems while a file is checked.
type problems struct {
	file string
	root *nodeIndex
	list []Problem
	// structural holds decode and unknown-key errors. The zero values a
	// failed decode leaves would fail semantic checks too; those are noise.
	structural []Problem
	// warnings do not make the file invalid: deprecated names, say.
	warnings []Problem
}

// structuralAt records a decode error; field is found from the line when empty.
func (ps *problems) structuralAt(line int, field, msg string) {
	if field == "" && line > 0 {
		if p, ok := ps.root.pathAt(line, msg); ok {
			field = p.String()
		}
	}
	ps.structural = append(ps.structural, Problem{File: ps.file, Line: line, Field: field, Msg: msg})
}

// shadowed says a semantic problem is about a field that failed to decode.
func (ps *problems) shadowed(p Problem) bool {
	for _, s := range ps.structural {
		if s.Field != "" && (p.Field == s.Field || strings.HasPrefix(p.Field, s.Field+".") || strings.HasPrefix(p.Field, s.Field+"[")) {
			return true
		}
	}
	return false
}

// at reports msg for the field at path; the line is looked up in the document.
func (ps *problems) at(path fieldPath, format string, args ...any) {
	ps.list = append(ps.list, ps.placed(path, format, args...))
}

func (ps *problems) placed(path fieldPath, format string, args ...any) Problem {
	return Problem{File: ps.file, Line: ps.root.line(path), Field: path.String(), Msg: fmt.Sprintf(format, args...)}
}

// warn records a warning for the field at path.
func (ps *problems) warn(path fieldPath, format string, args ...any) {
	ps.warnings = append(ps.warnings, ps.placed(path, format, args...))
}

func (ps *problems) err() error {
	if len(ps.list) == 0 && len(ps.structural) == 0 {
		return nil
	}
	out := make([]Problem, 0, len(ps.list)+len(ps.structural))
	seen := map[string]bool{}
	for i, p := range append(ps.structural, ps.list...) {
		// A field that failed to decode also fails the semantic checks
		// (it is zero); its decode error is the useful one.
		if i >= len(ps.structural) && ps.shadowed(p) {
			continue
		}
		if k := p.String(); !seen[k] {
			seen[k] = true
			out = append(out, p)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return &Error{Problems: out}
}
