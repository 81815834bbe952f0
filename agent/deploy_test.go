package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type fakeDeploy struct {
	disk     string
	hints    map[string]any
	written  *ImageInfo
	iso      []byte
	writeErr error
}

func (f *fakeDeploy) RootDisk(ctx context.Context, hints map[string]any) (string, error) {
	f.hints = hints
	return f.disk, nil
}

func (f *fakeDeploy) WriteImage(ctx context.Context, ii *ImageInfo, device string, progress func(any)) error {
	progress(map[string]any{"bytes": 1})
	f.written = ii
	if f.writeErr != nil {
		return f.writeErr
	}
	// A whole-disk image with MBR signature 0x12345678.
	b := make([]byte, 512)
	copy(b[440:], []byte{0x78, 0x56, 0x34, 0x12})
	return os.WriteFile(device, b, 0o644)
}

func (f *fakeDeploy) WriteConfigDrive(ctx context.Context, device string, iso []byte) (string, error) {
	f.iso = iso
	return device + "p2", nil
}

func gzB64(t *testing.T, data []byte) string {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(data)
	require.NoError(t, zw.Close())
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

func TestWriteImageStep(t *testing.T) {
	disk := filepath.Join(t.TempDir(), "disk")
	fd := &fakeDeploy{disk: disk}
	a := newTestAgent(t, "ipa-standalone=1 goipa-devices=/dev/loop7", WithDeploy(fd, fd, fd))
	a.cfg.Devices = []string{disk} // the fake install disk is a file: named as it is
	c := newAPI(t, a)

	code, res := c.post("standby.get_partition_uuids", map[string]any{}, "?wait=true")
	require.Equal(t, 200, code)
	assert.Equal(t, map[string]any{}, res["command_result"], "nothing written yet")

	node := map[string]any{"uuid": "n1", "instance_info": map[string]any{"root_device": map[string]any{"name": "/dev/loop7"}}}
	step := map[string]any{"interface": "deploy", "step": "write_image", "args": map[string]any{
		"image_info": map[string]any{"id": "img.raw", "urls": []any{"http://x/img.raw"}, "disk_format": "raw",
			"os_hash_algo": "sha256", "os_hash_value": strings.Repeat("a", 64)},
		"configdrive": gzB64(t, []byte("ISO9660 bytes")),
	}}
	code, res = c.post("deploy.execute_deploy_step", map[string]any{"step": step, "node": node, "ports": []any{},
		"deploy_version": map[string]any{"generic_hardware_manager": "1.1"}}, "?wait=true")
	require.Equal(t, 200, code)
	require.Equal(t, StatusSucceeded, res["command_status"], "%v", res["command_error"])
	cr := res["command_result"].(map[string]any)
	assert.Equal(t, map[string]any{"result": "prepare_image: image (img.raw) written to device " + disk + " root_uuid=None"}, cr["deploy_result"])
	assert.Equal(t, "write_image", cr["deploy_step"].(map[string]any)["step"])
	assert.Equal(t, map[string]any{"name": "/dev/loop7"}, fd.hints)
	assert.Equal(t, "ISO9660 bytes", string(fd.iso))
	assert.Equal(t, "img.raw", fd.written.ID)

	code, res = c.post("standby.get_partition_uuids", map[string]any{}, "?wait=true")
	require.Equal(t, 200, code)
	assert.Equal(t, map[string]any{"root uuid": "0x12345678"}, res["command_result"])

	// Through standby.prepare_image the message gets the command prefix.
	code, res = c.post("standby.prepare_image", map[string]any{"image_info": step["args"].(map[string]any)["image_info"]}, "?wait=true")
	require.Equal(t, 200, code)
	assert.Equal(t, map[string]any{"result": "prepare_image: image (img.raw) written to device " + disk + " root_uuid=None"}, res["command_result"])
}

func TestWriteImageFailures(t *testing.T) {
	disk := filepath.Join(t.TempDir(), "disk")
	fd := &fakeDeploy{disk: disk, writeErr: errors.New("checksum mismatch: want aaa, got bbb")}
	a := newTestAgent(t, "ipa-standalone=1 goipa-devices=/dev/loop7", WithDeploy(fd, fd, fd))
	a.cfg.Devices = []string{disk} // the fake install disk is a file: named as it is
	c := newAPI(t, a)
	ii := map[string]any{"id": "img.raw", "urls": []any{"http://x/img.raw"}, "checksum": strings.Repeat("a", 64)}

	_, res := c.post("standby.prepare_image", map[string]any{"image_info": ii}, "?wait=true")
	assert.Equal(t, StatusFailed, res["command_status"])
	assert.Contains(t, res["command_error"].(map[string]any)["details"], "checksum mismatch")
	_, res = c.post("standby.get_partition_uuids", map[string]any{}, "?wait=true")
	assert.Equal(t, map[string]any{}, res["command_result"], "a failed write is not reported as written")

	fd.writeErr = nil
	_, res = c.post("standby.prepare_image", map[string]any{"image_info": ii, "configdrive": "bm90IGd6aXA="}, "?wait=true")
	assert.Equal(t, StatusSucceeded, res["command_status"], "plain base64 config drive is used as is")
	_, res = c.post("standby.prepare_image", map[string]any{"image_info": ii, "configdrive": base64.StdEncoding.EncodeToString([]byte{0x1f, 0x8b, 1, 2, 3})}, "?wait=true")
	assert.Equal(t, StatusFailed, res["command_status"])
	assert.Contains(t, res["command_error"].(map[string]any)["details"], "gzip")

	// IPA validates image_info before the command starts: 400, no result.
	_, before := c.do("GET", "/v1/commands/", nil)
	code, res := c.post("standby.prepare_image", map[string]any{"image_info": map[string]any{"id": "x"}}, "?wait=true")
	assert.Equal(t, 400, code)
	assert.Contains(t, res["faultstring"], "Invalid command parameters")
	_, after := c.do("GET", "/v1/commands/", nil)
	assert.Len(t, after["commands"], len(before["commands"].([]any)))
}

func TestHostAgentRefusesToWriteWithoutDevices(t *testing.T) {
	fd := &fakeDeploy{disk: filepath.Join(t.TempDir(), "disk")}
	a := newTestAgent(t, "ipa-standalone=1", WithDeploy(fd, fd, fd))
	c := newAPI(t, a)
	_, res := c.post("standby.prepare_image", map[string]any{"image_info": map[string]any{"id": "i", "urls": []any{"http://x"}, "checksum": strings.Repeat("a", 64)}}, "?wait=true")
	assert.Equal(t, StatusFailed, res["command_status"])
	assert.Contains(t, res["command_error"].(map[string]any)["details"], "goipa-devices")
	assert.Nil(t, fd.written, "nothing was written")
}

func TestHostAgentRefusesToEraseWithoutDevices(t *testing.T) {
	c := newAPI(t, newTestAgent(t, "ipa-standalone=1"))
	_, res := c.post("clean.execute_clean_step", map[string]any{"step": map[string]any{"step": "erase_devices_metadata", "interface": "deploy"}, "node": map[string]any{}}, "?wait=true")
	assert.Equal(t, StatusFailed, res["command_status"])
	assert.Equal(t, "CleaningError", res["command_error"].(map[string]any)["type"])
	assert.Contains(t, res["command_error"].(map[string]any)["details"], "goipa-devices")
}

// TestServiceStepsAsIPAMaster checks get_service_steps against IPA
// master's list (hardware.py get_service_steps): what it offers, with
// abortable only on the steps that can be stopped, and never a step that
// destroys data on a deployed machine.
func TestServiceStepsAsIPAMaster(t *testing.T) {
	fd := &fakeDeploy{disk: filepath.Join(t.TempDir(), "disk")}
	c := newAPI(t, newTestAgent(t, "ipa-standalone=1 goipa-devices=/dev/loop7", WithDeploy(fd, fd, fd)))
	code, res := c.post("service.get_service_steps", map[string]any{"node": map[string]any{"uuid": "n1"}, "ports": []any{}}, "?wait=true")
	require.Equal(t, 200, code)
	cr := res["command_result"].(map[string]any)
	assert.Contains(t, cr, "hardware_manager_version")
	steps := map[string]map[string]any{}
	for _, s := range cr["service_steps"].(map[string]any)["GenericHardwareManager"].([]any) {
		steps[s.(map[string]any)["step"].(string)] = s.(map[string]any)
	}
	for _, name := range []string{"burnin_cpu", "burnin_gpu", "burnin_memory", "burnin_network"} {
		assert.Equal(t, map[string]any{"step": name, "priority": float64(0), "interface": "deploy", "reboot_requested": false, "abortable": true}, steps[name])
	}
	assert.Equal(t, map[string]any{"step": "write_image", "priority": float64(0), "interface": "deploy", "reboot_requested": false}, steps["write_image"])
	require.Contains(t, steps, "inject_files")
	assert.NotContains(t, steps["inject_files"], "abortable")
	assert.Contains(t, steps["inject_files"]["argsinfo"], "files")
	for _, name := range []string{"burnin_disk", "erase_devices", "erase_devices_metadata", "erase_devices_express"} {
		assert.NotContains(t, steps, name, "%s would destroy the deployed machine's data", name)
	}
}
