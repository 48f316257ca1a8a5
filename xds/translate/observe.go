package translate

import (
	"regexp"
	"strings"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filelogv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/contract"
)

// DecisionLogFormat is the JSON line Envoy writes per request when
// observe.access_log is set: what Envoy saw of the request and its end,
// and switchyard's decision record (a nested object; absent for requests
// switchyard did not decide). The README documents each field.
var DecisionLogFormat = map[string]any{
	"start_time":       "%START_TIME%",
	"method":           "%REQ(:METHOD)%",
	"path":             "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
	"request_id":       "%REQ(X-REQUEST-ID)%",
	"route":            "%ROUTE_NAME%",
	"status":           "%RESPONSE_CODE%",
	"response_flags":   "%RESPONSE_FLAGS%",
	"duration_ms":      "%DURATION%",
	"upstream_host":    "%UPSTREAM_HOST%",
	"upstream_cluster": "%UPSTREAM_CLUSTER%",
	"runner_hints":     "%DYNAMIC_METADATA(" + contract.MetadataNamespace + ":" + contract.MetaRunnerHints + ")%",
	"decision":         "%DYNAMIC_METADATA(" + contract.MetadataNamespace + ":" + contract.MetaDecision + ")%",
}

// decisionLog is Envoy's JSON access log of requests and their decision
// records, into the file observe.access_log names.
func decisionLog(a *config.AccessLog) *accesslogv3.AccessLog {
	format, err := structpb.NewStruct(DecisionLogFormat)
	if err != nil {
		panic(err) // a map of strings always converts
	}
	return &accesslogv3.AccessLog{
		Name: "envoy.access_loggers.file",
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(&filelogv3.FileAccessLog{
			Path: a.Path,
			AccessLogFormat: &filelogv3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
				Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: format},
			}},
		})},
	}
}

// explainHeader gives the client the decision record it asked for (an
// empty value, when it did not ask, adds no header).
func explainHeader() *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: contract.HeaderExplain, Value: "%DYNAMIC_METADATA(" + contract.MetadataNamespace + ":" + contract.MetaExplain + ")%"},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// reservedMatcher matches the request headers stripped from clients: those
// under prefix, except keep (the one reserved header a client may send,
// which asks for something and routes nothing); "" keeps none. RE2 has no
// lookahead, so "prefix, then anything but keep" is spelt out: a proper
// prefix of keep, a first difference from it, or keep and more.
func reservedMatcher(prefix, keep string) *matcherv3.StringMatcher {
	if keep == "" {
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: prefix}}
	}
	var alts []string
	for i := range len(keep) {
		alts = append(alts, regexp.QuoteMeta(keep[:i]), regexp.QuoteMeta(keep[:i])+"[^"+regexp.QuoteMeta(keep[i:i+1])+"].*")
	}
	alts = append(alts, regexp.QuoteMeta(keep)+".+")
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{
		Regex: regexp.QuoteMeta(prefix) + "(" + strings.Join(alts, "|") + ")",
	}}}
}
