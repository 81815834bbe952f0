# goipa: the two commands a newcomer runs are `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
GO ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/goipa/goipa/agent.Version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Every wait in the suite is bounded; this is the outer bound (CI stops at 90).
TEST_TIMEOUT ?= 40m

.PHONY: all build deps test test-unit lint bench demo initramfs qemu clean

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

# gofmt, go vet, staticcheck, and go.mod/go.sum as `go mod tidy` would
# leave them.
lint:
	@unformatted=$$("$$($(GO) env GOROOT)/bin/gofmt" -l .); if [ -n "$$unformatted" ]; then echo "gofmt -l: not formatted:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	$(GO) mod tidy -diff

# Benchmarks; figures go into BENCHMARKS.md by hand with the machine and date.
bench: deps
	$(GO) test -count=1 -run '^$$' -bench . -benchmem -timeout 30m ./... | tee bench.out

# The main job: real Ironic 21.4 and ironic-inspector, in a provisioning
# network namespace, drive goipa's ramdisk booted in QEMU through
# inspection, cleaning, a deploy with a config drive, and undeploy.
demo: deps
	$(GO) test -count=1 -timeout 20m -run 'TestEndToEndWithRealIronic' -v ./test/

# The ramdisk: build/goipa.kernel and build/goipa.initramfs (Debian's
# kernel with the server driver set; KERNEL=linux-image-cloud-amd64
# MODULES=virtio for a small VM-only one; ARCH=arm64 for aarch64 servers).
ARCH ?= amd64
KERNEL ?= linux-image-$(ARCH)
MODULES ?= server
initramfs:
	$(GO) run ./cmd/goipa-build --arch $(ARCH) --kernel-package $(KERNEL) --modules $(MODULES) --version $(VERSION)

# Boot the ramdisk in QEMU (serial console here, agent on 127.0.0.1:9999).
QEMU_APPEND ?= ipa-standalone=1
qemu:
	$(GO) run ./cmd/goipa-build qemu --arch $(ARCH) --kernel-package $(KERNEL) --modules $(MODULES) --append '$(QEMU_APPEND)'

clean:
	rm -rf bin build bench.out
