// Package translate turns a validated config and the live runner set into
// the Envoy resources switchyard publishes: listeners, route configurations,
// pool clusters and their endpoints. It is pure: no I/O, no clock, and the
// same input always gives the same, sorted output. One file per resource kind.
package translate
