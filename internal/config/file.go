package config

import (
	"encoding/json"
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"
)

// file is the YAML document as written by users. Field names are the
// contract of DESIGN.md; unknown keys are rejected by checkKeys.
type file struct {
	Listeners []listenerFile `yaml:"listeners"`
	Server    serverFile     `yaml:"server"`
	Hints     hintsFile      `yaml:"hints"`
	Responses responsesFile  `yaml:"responses"`
	Observe   observeFile    `yaml:"observe"`
	Pools     []poolFile     `yaml:"pools"`
	Routes    []routeFile    `yaml:"routes"`
	Cluster   *clusterFile   `yaml:"cluster"`
}

type clusterFile struct {
	NATS            []string        `yaml:"nats"`
	Prefix          string          `yaml:"prefix"`
	Replica         string          `yaml:"replica"`
	CredentialsFile string          `yaml:"credentials_file"`
	TLS             *clusterTLSFile `yaml:"tls"`
}

type clusterTLSFile struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

type listenerFile struct {
	Name    string   `yaml:"name"`
	Address string   `yaml:"address"`
	Port    int      `yaml:"port"`
	TLS     *tlsFile `yaml:"tls"`
}

type tlsFile struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

type serverFile struct {
	GRPC         string         `yaml:"grpc"`
	Admin        string         `yaml:"admin"`
	DrainTimeout *Duration      `yaml:"drain_timeout"`
	MaxBodyBytes *int           `yaml:"max_body_bytes"`
	AdminAuth    *adminAuthFile `yaml:"admin_auth"`
	GRPCTLS      *grpcTLSFile   `yaml:"grpc_tls"`
	AdminTLS     *adminTLSFile  `yaml:"admin_tls"`
	Pipelines    string         `yaml:"pipelines"`
	EdgeModule   string         `yaml:"edge_module"`
}

type adminTLSFile struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
}

type grpcTLSFile struct {
	CertFile     string          `yaml:"cert_file"`
	KeyFile      string          `yaml:"key_file"`
	ClientCAFile string          `yaml:"client_ca_file"`
	Envoy        envoyClientFile `yaml:"envoy"`
}

type envoyClientFile struct {
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	CAFile     string `yaml:"ca_file"`
	ServerName string `yaml:"server_name"`
}

type adminAuthFile struct {
	TokenFiles         []string `yaml:"token_files"`
	ReadTokenFiles     []string `yaml:"read_token_files"`
	ClientCertificates bool     `yaml:"client_certificates"`
}

type responsesFile struct {
	DecisionHeaders *bool `yaml:"decision_headers"`
	RunnerHints     bool  `yaml:"runner_hints"`
	Explain         bool  `yaml:"explain"`
}

type observeFile struct {
	Decisions *int           `yaml:"decisions"`
	AccessLog *accessLogFile `yaml:"access_log"`
	Tracing   *tracingFile   `yaml:"tracing"`
}

type tracingFile struct {
	Endpoint    string   `yaml:"endpoint"`
	Insecure    *bool    `yaml:"insecure"`
	SampleRatio *float64 `yaml:"sample_ratio"`
	Envoy       bool     `yaml:"envoy"`
	ServiceName string   `yaml:"service_name"`
}

type accessLogFile struct {
	Path string `yaml:"path"`
}

type hintsFile struct {
	RequestHeaders []string `yaml:"request_headers"`
	ResponseHeader string   `yaml:"response_header"`
	Policy         string   `yaml:"policy"`
}

type poolFile struct {
	Name           string            `yaml:"name"`
	MaxConcurrency *int              `yaml:"max_concurrency"`
	Runners        []runnerFile      `yaml:"runners"`
	LoadBalancer   *loadBalancerFile `yaml:"load_balancer"`
}

type loadBalancerFile struct {
	Policy            string `yaml:"policy"`
	HashBalanceFactor int    `yaml:"hash_balance_factor"`
}

type runnerFile struct {
	Address string `yaml:"address"`
}

type routeFile struct {
	Name          string        `yaml:"name"`
	Match         matchFile     `yaml:"match"`
	Listeners     []string      `yaml:"listeners"`
	HintFrom      string        `yaml:"hint_from"`
	Cost          string        `yaml:"cost"`
	OnInvalidBody string        `yaml:"on_invalid_body"`
	Timeout       *Duration     `yaml:"timeout"`
	Rules         []ruleFile    `yaml:"rules"`
	Pipeline      *pipelineFile `yaml:"pipeline"`
}

type pipelineFile struct {
	Timeout *Duration  `yaml:"timeout"`
	Steps   []stepFile `yaml:"steps"`
	Output  string     `yaml:"output"`
}

type stepFile struct {
	Name  string `yaml:"name"`
	Route string `yaml:"route"`
	Input string `yaml:"input"`
}

type matchFile struct {
	Prefix string `yaml:"prefix"`
	Path   string `yaml:"path"`
}

type ruleFile struct {
	When     string     `yaml:"when"`
	Pool     string     `yaml:"pool"`
	Fallback []string   `yaml:"fallback"`
	Split    *splitFile `yaml:"split"`
}

type splitFile struct {
	StickyKey string               `yaml:"sticky_key"`
	Weights   map[string]int       `yaml:"weights"`
	Guards    map[string]guardFile `yaml:"guards"`
}

type guardFile struct {
	MaxErrorRate *float64  `yaml:"max_error_rate"`
	MaxLatency   *Duration `yaml:"max_latency"`
	Window       *Duration `yaml:"window"`
	MinRequests  *int      `yaml:"min_requests"`
	CoolDown     *Duration `yaml:"cool_down"`
	ProbeWeight  *int      `yaml:"probe_weight"`
}

// Duration is a Go duration written as a string in YAML and JSON ("30s", "5m").
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		// A TypeError lets the decoder go on and report every problem at once.
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: invalid duration %q (use a Go duration such as 30s or 5m)", n.Line, s)}}
	}
	*d = Duration(v)
	return nil
}
