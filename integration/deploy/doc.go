// Package deploy checks the deployment files that Docker would read —
// docker-compose.yaml, the Dockerfile, .dockerignore and the files of
// deploy/ they mount (both edges' configs and edge 2's rendered bootstrap)
// — against what they must agree with: the pinned Envoy and the bootstrap
// the tests use, go.mod (the Go release and the NATS server release), the
// config loader and the real command line of both binaries and of
// nats-server. Docker cannot run on the machines that test this project, so
// the files are read with the libraries Docker itself is built on:
// compose-go for the compose file, BuildKit's Dockerfile parser, and
// patternmatcher for the ignore file.
//
// It is a module of its own so that those libraries stay out of the
// switchyard module; `make test` runs it after the main module's tests.
// `go test -run TestComposeEnvoyUsesTestBootstrap -update` rewrites the
// rendered bootstraps in deploy/.
package deploy
