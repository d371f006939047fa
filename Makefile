GO ?= go
PKGS := ./...

.PHONY: run test test-go test-fuzz test-js test-py bench lint build

build:
	$(GO) build -o bin/toolgate ./cmd/toolgate

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

# Every fuzz target for a short fixed budget (FUZZTIME each, or the count
# after a third colon); the seed corpora also run in test-go. The budget is a
# count of executions, not a duration: Go 1.26's fuzz coordinator can report a
# spurious "context deadline exceeded" when a duration budget ends
# (golang/go#75804, fixed in Go 1.27). FuzzProtocol opens a proxy session to
# a real PostgreSQL per input (and starts one server per worker), hence its
# smaller count.
FUZZTIME ?= 20000x
FUZZ_TARGETS := ./policy/mask:FuzzMaskResult ./policy/mask:FuzzMaskRecord ./tools:FuzzParse ./connectors/pgwire:FuzzReadMessage \
	./connectors/pgwire:FuzzProtocol:600x

test-fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; fn=$${rest%%:*}; budget=$(FUZZTIME); \
		case $$rest in *:*) budget=$${rest#*:};; esac; \
		echo "fuzz $$pkg $$fn ($$budget)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $$budget $$pkg; \
	done

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
