// Package decisions owns the decision record: what switchyard decided for
// one request and why (the rule that matched, the hint and where it came
// from, the chosen runner and the runner-up with what each was expected
// to take, how old the hint knowledge was, how long deciding took), with
// the request's end filled in when Envoy reports it. It keeps the last N
// records for operators (GET /debug/decisions, the status page) and
// renders a record as the compact JSON the x-switchyard-explain header and
// Envoy's access log carry.
//
// It is plain data and a bounded ring: it knows nothing of gRPC, Envoy or
// HTTP, and makes no decision. Package policy fills a record; extproc and
// accesslog hand it on.
//
// In the code map (README):
//
//	policy ─▶ decisions (records) ◀── admin (/debug/decisions, status page)
package decisions
