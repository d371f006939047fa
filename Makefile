GO ?= go
PKGS := ./...

.PHONY: run test test-go test-js test-py bench lint build fuzz

build:
	$(GO) build -o bin/toolgate ./cmd/toolgate

run: build
	./bin/toolgate dev

test: lint test-go test-js test-py

# The LangGraph.js example against a real `toolgate dev` (Node 20+, npm).
test-js:
	cd examples/langgraph-js && npm ci --no-audit --no-fund && npm test

# The LangGraph Python example cannot install its packages here: compile only.
test-py:
	python3 -m py_compile examples/langgraph-python/*.py

test-go:
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s -count 1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
