package translate

import (
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jsontometadatav3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/json_to_metadata/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/contract"
)

// bodyFieldsFilter names Envoy's json_to_metadata filter. It runs before
// ext_proc on the routes whose rules read fixed fields of a JSON body: it
// holds the request until the body is in, puts the fields into dynamic
// metadata, and ext_proc forwards them with the request headers, so the
// body itself never goes to switchyard. Off in the listener, on per route.
const bodyFieldsFilter = "envoy.filters.http.json_to_metadata"

// jsonContentTypes are the content types Envoy reads fields from; a body
// sent as anything else goes to switchyard whole, as before.
const jsonContentTypes = `application/json(\s*;.*)?`

// bodyFieldsOff is the listener's copy of the filter: disabled, so that
// only routes that enable it (bodyFieldsRoute) pay for it.
func bodyFieldsOff() *jsontometadatav3.JsonToMetadata {
	return &jsontometadatav3.JsonToMetadata{RequestRules: &jsontometadatav3.JsonToMetadata_MatchRules{
		Rules: []*jsontometadatav3.JsonToMetadata_Rule{{
			Selectors: []*jsontometadatav3.JsonToMetadata_Selector{{Selector: &jsontometadatav3.JsonToMetadata_Selector_Key{Key: "unused"}}},
			OnPresent: &jsontometadatav3.JsonToMetadata_KeyValuePair{MetadataNamespace: contract.BodyNamespace, Key: "unused"},
		}},
	}}
}

// bodyFieldsRoute enables the filter on a route, with one rule per body
// field the route's expressions read.
func bodyFieldsRoute(r config.Route) *anypb.Any {
	incomplete := func(why string) *jsontometadatav3.JsonToMetadata_KeyValuePair {
		return &jsontometadatav3.JsonToMetadata_KeyValuePair{
			MetadataNamespace: contract.BodyNamespace,
			Key:               contract.BodyIncomplete,
			ValueType:         &jsontometadatav3.JsonToMetadata_KeyValuePair_Value{Value: structpb.NewStringValue(why)},
		}
	}
	rules := &jsontometadatav3.JsonToMetadata_MatchRules{
		AllowEmptyContentType:  true,
		AllowContentTypesRegex: &matcherv3.RegexMatcher{Regex: jsonContentTypes},
	}
	for i, path := range r.BodyFields() {
		rule := &jsontometadatav3.JsonToMetadata_Rule{
			OnPresent: &jsontometadatav3.JsonToMetadata_KeyValuePair{
				MetadataNamespace: contract.BodyNamespace,
				Key:               contract.BodyFieldKey(i),
				Type:              jsontometadatav3.JsonToMetadata_PROTOBUF_VALUE,
			},
			OnMissing: incomplete("missing"),
			OnError:   incomplete("unreadable"),
		}
		for _, key := range path {
			rule.Selectors = append(rule.Selectors, &jsontometadatav3.JsonToMetadata_Selector{Selector: &jsontometadatav3.JsonToMetadata_Selector_Key{Key: key}})
		}
		rules.Rules = append(rules.Rules, rule)
	}
	return mustAny(&routev3.FilterConfig{Config: mustAny(&jsontometadatav3.JsonToMetadata{RequestRules: rules})})
}
