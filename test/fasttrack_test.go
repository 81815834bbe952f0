package test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goipa/goipa/internal/testenv"
	"github.com/goipa/goipa/test/realironic"
)

// TestFastTrackWithRealIronic: with [deploy]fast_track on, an agent
// started beside an available node looks it up and heartbeats, and
// Ironic deploys through it without a reboot: the same agent, one
// lookup, one token, from available to active; the power-off at the
// end of the deploy is what ends the operation.
func TestFastTrackWithRealIronic(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "ironic", "ironic-dbsync", "unshare", "losetup", "sgdisk", "go")
	ctx := context.Background()
	ir := realironic.Start(t, realironic.WithHeartbeatTimeout(10), realironic.WithFastTrack())
	loop := loopDevice(t, 64<<20)
	uuid := loopNode(t, ir, "goipa-fasttrack", hostMAC(t), loop, "manage", "provide")
	// The machine is on with the agent running: what fast track keeps.
	if err := ir.Do(ctx, http.MethodPut, "/v1/nodes/"+uuid+"/states/power", map[string]any{"target": "power on"}, nil); err != nil {
		t.Fatal(err)
	}
	agent := startAgent(t, "--ipa-api-url="+ir.URL, "--goipa-devices="+loop)

	// The agent finds the available node (fast track allows the lookup)
	// and heartbeats: Ironic records it.
	deadline := time.Now().Add(90 * time.Second)
	for {
		n, err := ir.GetNode(ctx, uuid)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := n.DriverInternalInfo["agent_last_heartbeat"]; ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no heartbeat recorded on the available node\n%s", tail(agent.Log(), 30))
		}
		time.Sleep(time.Second)
	}

	img := gptImage(t, 24<<20)
	if err := os.WriteFile(filepath.Join(ir.ImageDir, "disk.raw"), img, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ir.Patch(ctx, uuid, map[string]any{"op": "add", "path": "/instance_info", "value": map[string]any{
		"image_source": ir.ImageURL("disk.raw"), "image_os_hash_algo": "sha256", "image_os_hash_value": sha256Hex(img),
		"image_type": "whole-disk", "image_disk_format": "raw", "root_gb": 1}}); err != nil {
		t.Fatal(err)
	}
	lookupsBefore := countLines(agent.Log(), "lookup succeeded")
	start := time.Now()
	if err := ir.Provision(ctx, uuid, "active", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ir.WaitState(ctx, uuid, "active", 180*time.Second, nil); err != nil {
		t.Fatalf("fast-track deploy: %v\n%s", err, tail(agent.Log(), 40))
	}
	t.Logf("fast-track deploy: available to active in %.1f s", time.Since(start).Seconds())
	log := agent.Log()
	if lookupsBefore != 1 {
		t.Errorf("want one lookup before the deploy, got %d", lookupsBefore)
	}
	// Between the first lookup and the deploy's write, the agent did not start over.
	i := strings.Index(log, "writing image")
	if i < 0 {
		t.Fatalf("the deploy did not write through this agent:\n%s", tail(log, 30))
	}
	if n := countLines(log[:i], "lookup succeeded"); n != 1 {
		t.Errorf("the agent looked the node up %d times before writing: fast track should keep it running\n%s", n, log[:i])
	}
	if got := readHead(t, loop, len(img)); sha256Hex(got[34*512:]) != sha256Hex(img[34*512:]) {
		t.Error("the disk does not hold the image")
	}
	// After the deploy's power-off this host agent "reboots"; Ironic keeps
	// the token (fast track), so it backs off instead of spinning.
	time.Sleep(3 * time.Second)
	if n := countLines(agent.Log(), "lookup succeeded"); n > 4 {
		t.Errorf("%d lookups within seconds of the deploy: the tokenless agent is spinning", n)
	}
}
