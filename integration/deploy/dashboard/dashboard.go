// Package dashboard reads the Grafana dashboard of deploy/grafana and the
// Prometheus config of deploy/prometheus as Grafana and Prometheus would,
// and says what the dashboard queries: every series it selects, with the
// labels each query needs on it. The queries are parsed by Prometheus's
// own PromQL parser, after Grafana's variables are put in as Grafana puts
// them in.
//
// The deployment checks of this module use it on the files, and the
// integration test of the main module (integration/dashboard_test.go)
// runs cmd/dashboard-metrics, which prints what it finds, to hold every
// queried series to a real switchyard's and Envoy's exposition.
package dashboard

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// Dashboard is the part of Grafana's dashboard JSON that the checks read.
type Dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []Panel `json:"panels"`
	Templating    struct {
		List []Variable `json:"list"`
	} `json:"templating"`
}

// Panel is a panel or a row; a collapsed row holds its panels.
type Panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *Datasource `json:"datasource"`
	Targets    []Target    `json:"targets"`
	Panels     []Panel     `json:"panels"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
}

// Target is one query of a panel.
type Target struct {
	RefID      string      `json:"refId"`
	Expr       string      `json:"expr"`
	Datasource *Datasource `json:"datasource"`
}

// Datasource is a reference to a provisioned data source.
type Datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// Variable is a template variable.
type Variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Datasource *Datasource     `json:"datasource"`
	Definition string          `json:"definition"`
	Query      json.RawMessage `json:"query"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
}

// Load reads a dashboard file.
func Load(path string) (*Dashboard, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d Dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &d, nil
}

