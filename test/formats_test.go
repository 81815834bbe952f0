package test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/goipa/goipa/internal/testenv"
	"github.com/goipa/goipa/test/realironic"
)

// TestDeployQcow2AndZstdThroughIronic deploys the same disk as a qcow2
// image and as a zstd-compressed raw image through real Ironic, each
// with a config drive, and reads the disk back after each.
func TestDeployQcow2AndZstdThroughIronic(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "ironic", "ironic-dbsync", "unshare", "losetup", "sgdisk", "qemu-img", "go")
	ctx := context.Background()
	ir := realironic.Start(t, realironic.WithHeartbeatTimeout(10))
	mac := hostMAC(t)
	loop := loopDevice(t, 256<<20)
	uuid := loopNode(t, ir, "goipa-formats", mac, loop, "manage", "provide")
	startAgent(t, "--ipa-api-url="+ir.URL, "--goipa-devices="+loop)

	raw := gptImage(t, 24<<20)
	rawPath := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(rawPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	qcow := filepath.Join(ir.ImageDir, "disk.qcow2")
	if out, err := exec.Command("qemu-img", "convert", "-c", "-O", "qcow2", rawPath, qcow).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v: %s", err, out)
	}
	var zs bytes.Buffer
	zw, _ := zstd.NewWriter(&zs)
	zw.Write(raw)
	zw.Close()
	if err := os.WriteFile(filepath.Join(ir.ImageDir, "disk.raw.zst"), zs.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct{ file, format string }{{"disk.qcow2", "qcow2"}, {"disk.raw.zst", "raw"}} {
		body, err := os.ReadFile(filepath.Join(ir.ImageDir, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		if err := ir.Patch(ctx, uuid, map[string]any{"op": "add", "path": "/instance_info", "value": map[string]any{
			"image_source": ir.ImageURL(tc.file), "image_os_hash_algo": "sha256", "image_os_hash_value": sha256Hex(body),
			"image_type": "whole-disk", "image_disk_format": tc.format, "root_gb": 1}}); err != nil {
			t.Fatal(err)
		}
		marker := "goipa-format-" + tc.format
		if err := ir.Provision(ctx, uuid, "active", map[string]any{"configdrive": map[string]any{"meta_data": map[string]any{"name": marker}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := ir.WaitState(ctx, uuid, "active", 180*time.Second, nil); err != nil {
			t.Fatalf("%s deploy: %v", tc.file, err)
		}
		dev := readHead(t, loop, len(raw))
		if !bytes.Equal(dev[34*512:], raw[34*512:]) {
			t.Errorf("%s: the disk does not hold the image", tc.file)
		}
		checkConfigDrive(t, loop, marker)
		if i == 0 {
			if err := ir.Provision(ctx, uuid, "deleted", nil); err != nil {
				t.Fatal(err)
			}
			if _, err := ir.WaitState(ctx, uuid, "available", 180*time.Second, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
}
