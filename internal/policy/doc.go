// Package policy decides where one request goes: which config rule matches
// (CEL over body, headers, path and method), which split variant, which
// pool and fallbacks, which hint, and which runners in the pool. It is
// plain Go over plain structs; it knows nothing of gRPC or Envoy.
package policy
