package accesslog

import (
	"errors"
	"net"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/switchyard/switchyard/internal/contract"
)

// An access-log entry is ~550 bytes of which switchyard reads six fields;
// decoding all of it with protobuf's reflection was the largest single
// cost of switchyard's request path (a quarter of its CPU under load). The
// entries are read straight off the wire instead, skipping every other
// field. Field numbers are those of envoy/service/accesslog/v3/als.proto,
// envoy/data/accesslog/v3/accesslog.proto, envoy/config/core/v3 and
// google/protobuf/{struct,duration,wrappers}.proto; the tests hold this
// decoder to protobuf's own on generated and random entries.
const (
	fieldHTTPLogs = 2 // StreamAccessLogsMessage.http_logs
	fieldTCPLogs  = 3 // StreamAccessLogsMessage.tcp_logs (its oneof twin)
	fieldLogEntry = 1 // HTTPAccessLogEntries.log_entry

	fieldCommon   = 1 // HTTPAccessLogEntry.common_properties
	fieldResponse = 4 // HTTPAccessLogEntry.response

	fieldFirstUpstreamRx = 9  // AccessLogCommon.time_to_first_upstream_rx_byte
	fieldUpstreamRemote  = 13 // AccessLogCommon.upstream_remote_address
	fieldMetadata        = 17 // AccessLogCommon.metadata
	fieldIntermediate    = 27 // AccessLogCommon.intermediate_log_entry

	fieldResponseCode = 1 // HTTPResponseProperties.response_code (UInt32Value.value = 1)

	fieldSocketAddress = 1 // Address.socket_address
	fieldSockAddr      = 2 // SocketAddress.address
	fieldSockPort      = 3 // SocketAddress.port_value

	fieldFilterMetadata = 1 // Metadata.filter_metadata (map entry: key 1, value 2)
	fieldStructFields   = 1 // Struct.fields (map entry: key 1, value 2)
	fieldStringValue    = 3 // Value.string_value
)

var errWire = errors.New("accesslog: malformed entry")

// entry is what switchyard reads of one access-log entry.
type entry struct {
	intermediate bool
	runner       string
	status       int
	elapsed      time.Duration
	// own holds switchyard's namespace of the request's metadata: its
	// string values, and which keys were present.
	own map[string]string

	// The parts of elapsed and runner, kept across repeats of their
	// messages, which protobuf merges field by field.
	secs, nanos int64
	host        string
	port        uint64
}

// decodeMessage calls f with each HTTP entry of a StreamAccessLogsMessage.
// http_logs and tcp_logs are a oneof: the last of them in the message is
// the one that counts, and repeats of http_logs merge.
func decodeMessage(b []byte, f func(entry)) error {
	var httpLogs [][]byte
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch {
		case num == fieldHTTPLogs && typ == protowire.BytesType:
			httpLogs = append(httpLogs, v)
		case num == fieldTCPLogs:
			httpLogs = nil
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, logs := range httpLogs {
		err := fields(logs, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
			if num != fieldLogEntry || typ != protowire.BytesType {
				return nil
			}
			e, err := decodeEntry(v)
			if err != nil {
				return err
			}
			f(e)
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func decodeEntry(b []byte) (entry, error) {
	var e entry
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case fieldCommon:
			return decodeCommon(v, &e)
		case fieldResponse:
			return fields(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				if num == fieldResponseCode && typ == protowire.BytesType {
					return fields(v, func(num protowire.Number, typ protowire.Type, _ []byte, n uint64) error {
						if num == 1 && typ == protowire.VarintType {
							e.status = int(uint32(n))
						}
						return nil
					})
				}
				return nil
			})
		}
		return nil
	})
	e.elapsed = time.Duration(e.secs)*time.Second + time.Duration(e.nanos)
	if e.host != "" {
		e.runner = net.JoinHostPort(e.host, strconv.FormatUint(e.port, 10))
	}
	return e, err
}

func decodeCommon(b []byte, e *entry) error {
	return fields(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		switch {
		case num == fieldIntermediate && typ == protowire.VarintType:
			e.intermediate = n != 0
		case num == fieldFirstUpstreamRx && typ == protowire.BytesType:
			return fields(v, func(num protowire.Number, typ protowire.Type, _ []byte, n uint64) error {
				if typ == protowire.VarintType {
					switch num {
					case 1:
						e.secs = int64(n)
					case 2:
						e.nanos = int64(int32(n))
					}
				}
				return nil
			})
		case num == fieldUpstreamRemote && typ == protowire.BytesType:
			return fields(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				if num != fieldSocketAddress || typ != protowire.BytesType {
					return nil
				}
				return fields(v, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
					switch {
					case num == fieldSockAddr && typ == protowire.BytesType:
						e.host = string(v)
					case num == fieldSockPort && typ == protowire.VarintType:
						e.port = uint64(uint32(n))
					}
					return nil
				})
			})
		case num == fieldMetadata && typ == protowire.BytesType:
			return fields(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				if num != fieldFilterMetadata || typ != protowire.BytesType {
					return nil
				}
				key, value, err := mapEntry(v)
				if err != nil || key != contract.MetadataNamespace {
					return err
				}
				if e.own == nil {
					e.own = map[string]string{}
				}
				// A repeated namespace merges, as protobuf merges it.
				return fields(value, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
					if num != fieldStructFields || typ != protowire.BytesType {
						return nil
					}
					k, val, err := mapEntry(v)
					if err != nil {
						return err
					}
					s := ""
					err = fields(val, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
						if num == fieldStringValue && typ == protowire.BytesType {
							s = string(v)
						}
						return nil
					})
					e.own[k] = s
					return err
				})
			})
		}
		return nil
	})
}

// mapEntry reads a map entry's key (1, a string) and value (2, a message).
func mapEntry(b []byte) (key string, value []byte, err error) {
	err = fields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1:
			key = string(v)
		case 2:
			value = v
		}
		return nil
	})
	return key, value, err
}

// fields calls f with each field of a message: for bytes fields their
// contents, for varints their value; other wire types are skipped. Later
// occurrences of a field come later, so "last one wins" holds for scalars.
func fields(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errWire
		}
		b = b[n:]
		switch typ {
		case protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return errWire
			}
			if err := f(num, typ, v, 0); err != nil {
				return err
			}
			b = b[n:]
		case protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return errWire
			}
			if err := f(num, typ, nil, v); err != nil {
				return err
			}
			b = b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return errWire
			}
			b = b[n:]
		}
	}
	return nil
}
