package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/goipa/goipa/firmware"
)

// fakeController is an NVMe controller with firmware download, two
// slots (slot 1 read-only) running "1.0"; it counts what it is sent.
type fakeController struct {
	oacs uint16
	sent int
}

func (f *fakeController) Identify(context.Context) ([]byte, error) {
	id := make([]byte, 4096)
	binary.LittleEndian.PutUint16(id[256:], f.oacs)
	id[260] = 1 | 2<<1 // slot 1 read-only, two slots
	id[77] = 5
	return id, nil
}

func (f *fakeController) SlotLog(context.Context) ([]byte, error) {
	b := make([]byte, 512)
	b[0] = 1
	copy(b[8:], "1.0")
	if f.sent > 0 {
		copy(b[16:], "2.0")
	}
	return b, nil
}
func (f *fakeController) MPSMIN() uint8 { return 0 }
func (f *fakeController) Download(context.Context, firmware.Chunk, []byte) error {
	f.sent++
	return nil
}
func (f *fakeController) Commit(context.Context, int, firmware.CommitAction) (bool, error) {
	f.sent++
	return false, nil
}
func (f *fakeController) Close() error { return nil }

func firmwareFixture(t *testing.T, ctrl *fakeController) (url, sum string) {
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "sys/class/nvme/nvme0"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "sys/class/nvme/nvme0/serial"), []byte("S1\n"), 0o644))
	fw := bytes.Repeat([]byte("goipa-fw"), 4096)
	h := sha256.Sum256(fw)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "fw.bin", time.Time{}, bytes.NewReader(fw))
	}))
	t.Cleanup(srv.Close)
	stage := t.TempDir()
	oldNew, oldPrep := newFirmwareUpdater, prepareFirmwareDir
	t.Cleanup(func() { newFirmwareUpdater, prepareFirmwareDir = oldNew, oldPrep })
	prepareFirmwareDir = func(string) error { return nil }
	newFirmwareUpdater = func(a *Agent, sc *StepCall, opts ...firmware.Option) (*firmware.Updater, error) {
		return firmware.New(append([]firmware.Option{firmware.WithRoot(root), firmware.WithStageDir(stage), firmware.WithHTTPClient(srv.Client()),
			firmware.WithNVMe(func(string, string) (firmware.NVMeDevice, error) { return ctrl, nil })}, opts...)...), nil
	}
	return srv.URL + "/fw.bin", "sha256:" + hex.EncodeToString(h[:])
}

func firmwareStep(t *testing.T, c *apiClient, kind StepKind, name string, args map[string]any) map[string]any {
	t.Helper()
	code, res := c.post(string(kind)+".execute_"+string(kind)+"_step", map[string]any{"step": map[string]any{"step": name, "interface": "deploy", "args": args},
		"node": map[string]any{}, "ports": []any{}}, "?wait=true")
	require.Equal(t, 200, code)
	return res
}

func TestFirmwareStepsListed(t *testing.T) {
	c := newAPI(t, newTestAgent(t, "ipa-standalone=1"))
	for _, kind := range []StepKind{Clean, Service} {
		_, res := c.post(string(kind)+".get_"+string(kind)+"_steps", map[string]any{"node": map[string]any{}, "ports": []any{}}, "?wait=true")
		steps := res["command_result"].(map[string]any)[string(kind)+"_steps"].(map[string]any)[HardwareManager].([]any)
		found := map[string]map[string]any{}
		for _, s := range steps {
			m := s.(map[string]any)
			found[m["step"].(string)] = m
		}
		for name, arg := range map[string]string{"update_firmware": "images", "verify_firmware": "devices"} {
			s := found[name]
			require.NotNil(t, s, "%s step %s", kind, name)
			assert.Equal(t, 0.0, s["priority"], "manual only")
			assert.Equal(t, "deploy", s["interface"])
			assert.Equal(t, true, s["argsinfo"].(map[string]any)[arg].(map[string]any)["required"])
		}
	}
}

