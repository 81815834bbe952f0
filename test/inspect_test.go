package test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/goipa/goipa/internal/testenv"
	"github.com/goipa/goipa/test/realironic"
)

// TestInspectionWithRealInspector boots nothing but runs goipa as a host
// process with ipa-inspection-callback-url, as Ironic's PXE config for
// managed inspection does: Debian's ironic-inspector must accept the
// inventory and Ironic must end up with the properties it derives.
func TestInspectionWithRealInspector(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedCommands(t, "ironic", "ironic-inspector", "ironic-inspector-dbsync", "unshare", "losetup", "go")
	ctx := context.Background()
	ir := realironic.Start(t, realironic.WithInspector(), realironic.WithHeartbeatTimeout(10))
	mac := hostMAC(t)
	loop := loopDevice(t, 6<<30) // sparse: the install disk the inspector sizes local_gb from

	uuid, err := ir.EnrollManualNode(ctx, "goipa-inspect", mac, map[string]any{}, map[string]any{"inspect_interface": "inspector"})
	if err != nil {
		t.Fatal(err)
	}
	if err := ir.Provision(ctx, uuid, "manage", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ir.WaitState(ctx, uuid, "manageable", 60*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	if err := ir.Provision(ctx, uuid, "inspect", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ir.WaitState(ctx, uuid, "inspect wait", 60*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	// The ramdisk only posts once Ironic has started inspection (notes, pitfall 7).
	agent := startAgent(t, "--ipa-inspection-callback-url="+ir.InspectorURL+"/v1/continue",
		"--ipa-api-url="+ir.URL, "--goipa-devices="+loop, "--BOOTIF=01-"+mac)
	n, err := ir.WaitState(ctx, uuid, "manageable", 120*time.Second, nil)
	if err != nil {
		t.Fatalf("inspection: %v\n%s", err, tail(agent.Log(), 40))
	}
	p := n.Properties
	want := map[string]string{
		"cpus":     fmt.Sprint(runtime.NumCPU()),
		"cpu_arch": "x86_64",
		"local_gb": "5", // 6 GiB disk, minus the 1 GiB the inspector keeps back
	}
	for k, v := range want {
		if fmt.Sprint(p[k]) != v {
			t.Errorf("property %s = %v, want %s (all: %v)", k, p[k], v, p)
		}
	}
	if mem, _ := p["memory_mb"]; fmt.Sprint(mem) == "" || fmt.Sprint(mem) == "0" || mem == nil {
		t.Errorf("memory_mb not set from the inventory: %v", p)
	}
	if countLines(agent.Log(), "inspection data accepted", uuid) == 0 {
		t.Errorf("goipa did not log the inspector's answer:\n%s", tail(agent.Log(), 40))
	}
}
