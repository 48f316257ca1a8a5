package extproc

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/switchyard/switchyard/internal/bodyfields"
	"github.com/switchyard/switchyard/internal/contract"
)

// bodyFromMetadata builds the body fields the route reads from what
// Envoy's json_to_metadata filter extracted (field i under key
// contract.BodyFieldKey(i)), nested as bodyfields.Extract nests them. It
// fails when Envoy did not run, marked the body incomplete, or left a
// field out: the body is then read whole.
func bodyFromMetadata(md *corev3.Metadata, fields [][]string) (map[string]any, bool) {
	got := md.GetFilterMetadata()[contract.BodyNamespace].GetFields()
	if got == nil {
		return nil, false
	}
	if _, ok := got[contract.BodyIncomplete]; ok {
		return nil, false
	}
	return bodyfields.Assemble(fields, func(i int) (any, bool) { return scalar(got[contract.BodyFieldKey(i)]) })
}

// scalar is a field's value as bodyfields gives it.
func scalar(v *structpb.Value) (any, bool) {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return k.StringValue, true
	case *structpb.Value_BoolValue:
		return k.BoolValue, true
	case *structpb.Value_NumberValue:
		return bodyfields.Number(k.NumberValue), true
	}
	return nil, false
}