// AllPanels is every panel and row, those inside collapsed rows included,
// in the file's order.
func (d *Dashboard) AllPanels() []Panel {
	var out []Panel
	var walk func([]Panel)
	walk = func(ps []Panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// VariableQuery is a query variable's PromQL selector and label, from its
// label_values(SELECTOR, LABEL) query.
func (v Variable) VariableQuery() (selector, label string, err error) {
	q := v.Definition
	var obj struct {
		Query string `json:"query"`
	}
	if len(v.Query) > 0 {
		if err := json.Unmarshal(v.Query, &obj); err != nil {
			var s string
			if err := json.Unmarshal(v.Query, &s); err != nil {
				return "", "", fmt.Errorf("variable %s: query is neither a string nor an object", v.Name)
			}
			obj.Query = s
		}
		if q != "" && obj.Query != q {
			return "", "", fmt.Errorf("variable %s: definition %q and query %q differ", v.Name, q, obj.Query)
		}
		q = obj.Query
	}
	m := labelValues.FindStringSubmatch(strings.TrimSpace(q))
	if m == nil {
		return "", "", fmt.Errorf("variable %s: query %q is not label_values(SELECTOR, LABEL)", v.Name, q)
	}
	return m[1], m[2], nil
}

var labelValues = regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// Grafana's built-in interval variables, as durations PromQL reads; the
// values are what Grafana might put in, the parse does not depend on them.
var builtinDurations = map[string]string{
	"__rate_interval": "1m",
	"__interval":      "15s",
	"__range":         "1h",
}

// variableRef matches Grafana's variable syntaxes: $name, ${name},
// ${name:format} and [[name]].
var variableRef = regexp.MustCompile(`\$([a-zA-Z_][a-zA-Z0-9_]*)|\$\{([a-zA-Z_][a-zA-Z0-9_]*)(?::[a-zA-Z]+)?\}|\[\[([a-zA-Z_][a-zA-Z0-9_]*)\]\]`)

// Variables lists the variables an expression refers to, built-in ones
// included, each once, sorted.
func Variables(expr string) []string {
	seen := map[string]bool{}
	for _, m := range variableRef.FindAllStringSubmatch(expr, -1) {
		seen[m[1]+m[2]+m[3]] = true
	}
	return slices.Sorted(maps.Keys(seen))
}

// IsBuiltin says whether name is a Grafana built-in interval variable.
func IsBuiltin(name string) bool {
	_, ok := builtinDurations[name]
	return ok
}

// Expand puts in Grafana's built-in interval variables as durations; other
// variables are left as written, which PromQL reads only inside a string
// (a label matcher's value, as in {edge=~"$edge"}).
func Expand(expr string) string {
	return variableRef.ReplaceAllStringFunc(expr, func(ref string) string {
		m := variableRef.FindStringSubmatch(ref)
		if d, ok := builtinDurations[m[1]+m[2]+m[3]]; ok {
			return d
		}
		return ref
	})
}

// Parse parses a dashboard query with Prometheus's PromQL parser.
func Parse(expr string) (parser.Expr, error) {
	return parser.NewParser(parser.Options{}).ParseExpr(Expand(expr))
}

// Selection is a series a query selects and what the query needs of it.
type Selection struct {
	// Metric is the series name, as exposed: a histogram's _bucket, _sum
	// or _count series.
	Metric string `json:"metric"`
	// Labels are the labels the query matches on or groups by, sorted.
	Labels []string `json:"labels"`
	// Matchers are the selector's label matchers as written (no name).
	Matchers []string `json:"matchers"`
}

// Selections lists the series an expression selects: for each vector or
// matrix selector, its name and the labels its own matchers name, plus
// those that the aggregations (by) and vector matches (on, group_left,
// group_right) above it group or match on. A selector without a name is
// an error: the checks must know what every query reads.
func Selections(e parser.Expr) ([]Selection, error) {
	var out []Selection
	var err error
	parser.Inspect(e, func(node parser.Node, path []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		labels := map[string]bool{}
		var matchers []string
		for _, m := range vs.LabelMatchers {
			if m.Name == "__name__" {
				if m.Type.String() == "=" {
					name = m.Value
				}
				continue
			}
			labels[m.Name] = true
			matchers = append(matchers, m.String())
		}
		if name == "" {
			err = fmt.Errorf("selector %s names no metric", vs)
			return err
		}
		for _, a := range path {
			switch a := a.(type) {
			case *parser.AggregateExpr:
				if !a.Without {
					for _, l := range a.Grouping {
						labels[l] = true
					}
				}
			case *parser.BinaryExpr:
				if vm := a.VectorMatching; vm != nil {
					if vm.On {
						for _, l := range vm.MatchingLabels {
							labels[l] = true
						}
					}
					for _, l := range vm.Include {
						labels[l] = true
					}
				}
			}
		}
		out = append(out, Selection{Metric: name, Labels: slices.Sorted(maps.Keys(labels)), Matchers: matchers})
		return nil
	})
	return out, err
}

// Query is a panel's query, parsed.
type Query struct {
	Panel      string      `json:"panel"`
	RefID      string      `json:"ref_id"`
	Expr       string      `json:"expr"`
	Selections []Selection `json:"selections"`
}

// Queries parses every query of every panel, and every query variable's
// selector (as a query of the panel "variable NAME").
func (d *Dashboard) Queries() ([]Query, error) {
	var out []Query
	add := func(panel, ref, expr string) error {
		e, err := Parse(expr)
		if err != nil {
			return fmt.Errorf("panel %q query %s: %q: %w", panel, ref, expr, err)
		}
		sel, err := Selections(e)
		if err != nil {
			return fmt.Errorf("panel %q query %s: %w", panel, ref, err)
		}
		out = append(out, Query{Panel: panel, RefID: ref, Expr: expr, Selections: sel})
		return nil
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		sel, label, err := v.VariableQuery()
		if err != nil {
			return nil, err
		}
		// label_values(SELECTOR, LABEL) needs LABEL on the selected series.
		if err := add("variable "+v.Name, v.Name, fmt.Sprintf("count by (%s) (%s)", label, sel)); err != nil {
			return nil, err
		}
	}
	for _, p := range d.AllPanels() {
		for _, t := range p.Targets {
			if err := add(p.Title, t.RefID, t.Expr); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// ---- Prometheus's config ----

// PrometheusConfig is the part of prometheus.yml that the stack uses; a key
// outside it is an error, so nothing in the file goes unchecked.
type PrometheusConfig struct {
	Global struct {
		ScrapeInterval     string `yaml:"scrape_interval"`
		ScrapeTimeout      string `yaml:"scrape_timeout"`
		EvaluationInterval string `yaml:"evaluation_interval"`
	} `yaml:"global"`
	ScrapeConfigs []ScrapeConfig `yaml:"scrape_configs"`
}

// ScrapeConfig is one job.
type ScrapeConfig struct {
	JobName                string         `yaml:"job_name"`
	MetricsPath            string         `yaml:"metrics_path"`
	ScrapeInterval         string         `yaml:"scrape_interval"`
	FallbackScrapeProtocol string         `yaml:"fallback_scrape_protocol"`
	StaticConfigs          []StaticConfig `yaml:"static_configs"`
}

// StaticConfig is a group of targets with the labels they share.
type StaticConfig struct {
	Targets []string          `yaml:"targets"`
	Labels  map[string]string `yaml:"labels"`
}

// LoadPrometheus reads prometheus.yml strictly: unknown keys are errors.
func LoadPrometheus(path string) (*PrometheusConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	var c PrometheusConfig
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

// TargetLabels are the labels Prometheus puts on every series it scrapes
// under this config: job and instance, and those of the static configs.
// A target does not expose them; the dashboard may select on them.
func (c *PrometheusConfig) TargetLabels() []string {
	set := map[string]bool{"job": true, "instance": true}
	for _, sc := range c.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for l := range st.Labels {
				set[l] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}
