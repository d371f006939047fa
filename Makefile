GO ?= go
PKGS := ./...

.PHONY: run test test-go bench bench-passthrough lint build fuzz

build:
	$(GO) build -o bin/toolgate ./cmd/toolgate

run: build
	./bin/toolgate dev

test: lint test-go

test-go:
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s -count 1 ./...
	$(MAKE) bench-passthrough

bench-passthrough:
	@command -v pgbouncer >/dev/null || (apt-get update && apt-get install -y pgbouncer)
	TOOLGATE_BENCH_PASSTHROUGH=1 TOOLGATE_REQUIRE_POSTGRES=1 $(GO) test -run '^TestPgbenchRatios$$' -v -count 1 -timeout 10m ./connectors/pgwire/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
