package test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goipa/goipa/internal/testenv"
)

// TestCommandLineEngines runs `goipa write-image` and `goipa erase` as an
// operator would, on a loop device the test made.
func TestCommandLineEngines(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "losetup", "sgdisk", "go")
	loop := loopDevice(t, 64<<20)
	img := gptImage(t, 16<<20)
	src := filepath.Join(t.TempDir(), "img.raw")
	if err := os.WriteFile(src, img, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(goipa(t), "write-image", "--source", "file://"+src, "--checksum", "sha256:"+sha256Hex(img), "--device", loop).CombinedOutput()
	if err != nil {
		t.Fatalf("write-image: %v\n%s", err, out)
	}
	dev, _ := os.ReadFile(loop)
	if !bytes.Equal(dev[:len(img)], img) {
		t.Error("write-image did not put the image on the device")
	}
	out, err = exec.Command(goipa(t), "write-image", "--source", "file://"+src, "--checksum", strings.Repeat("0", 64), "--device", loop).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "checksum mismatch") {
		t.Errorf("a wrong checksum must fail with its cause: %v\n%s", err, out)
	}
	out, err = exec.Command(goipa(t), "write-image", "--source", "file://"+src, "--checksum", sha256Hex(img)).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--device") {
		t.Errorf("write-image without --device must refuse: %v\n%s", err, out)
	}
	if err := exec.Command(goipa(t), "write-image", "--source", "file://"+src, "--checksum", sha256Hex(img), "--device", loop).Run(); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(goipa(t), "erase", "--device", loop, "--method", "auto").CombinedOutput()
	if err != nil {
		t.Fatalf("erase: %v\n%s", err, out)
	}
	// A loop device guarantees zeros after a discard: auto stops there.
	if !strings.Contains(string(out), `"discard"`) {
		t.Errorf("erase printed no report of a discard erase:\n%s", out)
	}
	dev, _ = os.ReadFile(loop)
	if !bytes.Equal(dev, make([]byte, len(dev))) {
		t.Error("erase left data on the device")
	}
}
