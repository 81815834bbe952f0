# goipa: the two commands a newcomer runs are `make demo` and `make test`.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/goipa/goipa/agent.Version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Every wait in the suite is bounded; this is the outer bound (CI stops at 90).
TEST_TIMEOUT ?= 40m

.PHONY: all build deps test test-unit test-e2e lint bench demo clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/goipa ./cmd/goipa

# Debian packages the tests drive (real Ironic, QEMU, disk tools, dnsmasq).
deps:
	bash test/install-deps.sh

# Every test: unit tests, root tests on loop devices and namespaces, and
# the tests against real Ironic. Installs what it needs first.
test: deps
	$(GO) mod download
	$(GO) vet ./...
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

# Fast tests that need neither root nor Debian packages.
test-unit:
	GOIPA_SKIP_E2E=1 $(GO) test -count=1 -short ./...

lint:
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# Benchmarks; figures go into BENCHMARKS.md by hand with the machine and date.
bench: deps
	$(GO) test -count=1 -run '^$$' -bench . -benchmem -timeout 30m ./... | tee bench.out

demo:
	@echo "make demo: not yet. It boots goipa in QEMU and deploys an image through real Ironic;"
	@echo "that lands with the end-to-end issue. Until then: make test runs goipa against real Ironic."

clean:
	rm -rf bin bench.out
