package realironic

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

// TestHarnessVirtualMediaTLS: with WithVirtualMedia and WithTLS, Ironic's
// API answers over HTTPS with the test CA's certificate (a client that
// does not trust it is refused), the redfish hardware type offers the
// redfish-virtual-media boot interface, and the configuration hands
// Ironic the CA to put into its ISOs.
func TestHarnessVirtualMediaTLS(t *testing.T) {
	testenv.NeedCommands(t, "ironic", "ironic-dbsync")
	ir := Start(t, WithVirtualMedia(), WithTLS())
	if !strings.HasPrefix(ir.URL, "https://") || ir.CAFile == "" {
		t.Fatalf("URL %s, CA %q", ir.URL, ir.CAFile)
	}
	ctx := context.Background()
	var drv struct {
		EnabledBootInterfaces  []string `json:"enabled_boot_interfaces"`
		EnabledPowerInterfaces []string `json:"enabled_power_interfaces"`
	}
	if err := ir.Do(ctx, http.MethodGet, "/v1/drivers/redfish", nil, &drv); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(drv.EnabledBootInterfaces, "redfish-virtual-media") || !slices.Contains(drv.EnabledPowerInterfaces, "redfish") {
		t.Errorf("redfish driver: %+v", drv)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(ir.URL + "/v1")
	if err == nil {
		resp.Body.Close()
		t.Fatal("a client without the test CA reached Ironic's API")
	}
	if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted client: %v, want a certificate error", err)
	}
	conf, err := os.ReadFile(filepath.Join(ir.StateDir, "ironic.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"api_ca_file = " + ir.CAFile, "use_swift = false", "isolinux_bin = /usr/lib/ISOLINUX/isolinux.bin", "http_root = " + ir.ImageDir} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("ironic.conf lacks %q", want)
		}
	}
}
