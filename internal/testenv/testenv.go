// Package testenv decides whether a test that needs the real machine
// (root, loop devices, network namespaces, QEMU, Debian packages) can run.
//
// Such tests run in CI and must fail loudly when a prerequisite is missing,
// so a broken machine is never mistaken for a passing suite. The only way to
// skip them is to set GOIPA_SKIP_E2E=1 by hand.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// SkipRequested reports whether the developer asked to skip machine tests.
func SkipRequested() bool { return os.Getenv("GOIPA_SKIP_E2E") == "1" }

// NeedRoot fails the test unless it runs as root, or skips it when
// GOIPA_SKIP_E2E=1.
func NeedRoot(t testing.TB) {
	t.Helper()
	if SkipRequested() {
		t.Skip("GOIPA_SKIP_E2E=1: skipping a test that needs root")
	}
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (set GOIPA_SKIP_E2E=1 to skip it on purpose)")
	}
}

// NeedCommands fails the test unless every named program is on PATH, or
// skips it when GOIPA_SKIP_E2E=1.
func NeedCommands(t testing.TB, names ...string) {
	t.Helper()
	if SkipRequested() {
		t.Skipf("GOIPA_SKIP_E2E=1: skipping a test that needs %v", names)
	}
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Fatalf("this test needs %q on PATH (run `make test`, which installs it, or set GOIPA_SKIP_E2E=1 to skip): %v", n, err)
		}
	}
}
