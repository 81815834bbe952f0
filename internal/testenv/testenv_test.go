package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSharedTempDirsAreRemoved: what SharedTempDir made, with whatever a
// build left in it, is gone after the end-of-run removal, and only that.
func TestSharedTempDirsAreRemoved(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	var dirs []string
	for _, prefix := range []string{"goipa-bin-", "goipa-ramdisk-"} {
		d, err := SharedTempDir(prefix)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Dir(d) != os.TempDir() {
			t.Errorf("%s is not in the temporary folder %s", d, os.TempDir())
		}
		if err := os.MkdirAll(filepath.Join(d, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "sub", "goipa"), []byte("binary"), 0o755); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	other := filepath.Join(os.TempDir(), "goipa-not-ours")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := removeShared(); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s is still there (%v)", d, err)
		}
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("a folder SharedTempDir did not make was removed: %v", err)
	}
}
