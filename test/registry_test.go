package test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/goipa/goipa/internal/testenv"
	"github.com/goipa/goipa/test/realironic"
)

// TestOCIImageFromDockerRegistry pushes a disk image as an OCI artifact
// to Debian's docker-registry (distribution 2.8) and writes it to a loop
// device with `goipa write-image oci://...`: the tag resolved, the blob
// fetched (in parallel ranges: it is over 64 MiB) and checked against
// its digest, the device read back.
func TestOCIImageFromDockerRegistry(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "docker-registry", "losetup", "go")
	dir := t.TempDir()
	port := realironic.FreePort(t)
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%d\n", filepath.Join(dir, "data"), port)), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := exec.Command("docker-registry", "serve", cfg)
	reg.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logf, _ := os.Create(filepath.Join(dir, "registry.log"))
	reg.Stdout, reg.Stderr = logf, logf
	if err := reg.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Process.Kill(); reg.Wait() })
	host := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "registry.log"))
			t.Fatalf("docker-registry did not answer: %v\n%s", err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}

	disk := make([]byte, 72<<20)
	rand.Read(disk)
	layer := static.NewLayer(disk, types.MediaType("application/vnd.goipa.disk.raw"))
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: layer, Annotations: map[string]string{"org.opencontainers.image.title": "node.raw"}})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host+"/images/node:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		t.Fatal(err)
	}
	loop := loopDevice(t, 80<<20)
	out, err := exec.CommandContext(ctx, goipa(t), "write-image", "--source", "oci://"+host+"/images/node:v1", "--device", loop, "--insecure").CombinedOutput()
	if err != nil {
		t.Fatalf("write-image: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "sha256 "+sha256Hex(disk)+" verified") {
		t.Errorf("not verified against the blob digest:\n%s", out)
	}
	if !strings.Contains(string(out), "parallel range requests") {
		t.Errorf("a 72 MiB blob from a registry that serves ranges should come in parallel ranges:\n%s", out)
	}
	if got := readHead(t, loop, len(disk)); sha256Hex(got) != sha256Hex(disk) {
		t.Error("the device does not hold the image")
	}
	// A tag that does not exist: a clear error, nothing written.
	out, err = exec.CommandContext(ctx, goipa(t), "write-image", "--source", "oci://"+host+"/images/node:v2", "--device", loop, "--insecure").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "images/node") {
		t.Errorf("a missing tag: want an error naming it, got %v\n%s", err, out)
	}
}
