// Package testenv decides whether a test that needs the real machine
// (root, loop devices, network namespaces, QEMU, Debian packages) can run.
//
// Such tests run in CI and must fail loudly when a prerequisite is missing,
// so a broken machine is never mistaken for a passing suite. The only way to
// skip them is to set GOIPA_SKIP_E2E=1 by hand.
//
// Tests leave nothing behind, pass or fail: their own files go in
// t.TempDir, and what a package's tests share (a binary or a ramdisk
// built once per run) in SharedTempDir, which Main removes at the end.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
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

// shared holds the folders SharedTempDir made in this test binary.
var shared struct {
	sync.Mutex
	dirs []string
}

// SharedTempDir makes a temporary folder for what a package's tests share
// across tests: a binary or a ramdisk built once per run. A test's own
// files belong in t.TempDir; these outlive any one test, so Main removes
// them when the run ends, pass or fail.
func SharedTempDir(prefix string) (string, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	shared.Lock()
	defer shared.Unlock()
	shared.dirs = append(shared.dirs, dir)
	return dir, nil
}

// Main runs a package's tests and then removes every SharedTempDir, and
// returns the status to exit with. A package that uses SharedTempDir
// calls it from its TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
//
// (os.Exit skips deferred calls, hence the status is returned, not used.)
func Main(m *testing.M) int {
	code := m.Run()
	if err := removeShared(); err != nil {
		fmt.Fprintln(os.Stderr, "testenv: removing the shared temporary folders:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func removeShared() error {
	shared.Lock()
	defer shared.Unlock()
	var errs []error
	for _, d := range shared.dirs {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
		}
	}
	shared.dirs = nil
	return errors.Join(errs...)
}
