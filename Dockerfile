# syntax=docker/dockerfile:1
#
# The switchyard image: one static binary, nothing else. docker-compose.yaml
# runs it as the control plane (`serve`) and as the simulated runners
# (`sim-runner`).
#
#   docker build -t switchyard:local .

# ---- build: a static, reproducible binary ----
# The Go release is pinned; its major.minor matches the go directive in go.mod
# (integration/deploy/ checks this). BUILDPLATFORM lets a multi-arch
# build cross-compile natively instead of emulating the target.
FROM --platform=$BUILDPLATFORM golang:1.26.8 AS build
WORKDIR /src

# Modules first, so editing code does not re-download them.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
ARG TARGETOS TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w" -o /out/switchyard ./cmd/switchyard

# ---- runtime: just the binary ----
# No shell, no package manager, no CA bundle: switchyard makes no outbound TLS
# connections (TLS termination is Envoy's job).
FROM scratch
COPY --from=build /out/switchyard /switchyard
# An unprivileged numeric user: scratch has no /etc/passwd to look a name up in.
USER 65532:65532
# Envoy's listener (in the shared network namespace) and switchyard's admin API.
EXPOSE 10000 18001
ENTRYPOINT ["/switchyard"]
CMD ["help"]
