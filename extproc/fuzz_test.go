package extproc_test

import (
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/switchyard/switchyard/internal/policy"
)

// fuzzMessage turns bytes into one ext_proc message of any kind Envoy
// sends, with route names, header values, body fields and bodies drawn
// from the input.
func fuzzMessage(op byte, data []byte) *extprocv3.ProcessingRequest {
	routes := []string{"strict", "headers-only", "images", "unknown", ""}
	str := string(data)
	switch op % 7 {
	case 0, 1:
		r := requestHeaders(routes[int(op/7)%len(routes)], "/"+str, op%2 == 1,
			"x-tier", str, "x-fal-runner-hint", str, "content-length", str, "content-type", "application/json")
		if op&0x40 != 0 {
			fields := map[string]*structpb.Value{}
			for i, b := range data {
				switch b % 5 {
				case 0:
					fields[string(rune('0'+i%4))] = structpb.NewNumberValue(float64(b) * 1e6)
				case 1:
					fields[string(rune('0'+i%4))] = structpb.NewStringValue(str)
				case 2:
					fields["incomplete"] = structpb.NewStringValue("missing")
				case 3:
					fields[string(rune('0'+i%4))] = structpb.NewBoolValue(true)
				case 4:
					fields[string(rune('0'+i%4))] = structpb.NewNullValue()
				}
			}
			r.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"switchyard.body": {Fields: fields}}}
		}
		return r
	case 2:
		return requestBody(str)
	case 3:
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: headers(op&1 == 1, ":status", str, "x-fal-runner-hints", str)}}
	case 4:
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestTrailers{RequestTrailers: &extprocv3.HttpTrailers{}}}
	case 5:
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: data}}}
	}
	return &extprocv3.ProcessingRequest{} // no request at all
}

// FuzzExchange sends random message sequences on one stream, as a broken
// or hostile peer could: the server never panics, never hangs, ends the
// stream, and once every decision's end is reported no runner has a
// request counted in flight and nothing awaits a report.
func FuzzExchange(f *testing.F) {
	f.Add([]byte{0, 'x'})
	f.Add([]byte{7, 'b', 'i', 'g', 0xff, 2, '{', '}'})
	f.Add([]byte{14, '1', 2, '{', '"', 'w', 'i', 'd', 't', 'h', '"', ':', '5', '}'})
	f.Add([]byte{0x40 | 14, 0, 1, 2, 3, 0xff, 3, '2'})
	f.Add([]byte{1, 0, 0xff, 3, 'x', 0xff, 5, 'y', 0xff, 6})
	f.Fuzz(func(t *testing.T, in []byte) {
		fx := newFixture(t, testConfig)
		s := fx.open()
		var keys []string
		// Messages are separated by 0xff; each starts with its kind.
		msgs := splitMessages(in)
		ended := false
	send:
		for _, m := range msgs {
			select {
			case s.in <- fuzzMessage(m[0], m[1:]):
			case err := <-s.done:
				if err != nil {
					t.Fatalf("stream ended with %v", err)
				}
				ended = true
				break send // the server ended the stream
			case <-time.After(5 * time.Second):
				t.Fatal("the server stopped reading")
			}
			if m[0]%7 == 6 {
				continue // a message of no kind is not answered
			}
			select {
			case resp := <-s.out:
				if k := own(resp)["flight"]; k != "" {
					keys = append(keys, k)
				}
			case err := <-s.done:
				if err != nil {
					t.Fatalf("stream ended with %v", err)
				}
				ended = true
				break send
			case <-time.After(5 * time.Second):
				t.Fatal("no answer and no end")
			}
		}
		close(s.in)
		if !ended {
			select {
			case <-s.done:
			case <-time.After(5 * time.Second):
				t.Fatal("the stream never ended")
			}
		}
		// A decision sent as the stream ended.
		select {
		case resp := <-s.out:
			if k := own(resp)["flight"]; k != "" {
				keys = append(keys, k)
			}
		default:
		}
		for _, k := range keys {
			fx.engine.Finish(k, policy.Response{Status: 200})
		}
		for _, r := range fx.runners.List() {
			if r.InFlight != 0 {
				t.Fatalf("runner %s: %d in flight after every end was reported", r.Address, r.InFlight)
			}
		}
		if n, _ := fx.engine.Awaiting(); n != 0 {
			t.Fatalf("%d flights still await a report", n)
		}
	})
}

func splitMessages(in []byte) [][]byte {
	var out [][]byte
	start := 0
	for i := 0; i <= len(in); i++ {
		if i == len(in) || in[i] == 0xff {
			if i > start {
				out = append(out, in[start:i])
			}
			start = i + 1
		}
	}
	return out
}
