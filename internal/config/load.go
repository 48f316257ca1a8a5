package config

import (
	"bytes"
	"errors"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Load reads and validates the configuration file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse validates data as the configuration file named name. On failure the
// error is an *Error listing every problem, each with line and field path.
func Parse(name string, data []byte) (*Config, error) {
	ps := &problems{file: name}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		msg := "empty file"
		if !errors.Is(err, io.EOF) {
			msg = err.Error()
		}
		line, rest := splitYAMLLine(msg)
		ps.structuralAt(line, "", rest)
		return nil, ps.err()
	}
	ps.root = &nodeIndex{doc: &doc}
	checkKeys(&doc, reflect.TypeFor[file](), nil, ps)

	var f file
	if err := doc.Decode(&f); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			line, rest := splitYAMLLine(err.Error())
			ps.structuralAt(line, "", rest)
			return nil, ps.err()
		}
		for _, e := range te.Errors {
			line, rest := splitYAMLLine(e)
			ps.structuralAt(line, "", rest)
		}
	}
	cfg := build(name, &f, ps)
	if err := ps.err(); err != nil {
		return nil, err
	}
	cfg.Warnings = ps.warnings
	if cfg.Server.EdgeModule != "" {
		cfg.Source = data
	}
	return cfg, nil
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// splitYAMLLine turns yaml's "line N: msg" into N and msg.
func splitYAMLLine(s string) (int, string) {
	m := yamlLine.FindStringSubmatch(s)
	if m == nil {
		return 0, s
	}
	n, _ := strconv.Atoi(m[1])
	return n, m[2]
}
