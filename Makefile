# goipa: the two commands a newcomer runs are `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
GO ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/goipa/goipa/agent.Version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Every wait in the suite is bounded; this is the outer bound (CI stops at 90).
TEST_TIMEOUT ?= 40m

.PHONY: all build deps test test-unit lint bench demo initramfs qemu clean fuzz

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/goipa ./cmd/goipa

# Debian packages the tests drive (real Ironic, QEMU, disk tools, dnsmasq).
deps:
	bash test/install-deps.sh

# Packages whose tests run a second time under the race detector in
# make test: about 3 minutes here (agent 82 s, netcfg 23, rescue 38,
# inventory 10, mdraid, efi, rootfs, timesync a few each). Left out: image
# (289 s under -race), disk (its burn-in tests race on their progress
# callback), burnin (its loopback network test times out under load).
RACE_PKGS ?= ./agent/ ./rescue/ ./rootfs/ ./efi/ ./mdraid/ ./inventory/ ./netcfg/ ./timesync/...

# Every test: unit tests, root tests on loop devices and namespaces, and
# the tests against real Ironic. Installs what it needs first.
test: deps
	$(GO) mod download
	$(GO) vet ./...
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(GO) test -race -count=1 -timeout 20m $(RACE_PKGS)

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

# Every fuzz target in the module, FUZZTIME each (found with go test -list,
# so a new FuzzXxx runs without touching this file), all of them even when
# one fails. Failing inputs land in the package's testdata/fuzz, where
# plain go test replays them: commit them with the fix. Go 1.26's fuzz
# coordinator can fail a target with a bare "context deadline exceeded"
# when a starved worker misses the -fuzztime deadline (go.dev/issue/75804):
# such a run, with no failing input written, is run once more; a second
# one fails like any other.
FUZZTIME ?= 3s
fuzz:
	@log=$$(mktemp); trap 'rm -f $$log' EXIT; \
	targets=$$($(GO) test -list '^Fuzz' ./... | awk '/^Fuzz/ {t[n++] = $$1} /^ok / {for (i = 0; i < n; i++) print $$2 "," t[i]; n = 0}'); \
	[ -n "$$targets" ] || { echo "no fuzz targets found"; exit 1; }; \
	failed=; for pt in $$targets; do \
	  pkg=$${pt%,*}; target=$${pt#*,}; echo "fuzz $$target ($$pkg, $(FUZZTIME))"; \
	  for try in 1 2; do \
	    if $(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) -parallel 2 $$pkg >$$log 2>&1; then break; fi; \
	    if [ $$try = 1 ] && tail -n 4 $$log | grep -q '^    context deadline exceeded$$' && ! grep -q 'Failing input written' $$log; then \
	      echo "  go's fuzz coordinator stopped on its own deadline with no failing input (go.dev/issue/75804, fixed in Go 1.27): once more"; continue; fi; \
	    cat $$log; failed="$$failed $$target"; break; \
	  done; \
	done; \
	[ -z "$$failed" ] || { echo "fuzz targets that failed:$$failed"; exit 1; }

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
