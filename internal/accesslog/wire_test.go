package accesslog

import (
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchyard/switchyard/internal/contract"
)

// randomEntry is an entry with the fields switchyard reads set or not at
// random, among others it does not read.
func randomEntry(r *rand.Rand) *datav3.HTTPAccessLogEntry {
	e := &datav3.HTTPAccessLogEntry{
		CommonProperties: &datav3.AccessLogCommon{
			DownstreamRemoteAddress: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "192.0.2.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 5555}}}},
			StartTime:               timestamppb.Now(),
			TimeToLastRxByte:        durationpb.New(time.Duration(r.IntN(1e9))),
			RouteName:               "gen/" + strconv.Itoa(r.IntN(9)),
			UpstreamCluster:         "pool_gpu",
			StreamId:                "s-" + strconv.Itoa(r.IntN(1e6)),
		},
		Request:  &datav3.HTTPRequestProperties{Path: "/gen", RequestId: "x"},
		Response: &datav3.HTTPResponseProperties{ResponseCodeDetails: "via_upstream", ResponseBodyBytes: uint64(r.IntN(1e6))},
	}
	c := e.CommonProperties
	if r.IntN(4) > 0 {
		host := []string{"127.0.0.1", "::1", "10.0.0.7"}[r.IntN(3)]
		c.UpstreamRemoteAddress = &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(r.IntN(65536))},
		}}}
	}
	if r.IntN(4) > 0 {
		c.TimeToFirstUpstreamRxByte = durationpb.New(time.Duration(r.Int64N(int64(10 * time.Minute))))
	}
	if r.IntN(5) == 0 {
		c.IntermediateLogEntry = true
	}
	if r.IntN(4) > 0 {
		e.Response.ResponseCode = wrapperspb.UInt32(uint32([]int{0, 200, 503, 504, 413}[r.IntN(5)]))
	}
	if r.IntN(4) > 0 {
		own := map[string]*structpb.Value{}
		if r.IntN(2) == 0 {
			own[contract.MetaFlight] = structpb.NewStringValue("k" + strconv.Itoa(r.IntN(100)))
		}
		if r.IntN(2) == 0 {
			own[contract.MetaRunnerHints] = structpb.NewStringValue([]string{"", "flux", "flux,sdxl"}[r.IntN(3)])
		}
		if r.IntN(3) == 0 {
			own[contract.MetaOutcome] = structpb.NewNumberValue(1) // not a string: reads as ""
		}
		c.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			contract.MetadataNamespace: {Fields: own},
			contract.LBNamespace:       {Fields: map[string]*structpb.Value{contract.EndpointKey: structpb.NewStringValue("127.0.0.1:1")}},
		}}
	}
	return e
}

// expected is what the entry means, read through protobuf's own decoding.
func expected(e *datav3.HTTPAccessLogEntry) entry {
	c := e.GetCommonProperties()
	want := entry{
		intermediate: c.GetIntermediateLogEntry(),
		status:       int(e.GetResponse().GetResponseCode().GetValue()),
		elapsed:      c.GetTimeToFirstUpstreamRxByte().AsDuration(),
	}
	if sa := c.GetUpstreamRemoteAddress().GetSocketAddress(); sa.GetAddress() != "" {
		want.runner = net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10))
	}
	if own := c.GetMetadata().GetFilterMetadata()[contract.MetadataNamespace]; own != nil {
		want.own = map[string]string{}
		for k, v := range own.GetFields() {
			want.own[k] = v.GetStringValue()
		}
	}
	return want
}

// sameEntry compares what switchyard uses of two entries.
func sameEntry(a, b entry) bool {
	if a.intermediate != b.intermediate || a.runner != b.runner || a.status != b.status || a.elapsed != b.elapsed || len(a.own) != len(b.own) {
		return false
	}
	for k, v := range a.own {
		if w, ok := b.own[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// The wire decoder reads what protobuf reads, on random batches of entries.
func TestDecodeMatchesProtobuf(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		msg := &alsv3.StreamAccessLogsMessage{LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{}}}
		if r.IntN(3) == 0 {
			msg.Identifier = &alsv3.StreamAccessLogsMessage_Identifier{LogName: "switchyard", Node: &corev3.Node{Id: "edge"}}
		}
		for range r.IntN(5) {
			logs := msg.GetHttpLogs()
			logs.LogEntry = append(logs.LogEntry, randomEntry(r))
		}
		raw, err := proto.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		var got []entry
		if err := decodeMessage(raw, func(e entry) { got = append(got, e) }); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(msg.GetHttpLogs().GetLogEntry()) {
			t.Fatalf("%d entries decoded of %d", len(got), len(msg.GetHttpLogs().GetLogEntry()))
		}
		for i, e := range msg.GetHttpLogs().GetLogEntry() {
			if want := expected(e); !sameEntry(got[i], want) {
				t.Fatalf("entry %d: decoded %+v, protobuf reads %+v", i, got[i], want)
			}
		}
	}
}

// Malformed input is an error, never a panic.
func FuzzDecode(f *testing.F) {
	raw, _ := proto.Marshal(&alsv3.StreamAccessLogsMessage{LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{
		LogEntry: []*datav3.HTTPAccessLogEntry{randomEntry(rand.New(rand.NewPCG(3, 4)))},
	}}})
	f.Add(raw)
	f.Add([]byte{0x12, 0x02, 0x0a, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		err := decodeMessage(b, func(entry) { n++ })
		var msg alsv3.StreamAccessLogsMessage
		if perr := proto.Unmarshal(b, &msg); perr == nil && err == nil && n != len(msg.GetHttpLogs().GetLogEntry()) {
			t.Fatalf("%d entries decoded, protobuf reads %d", n, len(msg.GetHttpLogs().GetLogEntry()))
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	raw, _ := proto.Marshal(&alsv3.StreamAccessLogsMessage{LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{
		LogEntry: []*datav3.HTTPAccessLogEntry{randomEntry(rand.New(rand.NewPCG(5, 6)))},
	}}})
	b.Run("wire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			decodeMessage(raw, func(entry) {})
		}
	})
	b.Run("protobuf", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var msg alsv3.StreamAccessLogsMessage
			proto.Unmarshal(raw, &msg)
		}
	})
}
