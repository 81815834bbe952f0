package test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goipa/goipa/internal/testenv"
	"github.com/goipa/goipa/test/realironic"
)

// TestImageServerStoppedMidDeploy: the image server goes away while goipa
// downloads. The deploy ends `deploy failed` with a last_error naming the
// cause, the disk is left unbootable, and the next deploy of the same node
// succeeds once the server is back.
func TestImageServerStoppedMidDeploy(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "ironic", "ironic-dbsync", "unshare", "losetup", "sgdisk", "go")
	ctx := context.Background()
	ir := realironic.Start(t, realironic.WithHeartbeatTimeout(10))
	mac := hostMAC(t)
	loop := loopDevice(t, 256<<20)
	uuid := loopNode(t, ir, "goipa-fail", mac, loop, "manage", "provide")
	agent := startAgent(t, "--ipa-api-url="+ir.URL, "--goipa-devices="+loop,
		"--ipa-image-download-connection-retries=2", "--ipa-image-download-connection-retry-interval=1")

	// An old, bootable disk.
	old := gptImage(t, 8<<20)
	if err := os.WriteFile(loopBacking(t, loop), old, 0o644); err != nil {
		t.Fatal(err)
	}
	image := gptImage(t, 64<<20)
	if err := os.WriteFile(filepath.Join(ir.ImageDir, "fail.raw"), image, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ir.Patch(ctx, uuid, map[string]any{"op": "add", "path": "/instance_info", "value": map[string]any{
		"image_source": ir.ImageURL("fail.raw"), "image_os_hash_algo": "sha256", "image_os_hash_value": sha256Hex(image),
		"image_type": "whole-disk", "image_disk_format": "raw", "root_gb": 1}}); err != nil {
		t.Fatal(err)
	}
	ir.ThrottleImages(8 << 20)
	if err := ir.Provision(ctx, uuid, "active", nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(120 * time.Second)
	for countLines(agent.Log(), "image progress") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the download never started")
		}
		time.Sleep(200 * time.Millisecond)
	}
	ir.StopImageServer()
	n, err := ir.WaitState(ctx, uuid, "deploy failed", 180*time.Second, nil)
	if err != nil {
		t.Fatalf("want deploy failed: %v", err)
	}
	t.Logf("last_error: %s", n.Err())
	if !strings.Contains(n.Err(), "write_image") || !(strings.Contains(n.Err(), "connection refused") || strings.Contains(n.Err(), "giving up")) {
		t.Errorf("last_error does not name the step and the cause: %q", n.Err())
	}
	head := make([]byte, 1<<20)
	f, err := os.Open(loop)
	if err != nil {
		t.Fatal(err)
	}
	f.ReadAt(head, 0)
	f.Close()
	if !bytes.Equal(head, make([]byte, 1<<20)) {
		t.Error("a failed deploy left a bootable first MiB")
	}

	// The server is back: the next deploy of the same node succeeds.
	ir.ThrottleImages(0)
	ir.StartImageServer()
	if err := ir.Provision(ctx, uuid, "active", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ir.WaitState(ctx, uuid, "active", 180*time.Second, nil); err != nil {
		t.Fatalf("redeploy: %v", err)
	}
	dev, _ := os.ReadFile(loop)
	if !bytes.Equal(dev[:len(image)], image) {
		t.Error("the redeploy did not write the image")
	}
}
