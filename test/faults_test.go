package test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goipa/goipa/internal/testenv"
	"github.com/goipa/goipa/test/realironic"
)

// TestWrongMACOnThePort: Ironic knows the node by a MAC the machine does
// not have. goipa keeps looking up and says why in its log; Ironic gives
// up at its callback timeout with a last_error; nothing hangs.
func TestWrongMACOnThePort(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "ironic", "ironic-dbsync", "unshare", "losetup", "go")
	ctx := context.Background()
	ir := realironic.Start(t, realironic.WithHeartbeatTimeout(10), realironic.WithCallbackTimeout(15))
	loop := loopDevice(t, 64<<20)
	uuid := loopNode(t, ir, "goipa-wrong-mac", "52:54:00:de:ad:01", loop, "manage")
	agent := startAgent(t, "--ipa-api-url="+ir.URL, "--goipa-devices="+loop)
	if err := ir.Provision(ctx, uuid, "clean", map[string]any{"clean_steps": []any{map[string]any{"interface": "deploy", "step": "erase_devices_metadata"}}}); err != nil {
		t.Fatal(err)
	}
	n, err := ir.WaitState(ctx, uuid, "clean failed", 120*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("last_error: %s", n.Err())
	if !strings.Contains(strings.ToLower(n.Err()), "timeout") {
		t.Errorf("last_error does not say the agent never called back: %q", n.Err())
	}
	log := agent.Log()
	if countLines(log, "lookup failed, retrying", "404") < 2 {
		t.Errorf("goipa does not say why lookup fails:\n%s", tail(log, 20))
	}
	if countLines(log, "lookup succeeded") != 0 {
		t.Error("lookup matched a node whose port has another MAC")
	}
}

// TestIronicRestartedMidDeploy: Ironic goes away while goipa writes the
// image. goipa's heartbeats fail and back off without giving up; once
// Ironic is back the deploy finishes.
func TestIronicRestartedMidDeploy(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "ironic", "ironic-dbsync", "unshare", "losetup", "sgdisk", "go")
	ctx := context.Background()
	ir := realironic.Start(t, realironic.WithHeartbeatTimeout(10))
	mac := hostMAC(t)
	loop := loopDevice(t, 256<<20)
	uuid := loopNode(t, ir, "goipa-restart", mac, loop, "manage", "provide")
	agent := startAgent(t, "--ipa-api-url="+ir.URL, "--goipa-devices="+loop)
	image := gptImage(t, 96<<20)
	if err := os.WriteFile(filepath.Join(ir.ImageDir, "restart.raw"), image, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ir.Patch(ctx, uuid, map[string]any{"op": "add", "path": "/instance_info", "value": map[string]any{
		"image_source": ir.ImageURL("restart.raw"), "image_os_hash_algo": "sha256", "image_os_hash_value": sha256Hex(image),
		"image_type": "whole-disk", "image_disk_format": "raw", "root_gb": 1}}); err != nil {
		t.Fatal(err)
	}
	ir.ThrottleImages(6 << 20) // 16 s of download: time for a restart
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
	if err := ir.Restart(ctx); err != nil {
		t.Fatalf("restarting Ironic: %v", err)
	}
	t.Log("Ironic restarted while goipa was writing the image")
	if _, err := ir.WaitState(ctx, uuid, "active", 240*time.Second, nil); err != nil {
		t.Fatalf("the deploy did not finish after the restart: %v", err)
	}
	if countLines(agent.Log(), "command finished", "command=deploy.execute_deploy_step", "status=SUCCEEDED") == 0 {
		t.Error("write_image did not succeed")
	}
}
