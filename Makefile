GO ?= go
PKGS := ./...

.PHONY: run test test-go bench lint build fuzz

build:
	$(GO) build -o bin/toolgate ./cmd/toolgate

run: build
	./bin/toolgate dev

test: lint test-go

test-go:
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

# bench runs the DESIGN §11 measurements one after another and prints one
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
