package realironic

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/goipa/goipa/internal/testenv"
)

// TestHarness proves the harness itself against the real thing: Ironic
// starts, a node enrolls, goes to manageable, and manual cleaning waits
// for an agent in `clean wait`, where lookup hands out a token.
func TestHarness(t *testing.T) {
	testenv.NeedCommands(t, "ironic", "ironic-dbsync")
	start := time.Now()
	ir := Start(t)
	t.Logf("Ironic up in %s at %s", time.Since(start).Round(time.Millisecond), ir.URL)
	ctx := context.Background()
	mac := "52:54:00:aa:bb:01"
	uuid, err := ir.EnrollManualNode(ctx, "harness-0", mac, map[string]any{"cpu_arch": "x86_64"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ir.Provision(ctx, uuid, "manage", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ir.WaitState(ctx, uuid, "manageable", 60*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	if err := ir.Provision(ctx, uuid, "clean", map[string]any{"clean_steps": []any{map[string]any{"interface": "deploy", "step": "erase_devices_metadata"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ir.WaitState(ctx, uuid, "clean wait", 60*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	// A lookup now answers with a token, as the agent will see it.
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/v1/lookup?addresses=%s", ir.URL, mac), nil)
	req.Header.Set("X-OpenStack-Ironic-API-Version", "1.62")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("lookup in clean wait: HTTP %d", resp.StatusCode)
	}
	if err := ir.Provision(ctx, uuid, "abort", nil); err != nil {
		t.Fatal(err)
	}
}
