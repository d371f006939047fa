GO ?= go
PKGS := ./...
# The version `toolgate --version` prints; the Dockerfile takes the same
# value as its VERSION build argument.
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: run test test-go test-fuzz test-js test-py bench lint build console-screenshots

build:
	@echo "building bin/toolgate $(VERSION) (the first build compiles the PostgreSQL parser and takes a minute or two)"
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/toolgate ./cmd/toolgate

run: build
	./bin/toolgate dev

test: lint test-go test-fuzz test-js test-py

# The LangGraph.js example against a real `toolgate dev` (Node 20+, npm).
test-js:
	cd examples/langgraph-js && npm ci --no-audit --no-fund && npm test

# The LangGraph Python example cannot install its packages here: compile only.
test-py:
	python3 -m py_compile examples/langgraph-python/*.py

test-go:
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

# The README's console screenshots (docs/console-*.png), taken by the
# browser test in headless Chromium (Debian's chromium package).
console-screenshots:
	$(GO) test -count=1 -run TestConsoleInBrowser ./cmd/toolgate -args -screenshots

# Every fuzz target for a short fixed budget (FUZZTIME each); the seed
# corpora also run in test-go. The budget is a count of executions, not a
# duration: Go 1.26's fuzz coordinator can report a spurious "context deadline
# exceeded" when a duration budget ends (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 20000x
FUZZ_TARGETS := ./policy/mask:FuzzMaskResult ./policy/mask:FuzzMaskRecord ./tools:FuzzParse ./connectors/pgwire:FuzzReadMessage

test-fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$pkg $$fn ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

# bench runs the performance measurements one after another and prints one
# summary table (internal/benchreport); it exits 1 when a target is missed.
# BENCH_FLAGS passes flags to it, e.g. BENCH_FLAGS='-cpuprofile /tmp/mcp.prof'.
# Passthrough hook: declare BenchmarkPgbench (reporting x-direct and
# x-pgbouncer metrics) or add a bench-passthrough target printing them in
# `go test -bench` format, and this target runs and judges it.
bench:
	$(GO) run ./internal/benchreport -go $(GO) $(BENCH_FLAGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
