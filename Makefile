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

# The LangGraph Python example (examples/langgraph-python) against a real
# `toolgate dev`, with langgraph and langchain-mcp-adapters from PyPI: the
# whole suite (LangGraph Server included) on the pinned versions in .venv
# (constraints.txt), then the graph suite on the lowest versions pyproject.toml
# declares in .venv-floor. A venv is re-created only when its pins change.
PYTHON ?= python3
PY_EXAMPLE := examples/langgraph-python

define py_venv
	@cd $(PY_EXAMPLE) && want=$$(cat pyproject.toml $(2) $(3) | sha256sum | cut -d' ' -f1); \
	if [ "$$(cat $(1)/pins.sha256 2>/dev/null)" != "$$want" ]; then \
		echo "test-py: creating $(PY_EXAMPLE)/$(1) from $(2) and $(3)"; \
		rm -rf $(1) && $(PYTHON) -m venv $(1) && \
		$(1)/bin/pip install -q --disable-pip-version-check -c $(3) -r $(2) && \
		echo "$$want" > $(1)/pins.sha256; \
	fi
endef

test-py:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "test-py needs Python 3.11+")'
	$(call py_venv,.venv,requirements-test.txt,constraints.txt)
	$(call py_venv,.venv-floor,requirements-floor.txt,constraints-floor.txt)
	cd $(PY_EXAMPLE) && .venv/bin/ruff check && .venv/bin/ruff format --check && .venv/bin/mypy
	cd $(PY_EXAMPLE) && .venv/bin/python -m pytest
	cd $(PY_EXAMPLE) && .venv-floor/bin/python -m pytest tests/test_graph.py tests/test_identity.py tests/test_readme.py

test-go:
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

# The README's console screenshots (docs/console-*.png), taken by the
# browser test in headless Chromium (Debian's chromium package).
console-screenshots:
	$(GO) test -count=1 -run TestConsoleInBrowser ./cmd/toolgate -args -screenshots

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
