package image

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseInfoFromTheCapture(t *testing.T) {
	// write_image's image_info as Ironic 21.4 sends it (notes, section 4.4).
	raw := map[string]any{
		"id": "node-0.raw", "urls": []any{"http://127.0.0.1:8089/node-0.raw"},
		"disk_format": "raw", "container_format": nil, "stream_raw_images": true,
		"os_hash_algo": "sha256", "os_hash_value": strings.Repeat("a", 64), "node_uuid": "u1",
		"proxies": map[string]any{"http": "http://proxy:3128", "https": ""}, "no_proxy": "10.0.0.0/8",
		"some_future_key": 1,
	}
	ii, err := ParseInfo(raw, true)
	require.NoError(t, err)
	assert.Equal(t, "node-0.raw", ii.ID)
	assert.Equal(t, []string{"http://127.0.0.1:8089/node-0.raw"}, ii.URLs)
	assert.Equal(t, "raw", ii.DiskFormat)
	assert.Equal(t, "sha256", ii.OSHashAlgo)
	assert.Equal(t, map[string]string{"http": "http://proxy:3128"}, ii.Proxies)
	assert.False(t, ii.IsPartition())
}

func TestParseInfoPartition(t *testing.T) {
	raw := map[string]any{
		"id": "p", "urls": []any{"http://x/p"}, "checksum": strings.Repeat("b", 32),
		"image_type": "partition", "root_mb": 1024.0, "swap_mb": 0.0, "ephemeral_mb": 0.0,
		"ephemeral_format": nil, "preserve_ephemeral": false, "deploy_boot_mode": "bios",
	}
	ii, err := ParseInfo(raw, true)
	require.NoError(t, err)
	assert.True(t, ii.IsPartition())
	assert.Equal(t, 1024, ii.RootMB)
}

func TestParseInfoErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  map[string]any
		md5  bool
		want string
	}{
		{"no id", map[string]any{"urls": []any{"http://x"}, "checksum": strings.Repeat("a", 64)}, true, "'id'"},
		{"no urls", map[string]any{"id": "x", "checksum": strings.Repeat("a", 64)}, true, "'urls'"},
		{"empty urls", map[string]any{"id": "x", "urls": []any{}, "checksum": strings.Repeat("a", 64)}, true, "'urls'"},
		{"empty checksum", map[string]any{"id": "x", "urls": []any{"http://x"}, "checksum": ""}, true, "'checksum'"},
		{"half os_hash", map[string]any{"id": "x", "urls": []any{"http://x"}, "os_hash_algo": "sha256"}, true, "os_hash"},
		{"no checksum", map[string]any{"id": "x", "urls": []any{"http://x"}}, true, "usable checksum"},
		{"md5 refused", map[string]any{"id": "x", "urls": []any{"http://x"}, "checksum": strings.Repeat("c", 32)}, false, "MD5"},
		{"partition without sizes", map[string]any{"id": "x", "urls": []any{"http://x"}, "checksum": strings.Repeat("a", 64), "image_type": "partition"}, true, "root_mb"},
		{"id not a string", map[string]any{"id": 5, "urls": []any{"http://x"}, "checksum": strings.Repeat("a", 64)}, true, "'id'"},
	} {
		_, err := ParseInfo(tc.raw, tc.md5)
		require.Error(t, err, tc.name)
		var e *InvalidInfoError
		require.ErrorAs(t, err, &e, tc.name)
		assert.Contains(t, e.Details, tc.want, tc.name)
	}
	_, err := ParseInfo(map[string]any{"id": "x", "urls": []any{"http://x"}, "checksum": "http://x/SHA256SUMS"}, false)
	assert.NoError(t, err, "a checksum URL is always usable")
}
