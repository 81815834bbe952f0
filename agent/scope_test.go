package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWritersRefuseDevicesOutsideGoipaDevices: whatever disk the
// selector picks (a host's own disk, say), prepare_image,
// install_bootloader and inject_files refuse it when goipa-devices does
// not allow it, with IPA's DeviceNotFound, and write nothing to it.
func TestWritersRefuseDevicesOutsideGoipaDevices(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "host-disk")
	before := make([]byte, 4096)
	copy(before, "the host's own data")
	require.NoError(t, os.WriteFile(outside, before, 0o644))
	fd := &fakeDeploy{disk: outside}
	a := newTestAgent(t, "ipa-standalone=1 goipa-devices=/dev/loop7", WithDeploy(fd, fd, fd))
	c := newAPI(t, a)
	node := map[string]any{"uuid": "n1"}
	ii := map[string]any{"id": "img.raw", "urls": []any{"http://127.0.0.1:1/img.raw"}, "checksum": strings.Repeat("a", 64)}
	for _, tc := range []struct {
		name   string
		params map[string]any
	}{
		{"standby.prepare_image", map[string]any{"image_info": ii}},
		{"image.install_bootloader", map[string]any{"root_uuid": "9f0f5a9e-8f6e-4a4b-a1a1-6c7d5c9e0b11", "target_boot_mode": "bios"}},
		{"deploy.execute_deploy_step", map[string]any{"node": node, "ports": []any{}, "step": map[string]any{"interface": "deploy", "step": "inject_files",
			"args": map[string]any{"files": []any{map[string]any{"path": "/etc/x", "partition": 1, "content": "eA=="}}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, res := c.post(tc.name, tc.params, "?wait=true")
			require.Equal(t, 200, code, "%v", res)
			assert.Equal(t, StatusFailed, res["command_status"])
			ce, _ := res["command_error"].(map[string]any)
			if ce == nil { // a step's error is inside its result
				t.Fatalf("no command_error: %v", res)
			}
			assert.Equal(t, "DeviceNotFound", ce["type"], "%v", ce)
			assert.Contains(t, ce["details"], "refusing to write "+outside)
			assert.Nil(t, fd.written, "no image was written")
			after, err := os.ReadFile(outside)
			require.NoError(t, err)
			assert.Equal(t, before, after, "the disk outside goipa-devices changed")
		})
	}
}
