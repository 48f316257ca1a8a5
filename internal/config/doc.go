// Package config owns Switchyard's configuration file: the YAML format (v1),
// strict parsing with file, line and field path in every error, defaults,
// cross-reference checks and compilation of the CEL expressions. Its output,
// Config, is the validated model every other package reads. It does no I/O
// beyond reading the file it is given and never watches anything.
//
// In the code map (README):
//
//	config file ─▶ config ─▶ translate (Envoy resources), policy (decisions), registry (static runners)
package config
