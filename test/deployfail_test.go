package test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
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
// cause, Ironic stores goipa's log bundle in its deploy logs directory
// (deploy_logs_collect = on_failure), the disk is left unbootable, and the
// next deploy of the same node succeeds once the server is back.
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
	checkDeployLogs(t, ir, uuid, loop)

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

// checkDeployLogs finds the bundle Ironic stored for node (its
// store_ramdisk_logs names it <uuid>_<name>_..._<time>.tar.gz under
// deploy_logs_local_path) and checks it holds every member an operator
// reads, with the failure in the agent's log and the node's disk in lsblk.
func checkDeployLogs(t *testing.T, ir *realironic.Ironic, uuid, loop string) {
	t.Helper()
	var found []string
	deadline := time.Now().Add(60 * time.Second)
	for len(found) == 0 {
		found, _ = filepath.Glob(filepath.Join(ir.StateDir, "deploy-logs", uuid+"_*.tar.gz"))
		if len(found) == 0 && time.Now().After(deadline) {
			t.Fatalf("no log bundle for %s in Ironic's deploy logs directory", uuid)
		}
		time.Sleep(200 * time.Millisecond)
	}
	raw, err := os.ReadFile(found[0])
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s: %v", found[0], err)
	}
	files := map[string]string{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", found[0], err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = string(b)
	}
	t.Logf("Ironic stored %s: %d bytes, %d members", filepath.Base(found[0]), len(raw), len(files))
	for _, name := range []string{"journal", "dmesg", "df", "efibootmgr", "ip_addr", "ip_link", "ip_route", "lsblk", "lsblk-full",
		"mdstat", "mount", "multipath", "ps", "lspci", "lsmod", "cmdline", "cpuinfo", "meminfo", "inventory.json", "status.json"} {
		if _, ok := files[name]; !ok {
			t.Errorf("the stored bundle has no %s", name)
		}
	}
	if !strings.Contains(files["journal"], "write_image") {
		t.Errorf("the agent's log in the bundle does not show the failed write_image:\n%s", tail(files["journal"], 20))
	}
	if !strings.Contains(files["lsblk"], filepath.Base(loop)+" ") {
		t.Errorf("lsblk in the bundle lacks the node's disk %s:\n%s", loop, files["lsblk"])
	}
	if !strings.Contains(files["ip_addr"], "127.0.0.1/8") {
		t.Errorf("ip_addr in the bundle:\n%s", files["ip_addr"])
	}
}
