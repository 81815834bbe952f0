package bootc

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goipa/goipa/image"
)

// TestRootMiB: the root gets what the ESP, the tables and the config
// drive leave; a disk that cannot hold the image's compressed size plus
// headroom is refused with the sizes named.
func TestRootMiB(t *testing.T) {
	dev := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(dev, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(dev, 2<<30); err != nil {
		t.Fatal(err)
	}
	img := &Image{Source: "oci://registry.example/os:1", Layers: make([]*image.OCISource, 3), Compressed: 700 << 20}
	got, err := RootMiB(dev, img)
	if err != nil {
		t.Fatal(err)
	}
	if want := 2048 - 1 - 512 - 1 - 64 - 1; got != want {
		t.Errorf("RootMiB = %d, want %d", got, want)
	}
	img.Compressed = 1500 << 20
	_, err = RootMiB(dev, img)
	var small *TooSmallError
	if !errors.As(err, &small) {
		t.Fatalf("RootMiB with a 1500 MiB image on 2 GiB: %v, want *TooSmallError", err)
	}
	if want := "(2048 MiB) is too small for oci://registry.example/os:1: its 3 layers are 1500 MiB compressed"; !strings.Contains(small.Details, want) {
		t.Errorf("details %q lack %q", small.Details, want)
	}
	if _, err := RootMiB(filepath.Join(t.TempDir(), "missing"), img); err == nil || errors.As(err, &small) {
		t.Errorf("a missing device: %v, want a plain error", err)
	}
}
