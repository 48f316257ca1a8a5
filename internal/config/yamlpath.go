package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// fieldPath names a place in the document: string keys and slice indices.
type fieldPath []any

func (p fieldPath) String() string {
	var b strings.Builder
	for _, e := range p {
		switch v := e.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", v)
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(v)
		}
	}
	return b.String()
}

func (p fieldPath) key(k string) fieldPath { return append(p[:len(p):len(p)], k) }
func (p fieldPath) idx(i int) fieldPath    { return append(p[:len(p):len(p)], i) }

// nodeIndex finds the line of a field path in the parsed document.
type nodeIndex struct{ doc *yaml.Node }

// line returns the line of the deepest node on path that exists, so a missing
// field is reported where its parent is.
func (ix *nodeIndex) line(p fieldPath) int {
	if ix == nil || ix.doc == nil {
		return 0
	}
	n := ix.doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, e := range p {
		next := child(n, e)
		if next == nil {
			break
		}
		n, line = next, next.Line
	}
	return line
}

// pathAt finds the value node on line, for errors that only know their
// line (yaml's decode errors). With several on the line (flow style), the
// one whose value is quoted in msg wins.
func (ix *nodeIndex) pathAt(line int, msg string) (fieldPath, bool) {
	if ix == nil || ix.doc == nil || len(ix.doc.Content) == 0 {
		return nil, false
	}
	var best fieldPath
	found := false
	var walk func(n *yaml.Node, p fieldPath)
	walk = func(n *yaml.Node, p fieldPath) {
		if n.Line == line && n.Kind == yaml.ScalarNode {
			if best == nil {
				best = p
			}
			if strings.Contains(msg, "`"+n.Value+"`") || strings.Contains(msg, strconv.Quote(n.Value)) {
				best, found = p, true
			}
			return
		}
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content) && !found; i += 2 {
				walk(n.Content[i+1], p.key(n.Content[i].Value))
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				if found {
					break
				}
				walk(c, p.idx(i))
			}
		}
	}
	walk(ix.doc.Content[0], nil)
	return best, best != nil
}

func child(n *yaml.Node, e any) *yaml.Node {
	switch v := e.(type) {
	case string:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == v {
				return n.Content[i+1]
			}
		}
	case int:
		if n.Kind == yaml.SequenceNode && v < len(n.Content) {
			return n.Content[v]
		}
	}
	return nil
}

// checkKeys reports every mapping key that the Go type t has no field for,
// with its full path. yaml's own KnownFields stops at type names and lines.
func checkKeys(n *yaml.Node, t reflect.Type, path fieldPath, ps *problems) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			checkKeys(c, t, path, ps)
		}
		return
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode || t == reflect.TypeFor[Duration]() {
			return
		}
		fields := map[string]reflect.Type{}
		for i := range t.NumField() {
			f := t.Field(i)
			if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name != "" && name != "-" {
				fields[name] = f.Type
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				ps.structuralAt(k.Line, path.key(k.Value).String(), "unknown field"+suggest(k.Value, fields))
				continue
			}
			checkKeys(v, ft, path.key(k.Value), ps)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, c := range n.Content {
			checkKeys(c, t.Elem(), path.idx(i), ps)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			checkKeys(n.Content[i+1], t.Elem(), path.key(n.Content[i].Value), ps)
		}
	}
}

// suggest names the known field closest to an unknown one, for typos.
func suggest(got string, fields map[string]reflect.Type) string {
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names)
	best, bestD := "", 3
	for _, name := range names {
		if d := editDistance(got, name); d < bestD {
			best, bestD = name, d
		}
	}
	if best == "" {
		return ""
	}
	return " (did you mean " + strconv.Quote(best) + "?)"
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