func TestUpdateFirmwareStep(t *testing.T) {
	ctrl := &fakeController{oacs: 1 << 2}
	url, sum := firmwareFixture(t, ctrl)
	c := newAPI(t, newTestAgent(t, "ipa-standalone=1", WithRealPower(true)))
	res := firmwareStep(t, c, Clean, "update_firmware", map[string]any{"images": []any{
		map[string]any{"url": url, "checksum": sum, "target": "S1", "activate": "reset", "slot": 2.0}}})
	require.Equal(t, StatusSucceeded, res["command_status"], "%v", res["command_error"])
	reps := res["command_result"].(map[string]any)["clean_result"].(map[string]any)["firmware"].([]any)
	require.Len(t, reps, 1)
	r := reps[0].(map[string]any)
	assert.Equal(t, "nvme0", r["device"])
	assert.Equal(t, "1.0", r["version_before"])
	assert.Equal(t, firmware.PendingReset, r["version_after"])
	assert.Equal(t, sum, r["checksum"])
	assert.Equal(t, map[string]any{"1": "1.0", "2": "2.0"}, r["versions_after"])
	assert.Equal(t, 2, ctrl.sent, "one download chunk, one commit")
	assert.NotNil(t, res["progress"])

	res = firmwareStep(t, c, Service, "verify_firmware", map[string]any{"devices": []any{map[string]any{"target": "nvme0", "version": "1.0"}}})
	assert.Equal(t, StatusSucceeded, res["command_status"], "%v", res["command_error"])
	res = firmwareStep(t, c, Clean, "verify_firmware", map[string]any{"devices": []any{map[string]any{"target": "nvme0", "version": "2.0"}}})
	require.Equal(t, StatusFailed, res["command_status"])
	assert.Contains(t, res["command_error"].(map[string]any)["details"], "nvme0 (nvme0) runs 1.0, not 2.0")
}

func TestUpdateFirmwareRefusals(t *testing.T) {
	ctrl := &fakeController{}
	url, sum := firmwareFixture(t, ctrl)
	good := map[string]any{"url": url, "checksum": sum, "target": "nvme0"}
	host := newAPI(t, newTestAgent(t, "ipa-standalone=1"))
	res := firmwareStep(t, host, Clean, "update_firmware", map[string]any{"images": []any{good}})
	require.Equal(t, StatusFailed, res["command_status"])
	assert.Contains(t, res["command_error"].(map[string]any)["details"], "refused on a host agent")

	c := newAPI(t, newTestAgent(t, "ipa-standalone=1", WithRealPower(true)))
	for name, tc := range map[string]struct {
		args    map[string]any
		errType string
		detail  string
	}{
		"no images":         {map[string]any{}, "InvalidCommandParamsError", "not a non-empty list"},
		"unknown key":       {map[string]any{"images": []any{map[string]any{"url": url, "checksum": sum, "target": "nvme0", "sloot": 2.0}}}, "InvalidCommandParamsError", "unknown key sloot"},
		"slot not a number": {map[string]any{"images": []any{map[string]any{"url": url, "checksum": sum, "target": "nvme0", "slot": "two"}}}, "InvalidCommandParamsError", "slot"},
		"unknown target":    {map[string]any{"images": []any{map[string]any{"url": url, "checksum": sum, "target": "eth7"}}}, "InvalidCommandParamsError", "no device matches"},
		"wrong checksum": {map[string]any{"images": []any{map[string]any{"url": url, "checksum": "sha256:" + hex.EncodeToString(make([]byte, 32)), "target": "nvme0"}}},
			"CommandExecutionError", "checksum mismatch"},
		"no firmware download": {map[string]any{"images": []any{good}}, "CommandExecutionError", "OACS bit 2"},
	} {
		t.Run(name, func(t *testing.T) {
			ctrl.oacs = 1 << 2
			if name == "no firmware download" {
				ctrl.oacs = 0
			}
			res := firmwareStep(t, c, Clean, "update_firmware", tc.args)
			require.Equal(t, StatusFailed, res["command_status"])
			e := res["command_error"].(map[string]any)
			assert.Equal(t, tc.errType, e["type"])
			assert.Contains(t, e["details"], tc.detail)
			assert.Zero(t, ctrl.sent, "nothing sent to the controller")
		})
	}
}
